"""Evaluation throughput, side by side: `clinitune eval` as it was at a past revision against this tree.

Both run the whole HF evaluation (fine-tuned, zero-shot and few-shot replies, test losses, privacy
probes) on the same run, the same test examples (eval's own seeded sample at --limit), the same
budgets and metrics. The past revision is checked out into a temporary git worktree and imported from
there, in its own process; then this tree runs in a fresh process. One process at a time, so neither
slows the other. With --gguf, the exported file is also scored through llama.cpp (`eval --gguf`).

    .venv/bin/python bench/eval_throughput.py --workdir work/quickstart --limit 160 --before 99e091c
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run inside the child process: import clinitune from `src`, time evaluate() alone, print its summary.
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from clinitune.eval.run import evaluate
kw = json.loads(sys.argv[2])
kw = {k: Path(v) if k in ("data", "out", "run", "gguf") else v for k, v in kw.items()}
t = time.perf_counter()
r = evaluate(quiet=True, **kw)
seconds = time.perf_counter() - t
primary = {row["task"]: {c: row.get(c) for c in r.candidates} for row in r.comparison}
summary = {"seconds": seconds, "n": r.n_examples, "candidates": list(r.candidates), "primary": primary}
print("RESULT " + json.dumps(summary))
"""


def run(src: Path, **kw) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(src),
            json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in kw.items()}),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{src}: evaluate failed:\n{out.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("work/quickstart"), help="a finished quickstart")
    ap.add_argument("--limit", type=int, default=160)
    ap.add_argument("--before", default="99e091c", help="the git revision to compare against")
    ap.add_argument("--gguf", action="store_true", help="also score the exported q4_k_m GGUF through llama.cpp")
    args = ap.parse_args()
    data, run_dir = args.workdir / "data" / "test.jsonl", args.workdir / "run"
    rows = []
    with tempfile.TemporaryDirectory(prefix="clinitune-before-") as tmp:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, args.before], check=True)
        try:
            kw = dict(data=data, out=Path(tmp) / "eval-before", run=run_dir, limit=args.limit, seed=42)
            rows.append((f"eval at {args.before}", run(Path(tmp) / "src", **kw)))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], check=True)
    kw = dict(data=data, out=args.workdir / "eval-bench", run=run_dir, limit=args.limit, seed=42)
    rows.append(("eval, this tree", run(ROOT / "src", **kw)))
    if args.gguf:
        gguf = next((args.workdir / "export").glob("*-q4_k_m.gguf"))
        kw = dict(data=data, out=args.workdir / "eval-bench-gguf", gguf=gguf, limit=args.limit, seed=42)
        rows.append((f"eval --gguf {gguf.name} (fine-tuned only)", run(ROOT / "src", **kw)))

    base = rows[0][1]
    print(f"\n{base['n']} test examples, limit {args.limit}, run {run_dir}\n")
    print("| version | candidates | seconds | replies/s | vs before |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        replies = r["n"] * len(r["candidates"])
        speed = replies / r["seconds"]
        ratio = speed / (base["n"] * len(base["candidates"]) / base["seconds"])
        print(f"| {name} | {', '.join(r['candidates'])} | {r['seconds']:.1f} | {speed:.2f} | {ratio:.2f}x |")
    print("\nPrimary metric per task (same examples; a difference is decoding numerics, not the model):\n")
    cands = base["candidates"]
    print("| task | " + " | ".join(f"{c} ({name})" for name, r in rows[:2] for c in cands) + " |")
    print("|---|" + "---|" * (2 * len(cands)))
    for task in base["primary"]:
        cells = [rows[i][1]["primary"][task].get(c) for i in range(min(2, len(rows))) for c in cands]
        print(f"| {task} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    out_path = Path(__file__).parent / "results" / "eval_throughput.json"
    out_path.write_text(json.dumps([{"version": name, **r} for name, r in rows], indent=2))


if __name__ == "__main__":
    main()
