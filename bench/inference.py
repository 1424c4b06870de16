"""Inference speed, side by side: HF generate (fp32, bf16) against llama.cpp GGUF f16, q8_0 and q4_k_m.

    python bench/inference.py [--model smollm2-135m-instruct] [--new-tokens 128]

Every backend answers the same chat prompts greedily, one at a time (what `clinitune infer` and
Ollama do), with the same number of new tokens forced (end-of-turn ignored), so tokens/s compare
like for like. Prompt processing and generation are timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PROMPTS = [
    "Generate a patient record for a 65-year-old male with hypertension.",
    "What ICD-10 code represents essential hypertension?",
    "Extract the diagnoses, medications and vitals from this note as JSON: 58-year-old female seen for a follow-up "
    "visit. "
    "History of type 2 diabetes mellitus without complications, hyperlipidemia. Medications: metformin 500 mg twice "
    "daily. "
    "Vitals: BP 132/84 mmHg, BMI 31.2.",
    "Which FHIR resource records a diagnosis?",
]


def hf_rows(model_dir: Path, tok, n_new: int) -> list[dict]:
    import torch

    from clinitune.models.adapt import cpu_has_bf16
    from clinitune.models.loading import load_causal_lm

    rows = []
    dtypes = ["float32"] + (["bfloat16"] if torch.cuda.is_available() or cpu_has_bf16() else [])
    for dt in dtypes:
        m = load_causal_lm(model_dir, dtype=dt).eval()
        prompt_s = gen_s = 0.0
        n_prompt = 0
        with torch.no_grad():
            for p in PROMPTS:
                ids = tok.apply_chat_template(
                    [{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt"
                )
                ids = ids["input_ids"] if hasattr(ids, "keys") else ids
                t = time.perf_counter()
                m(ids)  # prompt only, to split prefill from decode
                prompt_s += time.perf_counter() - t
                t = time.perf_counter()
                out = m.generate(
                    ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id
                )
                gen_s += time.perf_counter() - t
                n_prompt += ids.shape[1]
                assert out.shape[1] - ids.shape[1] == n_new
        # generate() includes its own prefill; subtract the measured one to get decode time.
        rows.append(
            {
                "backend": f"HF generate {dt}",
                "prompt_tokens_per_s": n_prompt / prompt_s,
                "gen_tokens_per_s": n_new * len(PROMPTS) / max(gen_s - prompt_s, 1e-9),
            }
        )
        del m
    return rows


def gguf_rows(ggufs: dict[str, Path], n_new: int) -> list[dict]:
    from llama_cpp import Llama

    rows = []
    for kind, path in ggufs.items():
        llm = Llama(model_path=str(path), n_ctx=1024, verbose=False, n_threads=os.cpu_count())
        prompt_s = gen_s = 0.0
        n_prompt = 0
        for p in PROMPTS:
            toks = llm.tokenize(_chat_text(p).encode(), add_bos=False, special=True)
            llm.reset()
            t = time.perf_counter()
            llm.eval(toks)
            prompt_s += time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(n_new):  # greedy, end-of-turn ignored: exactly n_new tokens
                llm.eval([llm.sample(temp=0.0)])
            gen_s += time.perf_counter() - t
            n_prompt += len(toks)
        rows.append(
            {
                "backend": f"llama.cpp {kind}",
                "prompt_tokens_per_s": n_prompt / prompt_s,
                "gen_tokens_per_s": n_new * len(PROMPTS) / gen_s,
                "file_mb": round(path.stat().st_size / 2**20, 1),
            }
        )
        del llm
    return rows


_TOK = None


def _chat_text(p: str) -> str:
    return _TOK.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)


def main() -> None:
    global _TOK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference.json"))
    a = ap.parse_args()

    import torch

    from clinitune.export.gguf_writer import write_gguf
    from clinitune.export.run import quantize
    from clinitune.models.loading import load_tokenizer
    from clinitune.models.registry import resolve_model

    torch.manual_seed(0)
    model_dir = resolve_model(a.model)
    _TOK = load_tokenizer(model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-infer-"))
    f16 = write_gguf(model_dir, work / "model-f16.gguf", dtype="f16")
    ggufs = {"f16": f16}
    for kind in ("q8_0", "q4_k_m"):
        quantize(f16, work / f"model-{kind}.gguf", kind)
        ggufs[kind] = work / f"model-{kind}.gguf"
    rows = hf_rows(model_dir, _TOK, a.new_tokens) + gguf_rows(ggufs, a.new_tokens)
    base = rows[0]["gen_tokens_per_s"]
    for r in rows:
        r["gen_speedup_vs_hf_fp32"] = round(r["gen_tokens_per_s"] / base, 2)
        r["prompt_tokens_per_s"] = round(r["prompt_tokens_per_s"], 1)
        r["gen_tokens_per_s"] = round(r["gen_tokens_per_s"], 1)
    out = {
        "model": str(model_dir),
        "prompts": len(PROMPTS),
        "new_tokens": a.new_tokens,
        "threads": os.cpu_count(),
        "rows": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print("| backend | prompt tok/s | generate tok/s | vs HF fp32 | file MB |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['prompt_tokens_per_s']:.0f} | {r['gen_tokens_per_s']:.1f} | "
            f"{r['gen_speedup_vs_hf_fp32']:.2f}x | "
            f"{r.get('file_mb', '')} |"
        )
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
