"""One speed lever, on and off, in one process: how much faster a training step gets.

    .venv/bin/python bench/train_ab.py --lever packed_attention [--rounds 3 --steps 4] [--data work/quickstart/data]

Two sessions of the bench's setup (bench/train_throughput.py: SmolLM2-135M-Instruct, LoRA r 16 on all
linear layers, 4 packed 512-token rows a step, bf16 autocast where the CPU has it) are built through
clinitune's own setup, one with the lever and one without. They take turns, `--steps` steps each per
round, over the same batches, so that the machine's drift hits both alike; the first round is warm-up.
Prints the median seconds per step of each and their ratio, with the last step's losses (the lever
must not change what is computed), and writes bench/results/train_ab_<lever>.json.

Levers:
- packed_attention: each example of a packed row attends within itself (models/packed_attention.py),
  against SDPA over the whole row with the block-diagonal mask.
- fused_lora: one autograd node per LoRA layer (train/fused_lora.py), against PEFT's forward.
- fused_layers: RMSNorms and SwiGLU activations as single autograd nodes (train/fused_layers.py), against
  the models' own code.
- no_recompute: activations kept for backward (training.gradient_checkpointing: false), against
  recomputing each layer's forward in backward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_throughput import ROWS, SEQ, clinitune_config, ensure_data  # noqa: E402

from clinitune.config import load_config  # noqa: E402
from clinitune.models.adapt import plan as make_plan  # noqa: E402
from clinitune.paths import atomic_write_text  # noqa: E402
from clinitune.train.collate import epoch_rows  # noqa: E402
from clinitune.train.distributed import Dist  # noqa: E402
from clinitune.train.loop import setup, train_step  # noqa: E402

LEVERS = ("packed_attention", "fused_lora", "fused_layers", "no_recompute")


def session(data: Path, work: Path, lever: str, on: bool):
    cfg = clinitune_config(data / "train.jsonl", work / f"run-{on}", 1000)
    if lever in ("fused_lora", "fused_layers"):
        cfg["training"][lever] = on
    if lever == "no_recompute":
        cfg["training"]["gradient_checkpointing"] = not on
    path = work / f"cfg-{on}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c = load_config(path)
    s = setup(c, make_plan(c), Dist(), resume=False, quiet=True)
    if lever == "packed_attention" and not on:
        base = s.model.get_base_model() if hasattr(s.model, "get_base_model") else s.model
        base.set_attn_implementation("sdpa")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lever", choices=LEVERS, required=True)
    ap.add_argument("--data", default=str(ROOT / "work" / "quickstart" / "data"))
    ap.add_argument("--rounds", type=int, default=3, help="rounds after the warm-up round")
    ap.add_argument("--steps", type=int, default=4, help="steps per contender per round")
    a = ap.parse_args()
    data = ensure_data(Path(a.data))
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    sessions = {on: session(data, work, a.lever, on) for on in (True, False)}
    rows = epoch_rows(sessions[True].train_data, 42, 0, SEQ, True, weights=sessions[True].task_weights)
    need = (a.rounds + 1) * a.steps
    batches = [rows[(i * ROWS) % len(rows) : (i * ROWS) % len(rows) + ROWS] for i in range(need)]
    times: dict[bool, list[float]] = {True: [], False: []}
    losses: dict[bool, float] = {}
    for r in range(a.rounds + 1):
        for on in (True, False) if r % 2 else (False, True):
            for b in batches[r * a.steps : (r + 1) * a.steps]:
                t = time.perf_counter()
                loss, n, _ = train_step(sessions[on], b)
                losses[on] = loss / max(n, 1)
                if r:  # round 0 warms both up
                    times[on].append(time.perf_counter() - t)
    med = {on: statistics.median(v) for on, v in times.items()}
    tokens = sum(len(x.ids) for b in batches for x in b) / len(batches)
    out = {
        "lever": a.lever,
        "steps_each": len(times[True]),
        "tokens_per_step": tokens,
        "seconds_per_step": {"on": med[True], "off": med[False]},
        "speedup": med[False] / med[True],
        "last_loss": {"on": losses[True], "off": losses[False]},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"| {a.lever} | s/step | tokens/s | last loss |\n|---|---|---|---|")
    for on in (True, False):
        print(f"| {'on' if on else 'off'} | {med[on]:.2f} | {tokens / med[on]:.0f} | {losses[on]:.4f} |")
    print(f"speedup {out['speedup']:.2f}x over {out['steps_each']} steps each ({tokens:.0f} tokens a step)")
    dest = ROOT / "bench" / "results" / f"train_ab_{a.lever}.json"
    atomic_write_text(dest, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
