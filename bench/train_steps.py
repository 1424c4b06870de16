"""Seconds a step and peak RSS of the bench's clinitune setup, in a fresh process, with config overrides.

    .venv/bin/python bench/train_steps.py [--steps 8] [--set training.fused_layers=false ...] [--data DIR]

bench/train_ab.py compares two settings in one process, which evens out the machine's drift but cannot
tell their memory apart. This runs one setting alone (bench/train_throughput.py's model, LoRA, 4 packed
512-token rows a step, without recompute), two warm-up steps, then `--steps` timed ones, printing the
process's peak RSS every 8 steps: run it once per setting, one after the other, never two at once.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_throughput import ROWS, SEQ, clinitune_config, ensure_data  # noqa: E402

from clinitune.config import load_config  # noqa: E402
from clinitune.models.adapt import plan as make_plan  # noqa: E402
from clinitune.train.collate import epoch_rows  # noqa: E402
from clinitune.train.distributed import Dist  # noqa: E402
from clinitune.train.loop import setup, train_step  # noqa: E402


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "work" / "quickstart" / "data"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], help="section.key=value (YAML value), repeatable")
    a = ap.parse_args()
    data = ensure_data(Path(a.data))
    work = Path(tempfile.mkdtemp(prefix="bench-steps-"))
    cfg = clinitune_config(data / "train.jsonl", work / "run", 1000)
    for item in a.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = yaml.safe_load(value)
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    c = load_config(work / "cfg.yaml")
    s = setup(c, make_plan(c), Dist(), resume=False, quiet=True)
    rows = epoch_rows(s.train_data, 42, 0, SEQ, True, weights=s.task_weights)
    batches = [rows[(i * ROWS) % len(rows) : (i * ROWS) % len(rows) + ROWS] for i in range(a.steps + 2)]
    times = []
    for i, batch in enumerate(batches):
        t = time.perf_counter()
        loss, n, _ = train_step(s, batch)
        if i >= 2:
            times.append(time.perf_counter() - t)
        if i % 8 == 7:
            print(f"step {i + 1}: peak RSS {peak_mb()} MB", flush=True)
    tokens = sum(len(r.ids) for b in batches[2:] for r in b)
    print(
        f"{' '.join(a.set) or 'defaults'}: median {statistics.median(times):.3f} s a step, "
        f"{tokens / sum(times):.1f} tokens/s over {len(times)} steps, last loss {loss / max(n, 1):.4f}, "
        f"peak RSS {peak_mb()} MB"
    )


if __name__ == "__main__":
    main()
