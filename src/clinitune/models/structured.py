"""Structured answers: JSON held to a JSON Schema while it is decoded, for both runtimes.

GGUF files decode through llama.cpp with a GBNF grammar made from the schema; transformers models
decode with a token mask per step from llguidance (Microsoft's guidance engine, which reads JSON
Schema itself). Both get the same bounded copy of the schema, so both end their answers.
"""

from __future__ import annotations

import functools
import json

import llama_cpp
import llguidance
import llguidance.hf
import llguidance.torch
import torch
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_grammar import json_schema_to_gbnf

from ..errors import ClinituneError


def bounded_schema(schema, max_items: int = 3, max_length: int = 40):
    """The schema as both constrained decoders can honour it, with every array and string bounded.

    Unbounded, an untrained model fills an array until its token budget runs out, which leaves a
    truncated (invalid) answer: bounds make every path through the grammar end. The converter also
    drops string bounds on a union type (["string", "null"]) and fails on an escaped dot in a
    pattern, so unions are spelled out as anyOf and `\\.` becomes `[.]`. Answers are still checked
    against the full schema afterwards."""
    if isinstance(schema, list):
        return [bounded_schema(v, max_items, max_length) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bounded_schema(v, max_items, max_length) for k, v in schema.items() if k not in ("$schema", "$id")}
    if "pattern" in out:
        out["pattern"] = out["pattern"].replace("\\.", "[.]")
    kind = out.get("type")
    if isinstance(kind, list) and len(kind) > 1:
        rest = {k: v for k, v in out.items() if k != "type"}
        return {"anyOf": [{"type": "null"} if t == "null" else bounded_schema({**rest, "type": t}) for t in kind]}
    if kind == "array":
        out.setdefault("maxItems", max_items)
    if kind == "string" and "enum" not in out:
        out.setdefault("maxLength", max_length)
    return out


def check_grammar(text: str, llm: Llama) -> None:
    """Refuse grammar text llama.cpp cannot parse, which it would otherwise crash on when sampling starts: the
    converter writes text without checking it (a `\\d` in a pattern, for one). `llm` may be vocab-only."""
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if not sampler:
        raise ClinituneError(
            "the JSON Schema holds a pattern llama.cpp's grammar cannot express (character classes such as "
            "\\d or \\w); write them as ranges ([0-9], [A-Za-z0-9_]) and try again"
        )
    llama_cpp.llama_sampler_free(sampler)


def schema_grammar(schema: dict, llm: Llama) -> LlamaGrammar:
    """A llama.cpp grammar that only admits JSON of this schema's shape (bounded: see bounded_schema), checked."""
    text = json_schema_to_gbnf(json.dumps(bounded_schema(schema)))
    check_grammar(text, llm)
    return LlamaGrammar.from_string(text, verbose=False)


@functools.lru_cache(maxsize=4)
def _ll_tokenizer(tok, eos: tuple[int, ...]) -> llguidance.LLTokenizer:
    # Building the token trie walks the whole vocabulary: once per tokenizer, not once per answer.
    return llguidance.hf.from_tokenizer(tok, eos_token=list(eos))


def schema_matcher(tok, schema: dict, eos: list[int]) -> llguidance.LLMatcher:
    """A fresh matcher for one answer: which tokens may come next so that the text stays valid JSON of
    the schema's (bounded) shape, and, once the JSON is closed, only an end-of-turn token."""
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(bounded_schema(schema)))
    matcher = llguidance.LLMatcher(_ll_tokenizer(tok, tuple(eos)), grammar)
    if matcher.is_error():
        raise ClinituneError(f"the JSON Schema cannot be used for constrained decoding: {matcher.get_error()}")
    return matcher


def mask_logits(logits: torch.Tensor, matchers: list) -> None:
    """Rule out, in place, every token a row's matcher forbids (rows with None are free)."""
    rows = [i for i, m in enumerate(matchers) if m is not None]
    if not rows:
        return
    vocab = logits.shape[-1]
    bitmask = llguidance.torch.allocate_token_bitmask(len(rows), vocab)
    for j, i in enumerate(rows):
        llguidance.torch.fill_next_token_bitmask(matchers[i], bitmask, j)
    sub = logits[rows].float()
    llguidance.torch.apply_token_bitmask_inplace(sub, bitmask)
    logits[rows] = sub.to(logits.dtype)
