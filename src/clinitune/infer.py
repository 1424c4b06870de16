"""`clinitune infer`: generation with transformers (base, adapter, run) or llama.cpp (GGUF), streamed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .config import GenerationConfig
from .data import phi
from .data.example import json_lines, parse_prompt
from .errors import ClinituneError
from .paths import atomic_write_text


class HFBackend:
    def __init__(self, run: Path | None, model: str | None, adapter: Path | None):
        from .eval.run import eos_ids, load_for_eval

        self.model, self.tok, _ = load_for_eval(run, model or ("smollm2-135m-instruct" if run is None else None), adapter)
        self.stop = eos_ids(self.tok)

    def chat(self, messages: list[dict], gen: GenerationConfig, stream: bool) -> str:
        import torch
        from transformers import TextStreamer

        enc = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        sample = gen.temperature > 0
        kwargs = dict(max_new_tokens=gen.max_new_tokens, do_sample=sample, repetition_penalty=gen.repetition_penalty,
                      eos_token_id=self.stop, pad_token_id=self.tok.pad_token_id)
        if sample:
            kwargs.update(temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
        streamer = TextStreamer(self.tok, skip_prompt=True, skip_special_tokens=True) if stream else None
        with torch.no_grad():
            out = self.model.generate(**enc, streamer=streamer, **kwargs)
        return self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


class LlamaCppBackend:
    def __init__(self, gguf: Path):
        from llama_cpp import Llama

        if not gguf.is_file():
            raise ClinituneError(f"{gguf}: GGUF file not found; create one with clinitune export --format gguf")
        self.llm = Llama(model_path=str(gguf), n_ctx=4096, verbose=False)

    def chat(self, messages: list[dict], gen: GenerationConfig, stream: bool) -> str:
        kwargs = dict(messages=messages, max_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                      top_k=gen.top_k, repeat_penalty=gen.repetition_penalty)
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


def backend(run: Path | None, model: str | None, adapter: Path | None, gguf: Path | None):
    return LlamaCppBackend(gguf) if gguf is not None else HFBackend(run, model, adapter)


def screen_prompt(messages: list[dict], where: str, allow_phi: bool) -> None:
    """A prompt reaches the model only if the PHI screen finds nothing in it, or the user said so."""
    if allow_phi:
        return
    found = phi.screen_texts([m["content"] for m in messages])
    kinds = sorted({f.type for fs in found for f in fs})
    if kinds:
        raise ClinituneError(f"{where}: the PHI screen found {', '.join(kinds)}; remove the identifiers, "
                             "or pass --allow-phi to send it to the model anyway")


def read_prompts(path: Path, allow_phi: bool = False) -> list[tuple[object, list[dict]]]:
    """(line as given, its messages) for each line of a prompts file, each screened before any model loads."""
    items = []
    for n, item, error in json_lines(path):
        if error:
            raise ClinituneError(f"{path}:{n}: {error}")
        messages = parse_prompt(item, f"{path}:{n}")
        screen_prompt(messages, f"{path}:{n}", allow_phi)
        items.append((item, messages))
    return items


def run_file(b, items: list[tuple[object, list[dict]]], out: Path, gen: GenerationConfig) -> int:
    rows = [{**(item if isinstance(item, dict) else {"prompt": item}), "response": b.chat(messages, gen, stream=False)}
            for item, messages in items]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
