"""Training throughput, side by side: the spec's recipe, TRL's SFTTrainer, and clinitune.

    python bench/train_throughput.py [--steps 34] [--warmup 2] [--trl-variants all|best-guess] [--no-recipe]

All trainers get the same prepared quickstart examples, the same base model (SmolLM2-135M-Instruct),
the same LoRA (r 16, alpha 32, dropout 0, all linear layers), learning rate, schedule and loss
(response tokens only), and train `--steps` optimizer steps of 4 packed 512-token rows (8 examples
a step where a trainer does not pack). Each runs in its own process so its peak RSS is its own.
Afterwards every adapter is scored by one evaluator (fp32, response-token loss on held-out examples),
so speed bought with a worse loss shows.

Steady state is what the table reports: the tokens of the steps after the first `--warmup` (which pay
for allocation and kernel selection) over the time from the end of step `--warmup` to the end of the
last step, timed at each optimizer step's end. clinitune is driven through its own `setup` and
`train_step`, the code `clinitune train` runs each step (its loop adds logging and evals, off here).

MFU counts the FLOPs the job needs, the same formula for every trainer, per non-pad token:

    4 x P_body  +  6 x P_lora  +  12 x L x d x ctx      and per response token  4 x V x d

where P_body = L (2 d^2 + 2 d kv + 3 d ff) is the frozen body's linear weights (forward, and the
gradient of its input: 2 + 2 FLOPs per weight), P_lora = L r (2 (d + d) + 2 (d + kv) + 3 (d + ff))
is LoRA's (forward, input and weight gradients: 6), 12 L d ctx is attention's scores and values in
forward and backward over the mean `ctx` positions a token attends to in its example, and the head
runs on response tokens only (forward and input gradient). Work a trainer does beyond that (logits on
prompt tokens, padding, attention across packed neighbours) is not counted. FLOPs per token are the
mean over the examples; the peak is a 4096^3 GEMM in the trainer's dtype, measured in this run.
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
EXAMPLES = 600  # enough for 34 steps of 4 packed rows (about 3.5 examples a row) or of 8 unpacked examples
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


def _hf_train(
    name: str, train: list[dict], workdir: Path, steps: int, packing: bool = False, bf16: bool = False
) -> Path:
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
        max_steps=steps,
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
    # Each step's end time and each batch's tokens (the collator runs once per batch, in order: no workers, no
    # accumulation; accelerate may fetch one batch ahead, so the list can be one longer than the steps).
    from transformers import TrainerCallback

    ends: list[float] = []
    tokens: list[int] = []
    collate_fn = trainer.data_collator

    def counting(features):
        batch = collate_fn(features)
        mask = batch.get("attention_mask")
        tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    trainer.data_collator = counting
    trainer.add_callback(StepEnd())
    t = time.perf_counter()
    trainer.train()
    out = workdir / "adapter"
    trainer.model.save_pretrained(str(out))
    n = trainer.state.global_step
    (workdir / "timing.json").write_text(
        json.dumps({"steps": n, "step_ends": [e - t for e in ends[:n]], "step_tokens": tokens[:n]})
    )
    return out


def clinitune_config(train: Path, out: Path, steps: int) -> dict:
    """The bench's clinitune run: the same LoRA, rows, rate and constant schedule as the other contenders."""
    return {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "lora": {"method": "lora", **LORA},
        "data": {"train": str(train), "max_seq_length": SEQ, "packing": True},
        "training": {
            "output_dir": str(out),
            "per_device_train_batch_size": ROWS,
            "gradient_accumulation_steps": 1,
            "learning_rate": LR,
            "lr_scheduler_type": "constant",
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "max_steps": steps,
            "seed": 42,
            "early_stopping_patience": None,
            # As every other contender runs, and as configs/quickstart.yaml trains: activations fit in memory.
            "gradient_checkpointing": False,
        },
    }


def _clinitune_train(train: list[dict], workdir: Path, steps: int) -> Path:
    import yaml

    from clinitune.config import load_config
    from clinitune.models.adapt import plan as make_plan
    from clinitune.train.collate import epoch_rows
    from clinitune.train.distributed import Dist
    from clinitune.train.loop import setup, train_step

    (workdir / "train.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in train))
    cfg = clinitune_config(workdir / "train.jsonl", workdir / "run", steps)
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c = load_config(path)
    s = setup(c, make_plan(c), Dist(), resume=False, quiet=True)
    rows = epoch_rows(s.train_data, 42, 0, SEQ, True, weights=s.task_weights)
    ends, tokens = [], []
    t = time.perf_counter()
    for i in range(steps):
        batch = rows[i * ROWS : (i + 1) * ROWS]
        train_step(s, batch)
        ends.append(time.perf_counter() - t)
        tokens.append(sum(len(r.ids) for r in batch))
    out = workdir / "adapter"
    s.model.save_pretrained(str(out))
    (workdir / "timing.json").write_text(json.dumps({"steps": steps, "step_ends": ends, "step_tokens": tokens}))
    return out


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
    steps = spec["steps"]
    if name == "clinitune":
        adapter = _clinitune_train(train, workdir, steps)
    elif name == "spec_recipe":
        adapter = _hf_train(name, train, workdir, steps)
    else:
        adapter = _hf_train(name, train, workdir, steps, packing=spec["packing"], bf16=spec["bf16"])
    timing = json.loads((workdir / "timing.json").read_text())
    res = {**timing, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
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


def rates(r: dict, warmup: int, flops_per_token: float, peak: float) -> dict:
    """Whole-run and steady-state tokens/s and MFU from a worker's step end times and step tokens."""
    ends, toks = r["step_ends"], r["step_tokens"]
    steady_s = ends[-1] - ends[warmup - 1]
    steady_tok = sum(toks[warmup:])
    return {
        "seconds": round(ends[-1], 2),
        "tokens": sum(toks),
        "tokens_per_s": round(sum(toks) / ends[-1], 1),
        "steady_steps": len(toks) - warmup,
        "steady_tokens_per_s": round(steady_tok / steady_s, 1),
        "steady_mfu": round(steady_tok * flops_per_token / steady_s / 1e9 / peak, 4),
        "steady_step_seconds": round(steady_s / (len(toks) - warmup), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "work" / "quickstart" / "data"))
    ap.add_argument("--examples", type=int, default=EXAMPLES)
    ap.add_argument("--eval-examples", type=int, default=24)
    ap.add_argument("--steps", type=int, default=34, help="optimizer steps each trainer runs")
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the steady-state rate")
    ap.add_argument("--trl-variants", default="all", help="'all', or 'best-guess' (packing+bf16 only) for a quick run")
    ap.add_argument("--no-recipe", action="store_true", help="leave out the spec's recipe (fp32, slowest)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_throughput.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, json.loads(a.spec))), flush=True)
        return
    if a.steps - a.warmup < 30:
        print(f"note: {a.steps - a.warmup} steady steps; the issue's bar for a rate that decides is 30", flush=True)

    import torch

    data = ensure_data(Path(a.data))
    train, _ = subsets(data, a.examples, a.eval_examples)
    tokens, response, need = flops(train)
    per_token = need / tokens
    peaks = {"bfloat16": gemm_peak_gflops("bfloat16"), "float32": gemm_peak_gflops("float32")}
    bf16_ok = torch.cuda.is_available() or _cpu_bf16()
    print(
        f"{len(train)} examples, {tokens} tokens ({response} response), {per_token / 1e6:.1f} MFLOP per token; "
        f"{a.steps} steps each, the first {a.warmup} left out; GEMM peak bf16 {peaks['bfloat16']} GFLOP/s, "
        f"fp32 {peaks['float32']} GFLOP/s",
        flush=True,
    )

    runs = [] if a.no_recipe else [("spec_recipe", {"bf16": False})]
    runs.append(("clinitune", {"bf16": bf16_ok}))
    variants = TRL_VARIANTS if a.trl_variants == "all" else TRL_VARIANTS[:1]
    runs += [
        (f"trl[packing={'on' if p else 'off'},bf16={'on' if b else 'off'}]", {"packing": p, "bf16": b})
        for p, b in variants
    ]
    results = {}
    for name, extra in runs:
        spec = {"data": str(data), "examples": a.examples, "eval_examples": a.eval_examples, "steps": a.steps, **extra}
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
        r = {"name": name, "dtype": dtype, **rates(r, a.warmup, per_token, peaks[dtype]), **r}
        r.pop("step_ends"), r.pop("step_tokens")
        results[name] = r
        print(
            f"  {name:<32} {r['steady_tokens_per_s']:>8.1f} tok/s steady ({r['steady_steps']} steps, "
            f"{r['steady_step_seconds']} s/step)  MFU {r['steady_mfu']:.3f}  peak RSS {r['peak_rss_mb']:>7.0f} MB  "
            f"eval loss {r['eval_loss']:.4f}  ({time.perf_counter() - t:.0f} s with load and eval)",
            flush=True,
        )

    trl = {k: v for k, v in results.items() if k.startswith("trl[")}
    best = max(trl.values(), key=lambda r: r["steady_tokens_per_s"])
    rows = [] if a.no_recipe else [dict(results["spec_recipe"], name="spec_recipe")]
    rows += [dict(best, name="trl_best", variant=best["name"]), dict(results["clinitune"], name="clinitune")]
    cl = results["clinitune"]
    out = {
        "machine": _machine(),
        "command": "python bench/train_throughput.py " + " ".join(sys.argv[1:]),
        "gemm_peak_gflops": peaks["bfloat16" if bf16_ok else "float32"],
        "gemm_peak_gflops_by_dtype": peaks,
        "examples": len(train),
        "flops_per_token": round(per_token),
        "steps": a.steps,
        "warmup": a.warmup,
        "rows": rows,
        "trl_variants": list(trl.values()),
        "ratios": {
            "steady_tokens_per_s_vs_trl_best": round(cl["steady_tokens_per_s"] / best["steady_tokens_per_s"], 2),
            "peak_rss_vs_trl_best": round(cl["peak_rss_mb"] / best["peak_rss_mb"], 2),
            "eval_loss_vs_trl_best": round(cl["eval_loss"] / best["eval_loss"], 3),
        },
    }
    if not a.no_recipe:
        ratio = cl["steady_tokens_per_s"] / results["spec_recipe"]["steady_tokens_per_s"]
        out["ratios"]["steady_tokens_per_s_vs_spec_recipe"] = round(ratio, 2)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(a.out)
    print()
    print(
        "| trainer | steady tokens/s | steady MFU | s/step | steady steps | peak RSS MB | eval loss | dtype |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for r in rows + [dict(v, name="  " + v["name"]) for v in trl.values()]:
        print(
            f"| {r['name']} | {r['steady_tokens_per_s']:.1f} | {r['steady_mfu']:.1%} | {r['steady_step_seconds']} | "
            f"{r['steady_steps']} | {r['peak_rss_mb']:.0f} | {r['eval_loss']:.4f} | {r['dtype']} |"
        )
    ratios = out["ratios"]
    print(
        f"\nclinitune vs trl_best ({best['name']}): {ratios['steady_tokens_per_s_vs_trl_best']}x steady tokens/s, "
        f"{ratios['peak_rss_vs_trl_best']}x peak RSS, eval loss ratio {ratios['eval_loss_vs_trl_best']}"
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
