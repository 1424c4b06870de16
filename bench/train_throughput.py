"""Training throughput, side by side: the spec's recipe, TRL's SFTTrainer, and clinitune.

    python bench/train_throughput.py [--examples 40] [--eval-examples 24]

All trainers get the same prepared quickstart examples (one pass), the same base model
(SmolLM2-135M-Instruct), the same LoRA (r 16, alpha 32, dropout 0, all linear layers), learning
rate, schedule and loss (response tokens only). Each runs in its own process so its peak RSS is its
own. Afterwards every adapter is scored by one evaluator (fp32, response-token loss on held-out
examples), so speed bought with a worse loss shows.

MFU counts the FLOPs the job needs, the same formula for every trainer: per token 4 x the frozen
body's parameters (forward and input gradient) + 6 x LoRA's + attention; per response token the
head's 4 x vocab x hidden. Work a trainer does beyond that (logits on prompt tokens, padding) is
not counted. The peak is a 4096^3 GEMM in the trainer's dtype, measured in this run.

A short run pays each trainer's one-off first step (allocation, kernel selection); the "after step 1"
columns leave out the first batch's tokens and the time until its optimizer step ends.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LR, SEQ, ROWS, BS_UNPACKED = 5e-4, 512, 4, 8
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}
TRL_VARIANTS = [(True, True), (False, True), (True, False), (False, False)]  # (packing, bf16)


def ensure_data(data_dir: Path) -> Path:
    if (data_dir / "train.jsonl").is_file():
        return data_dir
    from clinitune.data.prepare import prepare
    from clinitune.data.records.synth import write_database
    from clinitune.data.tasks import TASKS

    db = data_dir.parent / "clinic.db"
    write_database(f"sqlite:///{db}", 150, 42, progress=False)
    prepare(
        source="database", db=f"sqlite:///{db}", path=None, out=data_dir, tasks=list(TASKS), seed=42, progress=False
    )
    return data_dir


def subsets(data_dir: Path, n: int, n_eval: int) -> tuple[list, list]:
    from clinitune.data.example import load

    train = load(data_dir / "train.jsonl")
    ev = load(data_dir / "eval.jsonl")
    return random.Random(0).sample(train, min(n, len(train))), random.Random(1).sample(ev, min(n_eval, len(ev)))


def gemm_peak_gflops(dtype_name: str) -> float:
    import torch

    dt = getattr(torch, dtype_name)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n = 8192 if dev == "cuda" else 4096
    a, b = torch.randn(n, n, dtype=dt, device=dev), torch.randn(n, n, dtype=dt, device=dev)
    best = 0.0
    for _ in range(4):
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


# ---------------------------------------------------------------- workers (one process each)


def _model_dir() -> str:
    from clinitune.models.registry import resolve_model

    return str(resolve_model("smollm2-135m-instruct"))


def _messages(ex) -> tuple[str, str]:
    return ex.messages[0].content, ex.reply


def _hf_train(name: str, train: list[dict], workdir: Path, packing: bool = False, bf16: bool = False) -> Path:
    """spec_recipe (transformers Trainer + peft) or TRL's SFTTrainer; returns the adapter dir."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from clinitune.data import tokenize as C
    from clinitune.models.loading import load_tokenizer

    cuda = torch.cuda.is_available()
    mdir = _model_dir()
    tok = load_tokenizer(mdir)
    lora = LoraConfig(task_type="CAUSAL_LM", **LORA)
    common = dict(
        output_dir=str(workdir / "out"),
        num_train_epochs=1,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1000,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=42,
        use_cpu=not cuda,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
    )
    if name == "spec_recipe":
        from peft import get_peft_model
        from transformers import Trainer, TrainingArguments

        model = get_peft_model(AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32), lora)
        data = C.tokenize(tok, train, SEQ)
        feats = [
            {"input_ids": ids, "labels": [C.IGNORE] * n + ids[n:]} for ids, n in zip(data.input_ids, data.n_prompt)
        ]

        def collate(batch):  # dynamic padding to the longest example in the batch
            w = max(len(b["input_ids"]) for b in batch)
            pad = lambda xs, v: [x + [v] * (w - len(x)) for x in xs]  # noqa: E731
            return {
                "input_ids": torch.tensor(pad([b["input_ids"] for b in batch], tok.pad_token_id)),
                "attention_mask": torch.tensor(pad([[1] * len(b["input_ids"]) for b in batch], 0)),
                "labels": torch.tensor(pad([b["labels"] for b in batch], C.IGNORE)),
            }

        args = TrainingArguments(
            per_device_train_batch_size=BS_UNPACKED, remove_unused_columns=False, bf16=False, **common
        )
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(feats), data_collator=collate)
    else:
        from trl import SFTConfig, SFTTrainer

        rows = [
            dict(
                zip(("prompt", "completion"), ([{"role": "user", "content": u}], [{"role": "assistant", "content": a}]))
            )
            for u, a in map(_messages, train)
        ]
        model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16 if bf16 else torch.float32)
        args = SFTConfig(
            per_device_train_batch_size=ROWS if packing else BS_UNPACKED,
            packing=packing,
            max_length=SEQ,
            bf16=bf16,
            completion_only_loss=True,
            **common,
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora
        )
    # Steady state: the time after the first optimizer step, and the tokens of every batch but the first
    # (the collator is called once per batch, in order: no workers, no accumulation).
    from transformers import TrainerCallback

    first: dict = {}
    collate_fn = trainer.data_collator

    def counting(features):
        batch = collate_fn(features)
        if "tokens" not in first:
            mask = batch.get("attention_mask")
            first["tokens"] = int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch

    class FirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                first["at"] = time.perf_counter()

    trainer.data_collator = counting
    trainer.add_callback(FirstStep())
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    out = workdir / "adapter"
    trainer.model.save_pretrained(str(out))
    (workdir / "timing.json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "steps": trainer.state.global_step,
                "first_step_seconds": first["at"] - t,
                "first_step_tokens": first["tokens"],
            }
        )
    )
    return out


def _clinitune_train(train: list[dict], workdir: Path) -> Path:
    import yaml

    from clinitune.config import load_config
    from clinitune.train.loop import train as run_train

    (workdir / "train.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in train))
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "lora": {"method": "lora", **LORA},
        "data": {"train": str(workdir / "train.jsonl"), "max_seq_length": SEQ, "packing": True},
        "training": {
            "output_dir": str(workdir / "run"),
            "per_device_train_batch_size": ROWS,
            "gradient_accumulation_steps": 1,
            "learning_rate": LR,
            "lr_scheduler_type": "constant",
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "num_train_epochs": 1,
            "logging_steps": 1000,
            "eval_steps": 100000,
            "save_steps": 100000,
            "seed": 42,
            "early_stopping_patience": None,
        },
    }
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    s = run_train(load_config(path), quiet=True)
    (workdir / "timing.json").write_text(
        json.dumps(
            {
                "seconds": s.loop_seconds,
                "steps": s.steps,
                "first_step_seconds": s.first_step_seconds,
                "first_step_tokens": s.first_step_tokens,
            }
        )
    )
    return Path(s.output)


def eval_loss(adapter: Path, ev: list[dict]) -> float:
    """One evaluator for every trainer: fp32 base + the trained adapter, mean response-token loss."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from clinitune.data import tokenize as C
    from clinitune.models.loading import load_tokenizer
    from clinitune.train.loss import loss_sum

    mdir = _model_dir()
    tok = load_tokenizer(mdir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32), str(adapter)
    ).eval()
    data = C.tokenize(tok, ev, SEQ)
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(len(data.input_ids)):
            s, k = loss_sum(model, C.collate(C.pack(data, [i], SEQ, False), tok.pad_token_id), "cpu")
            total, n = total + float(s), n + k
    return total / max(n, 1)


def worker(name: str, spec: dict) -> dict:
    import torch

    from clinitune.train.checkpoints import seed_everything

    seed_everything(42)
    train, ev = subsets(Path(spec["data"]), spec["examples"], spec["eval_examples"])
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if name == "clinitune":
        adapter = _clinitune_train(train, workdir)
    elif name == "spec_recipe":
        adapter = _hf_train(name, train, workdir)
    else:
        adapter = _hf_train(name, train, workdir, packing=spec["packing"], bf16=spec["bf16"])
    timing = json.loads((workdir / "timing.json").read_text())
    res = {
        "seconds": round(timing["seconds"], 2),
        "steps": timing["steps"],
        "first_step_seconds": round(timing["first_step_seconds"], 2),
        "first_step_tokens": timing["first_step_tokens"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if torch.cuda.is_available():
        res["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    res["eval_loss"] = round(eval_loss(adapter, ev), 4)
    return res


# ---------------------------------------------------------------- parent


def flops(train: list[dict]) -> tuple[int, int, float]:
    """(non-pad tokens, response tokens, FLOPs the job needs) for one pass over `train`."""
    from transformers import AutoConfig

    from clinitune.data import tokenize as C
    from clinitune.models.loading import load_tokenizer

    mdir = _model_dir()
    cfg = AutoConfig.from_pretrained(mdir)
    tok = load_tokenizer(mdir)
    data = C.tokenize(tok, train, SEQ)
    d, L, V, ff = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.intermediate_size
    kv = d * cfg.num_key_value_heads // cfg.num_attention_heads
    body = L * (2 * d * d + 2 * d * kv + 3 * d * ff)
    lora = L * LORA["r"] * ((d + d) * 2 + (d + kv) * 2 + (d + ff) * 3)
    tokens = sum(len(x) for x in data.input_ids)
    response = sum(len(x) - n for x, n in zip(data.input_ids, data.n_prompt))
    ctx = sum(len(x) * (len(x) + 1) / 2 for x in data.input_ids) / tokens  # mean attended positions per token
    total = tokens * (4 * body + 6 * lora + 12 * L * d * ctx) + response * 4 * V * d
    return tokens, response, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "work" / "quickstart" / "data"))
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--eval-examples", type=int, default=24)
    ap.add_argument("--trl-variants", default="all", help="'all', or 'best-guess' (packing+bf16 only) for a quick run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_throughput.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, json.loads(a.spec))), flush=True)
        return

    import torch

    data = ensure_data(Path(a.data))
    train, _ = subsets(data, a.examples, a.eval_examples)
    tokens, response, need = flops(train)
    peaks = {"bfloat16": gemm_peak_gflops("bfloat16"), "float32": gemm_peak_gflops("float32")}
    bf16_ok = torch.cuda.is_available() or _cpu_bf16()
    print(
        f"{len(train)} examples, {tokens} tokens ({response} response); GEMM peak bf16 {peaks['bfloat16']} GFLOP/s, "
        f"fp32 {peaks['float32']} GFLOP/s",
        flush=True,
    )

    runs = [("spec_recipe", {"bf16": False}), ("clinitune", {"bf16": bf16_ok})]
    variants = TRL_VARIANTS if a.trl_variants == "all" else TRL_VARIANTS[:1]
    runs += [
        (f"trl[packing={'on' if p else 'off'},bf16={'on' if b else 'off'}]", {"packing": p, "bf16": b})
        for p, b in variants
    ]
    results = {}
    for name, extra in runs:
        spec = {"data": str(data), "examples": a.examples, "eval_examples": a.eval_examples, **extra}
        kind = name.split("[")[0]
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--spec", json.dumps(spec)],
            capture_output=True,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        r = json.loads(line.removeprefix("RESULT "))
        dtype = "bfloat16" if extra.get("bf16") else "float32"
        rest = r["seconds"] - r["first_step_seconds"] if r["steps"] > 1 else 0.0
        r.update(
            name=name,
            dtype=dtype,
            tokens_per_s=round(tokens / r["seconds"], 1),
            mfu=round(need / r["seconds"] / 1e9 / peaks[dtype], 4),
            steady_tokens_per_s=round((tokens - r["first_step_tokens"]) / rest, 1) if rest > 0 else None,
            steady_mfu=round(need * (1 - r["first_step_tokens"] / tokens) / rest / 1e9 / peaks[dtype], 4)
            if rest > 0
            else None,
        )
        results[name] = r
        print(
            f"  {name:<32} {r['tokens_per_s']:>8.1f} tok/s ({r['steady_tokens_per_s']} after step 1)  MFU "
            f"{r['mfu']:.3f}  peak RSS {r['peak_rss_mb']:>7.0f} MB  "
            f"eval loss {r['eval_loss']:.4f}  ({r['steps']} steps, {time.perf_counter() - t:.0f} s with load and eval)",
            flush=True,
        )

    trl = {k: v for k, v in results.items() if k.startswith("trl[")}
    best = max(trl.values(), key=lambda r: r["tokens_per_s"])
    rows = [
        dict(results["spec_recipe"], name="spec_recipe"),
        dict(best, name="trl_best", variant=best["name"]),
        dict(results["clinitune"], name="clinitune"),
    ]
    keys = (
        "name",
        "tokens_per_s",
        "mfu",
        "steady_tokens_per_s",
        "steady_mfu",
        "peak_rss_mb",
        "eval_loss",
        "steps",
        "dtype",
    )
    out = {
        "machine": _machine(),
        "gemm_peak_gflops": peaks["bfloat16" if bf16_ok else "float32"],
        "gemm_peak_gflops_by_dtype": peaks,
        "examples": len(train),
        "tokens": tokens,
        "response_tokens": response,
        "flops_needed": need,
        "rows": [
            {k: r[k] for k in keys if k in r} | ({"variant": r["variant"]} if "variant" in r else {}) for r in rows
        ],
        "trl_variants": [{k: r[k] for k in keys if k in r} for r in trl.values()],
    }
    cl, tb = results["clinitune"], best
    out["ratios"] = {
        "tokens_per_s_vs_trl_best": round(cl["tokens_per_s"] / tb["tokens_per_s"], 2),
        "steady_tokens_per_s_vs_trl_best": round(cl["steady_tokens_per_s"] / tb["steady_tokens_per_s"], 2)
        if cl["steady_tokens_per_s"] and tb["steady_tokens_per_s"]
        else None,
        "tokens_per_s_vs_spec_recipe": round(cl["tokens_per_s"] / results["spec_recipe"]["tokens_per_s"], 2),
        "peak_rss_vs_trl_best": round(cl["peak_rss_mb"] / tb["peak_rss_mb"], 2),
        "eval_loss_vs_trl_best": round(cl["eval_loss"] / tb["eval_loss"], 3),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(a.out)
    print()
    print(
        "| trainer | tokens/s | MFU | tokens/s after step 1 | MFU after step 1 | peak RSS MB | eval loss | steps "
        "|\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows + [dict(v, name="  " + v["name"]) for v in trl.values()]:
        steady = f"{r['steady_tokens_per_s']:.1f} | {r['steady_mfu']:.1%}" if r["steady_tokens_per_s"] else "- | -"
        print(
            f"| {r['name']} | {r['tokens_per_s']:.1f} | {r['mfu']:.1%} | {steady} | "
            f"{r['peak_rss_mb']:.0f} | {r['eval_loss']:.4f} | {r['steps']} |"
        )
    print(
        f"\nclinitune vs trl_best ({best['name']}): {out['ratios']['tokens_per_s_vs_trl_best']}x tokens/s "
        f"({out['ratios']['steady_tokens_per_s_vs_trl_best']}x after step 1), "
        f"{out['ratios']['peak_rss_vs_trl_best']}x peak RSS, eval loss ratio {out['ratios']['eval_loss_vs_trl_best']}"
    )
    print(f"written {a.out}")


def _cpu_bf16() -> bool:
    from clinitune.models.adapt import cpu_has_bf16

    return cpu_has_bf16()


def _machine() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


if __name__ == "__main__":
    main()
