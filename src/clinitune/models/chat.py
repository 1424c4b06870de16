"""Chat backends for `infer` and the quickstart: a conversation with a transformers model or a GGUF.

Both render the model's own chat template, sample per the generation config, and can hold every
answer to a JSON Schema (llguidance masks for transformers, a llama.cpp grammar for GGUF).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextStreamer

from ..config import GenerationConfig
from ..errors import ClinituneError
from .generate import eos_ids, llama_prompts_ids, load_for_inference, load_llama
from .registry import DEFAULT_MODEL
from .structured import mask_logits, schema_grammar, schema_matcher

log = logging.getLogger(__name__)


def check_fits(n_prompt: int, max_new_tokens: int, context: int) -> None:
    """Refuse a prompt that leaves no room for the reply in the model's context, before any work: past its
    window a model decodes garbage for minutes, and llama.cpp stops with a traceback."""
    if n_prompt + max_new_tokens > context:
        raise ClinituneError(
            f"the prompt is {n_prompt} tokens; with generation.max_new_tokens {max_new_tokens} it exceeds the "
            f"model's context of {context} tokens; shorten the prompt, lower max_new_tokens, or pass --truncate"
        )


def fit_prompt(messages: list[dict], count, gen: GenerationConfig, context: int | None) -> list[dict]:
    """`messages` if they leave room for the reply; else, with generation.truncate_prompt, the same chat with
    the end of its last user message cut so that they do (a warning says how much went); else an error.
    `count(messages)` is the rendered prompt's length in tokens."""
    if not context or count(messages) + gen.max_new_tokens <= context:
        return messages
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if not gen.truncate_prompt or last is None:
        check_fits(count(messages), gen.max_new_tokens, context)
    text = messages[last]["content"]
    cut = lambda n: [*messages[:last], {**messages[last], "content": text[:n]}, *messages[last + 1 :]]  # noqa: E731
    lo, hi = 0, len(text)  # the longest head of the message that fits: binary search on characters
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(cut(mid)) + gen.max_new_tokens <= context else (lo, mid - 1)
    if count(cut(lo)) + gen.max_new_tokens > context:
        check_fits(count(cut(0)), gen.max_new_tokens, context)  # the rest of the chat alone is too long
    log.warning(
        "prompt truncated to fit the context of %d tokens: kept %d of %d characters of the last user message",
        context,
        lo,
        len(text),
    )
    return cut(lo)


class SchemaLogits(LogitsProcessor):
    """transformers' hook for one answer held to a schema: feed the matcher the last token, mask the rest."""

    def __init__(self, matcher, prompt_len: int):
        self.matcher, self.seen = matcher, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for token in input_ids[0, self.seen :].tolist():
            self.matcher.consume_token(token)
        self.seen = input_ids.shape[1]
        mask_logits(scores, [self.matcher])
        return scores


class HFChat:
    """Chat with a transformers model (a base, a base plus adapter, or a run), sampling per GenerationConfig."""

    def __init__(self, run: Path | None, model: str | None, adapter: Path | None, schema: dict | None = None):
        self.model, self.tok, _ = load_for_inference(run, model or (DEFAULT_MODEL if run is None else None), adapter)
        self.stop = eos_ids(self.tok)
        self.schema = schema

    def encode(self, messages: list[dict]) -> dict:
        return self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def chat(self, messages: list[dict], gen: GenerationConfig, stream: bool) -> str:
        context = getattr(self.model.config, "max_position_embeddings", None)
        messages = fit_prompt(messages, lambda m: len(self.encode(m)["input_ids"][0]), gen, context)
        enc = {k: v.to(self.model.device) for k, v in self.encode(messages).items()}
        sample = gen.temperature > 0
        kwargs = dict(
            max_new_tokens=gen.max_new_tokens,
            do_sample=sample,
            repetition_penalty=gen.repetition_penalty,
            eos_token_id=self.stop,
            pad_token_id=self.tok.pad_token_id,
        )
        if sample:
            kwargs.update(temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
        if self.schema is not None:
            matcher = schema_matcher(self.tok, self.schema, self.stop)
            kwargs["logits_processor"] = LogitsProcessorList([SchemaLogits(matcher, enc["input_ids"].shape[1])])
        streamer = TextStreamer(self.tok, skip_prompt=True, skip_special_tokens=True) if stream else None
        with torch.no_grad():
            out = self.model.generate(**enc, streamer=streamer, **kwargs)
        return self.tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


class LlamaChat:
    """Chat with a GGUF through llama.cpp, with the chat template stored in the file; with a JSON Schema,
    every answer is decoded under its grammar."""

    def __init__(self, gguf: Path, schema: dict | None = None):
        self.llm = load_llama(gguf)
        self.grammar = schema_grammar(schema, self.llm) if schema is not None else None

    def chat(self, messages: list[dict], gen: GenerationConfig, stream: bool) -> str:
        messages = fit_prompt(messages, lambda m: len(llama_prompts_ids(self.llm, [m])[0]), gen, self.llm.n_ctx())
        kwargs = dict(
            grammar=self.grammar,
            messages=messages,
            max_tokens=gen.max_new_tokens,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            repeat_penalty=gen.repetition_penalty,
        )
        if not stream:
            return self.llm.create_chat_completion(**kwargs)["choices"][0]["message"]["content"].strip()
        parts = []
        for chunk in self.llm.create_chat_completion(stream=True, **kwargs):
            piece = chunk["choices"][0]["delta"].get("content", "")
            parts.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return "".join(parts).strip()


def chat_backend(
    run: Path | None, model: str | None, adapter: Path | None, gguf: Path | None, schema: dict | None = None
) -> HFChat | LlamaChat:
    if gguf is not None:
        return LlamaChat(gguf, schema)
    return HFChat(run, model, adapter, schema)
