"""Where a clinitune training step spends its time: torch.profiler over real steps, per op and per kind.

    .venv/bin/python bench/train_profile.py [--steps 4] [--data work/quickstart/data]

The bench's setup (SmolLM2-135M-Instruct, LoRA r 16 on all linear layers, 4 packed 512-token rows a
step, bf16 autocast where the CPU has it) through clinitune's own setup and step. Two warm-up steps,
then `--steps` profiled. Prints the ops by self CPU time and a summary by kind (GEMM, attention,
elementwise and norms, optimizer, the rest), and the share of the step that is GEMM: the part a faster
kernel cannot shrink below the machine's peak. Writes bench/results/train_profile.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_throughput import ROWS, SEQ, clinitune_config, ensure_data  # noqa: E402

from clinitune.config import load_config  # noqa: E402
from clinitune.models.adapt import plan as make_plan  # noqa: E402
from clinitune.train.collate import epoch_rows  # noqa: E402
from clinitune.train.distributed import Dist  # noqa: E402
from clinitune.train.loop import setup, train_step  # noqa: E402

# Checked in order. Packed rows attend through batched matmuls, a mask and a softmax
# (models/packed_attention.py): those count as attention; mm and addmm are the linear layers.
KINDS = {
    "attention": (
        "scaled_dot_product",
        "flash_attention",
        "_efficient_attention",
        "softmax",
        "aten::bmm",
        "aten::masked_fill",
    ),
    "gemm": ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "optimizer": ("Optimizer.step", "_foreach", "aten::addcdiv", "aten::lerp"),
}


def kind_of(name: str) -> str:
    for kind, keys in KINDS.items():
        if any(k in name for k in keys):
            return kind
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "work" / "quickstart" / "data"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_profile.md"))
    a = ap.parse_args()
    data = ensure_data(Path(a.data))
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    cfg = clinitune_config(data / "train.jsonl", work / "run", 1000)
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    c = load_config(work / "cfg.yaml")
    s = setup(c, make_plan(c), Dist(), resume=False, quiet=True)
    rows = epoch_rows(s.train_data, 42, 0, SEQ, True, weights=s.task_weights)
    batches = [rows[i * ROWS : (i + 1) * ROWS] for i in range(a.steps + 2)]
    for b in batches[:2]:
        train_step(s, b)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[2:]:
            train_step(s, b)
    wall = time.perf_counter() - t0
    tokens = sum(len(r.ids) for b in batches[2:] for r in b)
    # Self time: each op's own time, without its children, so the kinds add up to the whole.
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events)
    by_kind: dict[str, float] = defaultdict(float)
    for e in events:
        by_kind[kind_of(e.key)] += e.self_cpu_time_total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:25]
    threads = torch.get_num_threads()
    md = [
        "# A training step, profiled",
        "",
        f"`.venv/bin/python bench/train_profile.py --steps {a.steps}`: {a.steps} steps of {ROWS} packed rows "
        f"({tokens:,} tokens) in {wall:.1f} s wall ({tokens / wall:.0f} tokens/s under the profiler), "
        f"{threads} threads, {os.cpu_count()} CPUs, torch {torch.__version__}.",
        "",
        "| kind | self CPU s | share |",
        "|---|---|---|",
    ]
    md += [f"| {k} | {v / 1e6:.2f} | {v / total_us:.1%} |" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])]
    md += ["", "| op | calls | self CPU s | share | kind |", "|---|---|---|---|---|"]
    md += [
        f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e6:.3f} | {e.self_cpu_time_total / total_us:.1%} | "
        f"{kind_of(e.key)} |"
        for e in top
    ]
    text = "\n".join(md) + "\n"
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(a.out)


if __name__ == "__main__":
    main()
