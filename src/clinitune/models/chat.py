"""Chat backends for `infer` and the quickstart: a conversation with a transformers model or a GGUF.

Both render the model's own chat template, sample per the generation config, and can hold every
answer to a JSON Schema (llguidance masks for transformers, a llama.cpp grammar for GGUF).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextStreamer

from ..config import GenerationConfig
from ..errors import ClinituneError
from .generate import eos_ids, llama_prompts_ids, load_for_inference, load_llama
from .registry import DEFAULT_MODEL
from .structured import mask_logits, schema_grammar, schema_matcher


def check_fits(n_prompt: int, max_new_tokens: int, context: int) -> None:
    """Refuse a prompt that leaves no room for the reply in the model's context, before any work: past its
    window a model decodes garbage for minutes, and llama.cpp stops with a traceback."""
    if n_prompt + max_new_tokens > context:
        raise ClinituneError(
            f"the prompt is {n_prompt} tokens; with generation.max_new_tokens {max_new_tokens} it exceeds the "
            f"model's context of {context} tokens; shorten the prompt or lower max_new_tokens"
        )


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

    def chat(self, messages: list[dict], gen: GenerationConfig, stream: bool) -> str:
        enc = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context:
            check_fits(enc["input_ids"].shape[1], gen.max_new_tokens, context)
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
        (ids,) = llama_prompts_ids(self.llm, [messages])
        check_fits(len(ids), gen.max_new_tokens, self.llm.n_ctx())
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
