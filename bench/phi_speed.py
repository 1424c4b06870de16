"""How fast the PHI screen reads prepare's examples, and whether its memory stays flat.

Times `phi.screen_examples` (the call prepare makes, 256 examples a batch) over every example of a prepared
dataset, after one warm-up batch loads the models, and samples the process's RSS after each pass.

    python bench/phi_speed.py DATA_DIR [--passes 3]

DATA_DIR is a `clinitune prepare --out` directory (the quickstart's, say). Prints examples/s per pass and RSS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psutil

from clinitune.data.example import load
from clinitune.data.privacy import phi


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    examples = [ex for s in ("train", "eval", "test") for ex in load(args.data / f"{s}.jsonl")]
    words = sum(len(t.split()) for ex in examples for _, t in ex.texts()) / len(examples)
    phi.screen_examples(examples[:256])  # load the detectors before the clock starts
    proc = psutil.Process()
    rss = proc.memory_info().rss >> 20
    print(f"{len(examples)} examples, {words:.0f} words each on average; RSS after warm-up {rss} MB")
    for k in range(args.passes):
        t0 = time.perf_counter()
        phi.screen_examples(examples)
        secs = time.perf_counter() - t0
        print(
            f"pass {k + 1}: {len(examples) / secs:.0f} examples/s ({secs:.1f} s), RSS {proc.memory_info().rss >> 20} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
