"""The quickstart end to end, with its numbers kept: `clinitune quickstart` in a fresh work dir, then its summary,
eval table and per-step seconds written to bench/results/quickstart_<profile>.json with the command, commit and
CPU that produced them. The README quotes these files; a re-run replaces them.

    .venv/bin/python bench/quickstart_run.py --workdir /tmp/qs_bench            # fast profile
    .venv/bin/python bench/quickstart_run.py --workdir /tmp/qs_full --profile full
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from provenance import machine_line, provenance

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a scratch dir; emptied first")
    ap.add_argument("--profile", default="fast", choices=("fast", "full"))
    ap.add_argument("extra", nargs="*", help="more quickstart flags, after --")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    cmd = [str(ROOT / ".venv/bin/clinitune"), "quickstart", "--workdir", str(args.workdir), "--profile", args.profile]
    t = time.perf_counter()
    done = subprocess.run([*cmd, *args.extra], capture_output=True, text=True, check=False)
    wall = round(time.perf_counter() - t, 1)
    if done.returncode != 0:
        sys.exit(f"quickstart failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary = json.loads((args.workdir / "summary.json").read_text())
    metrics = json.loads((args.workdir / "eval" / "metrics.json").read_text())
    prov = provenance()
    result = {
        **prov,
        "quickstart": " ".join(["clinitune", *cmd[1:], *args.extra]),
        "wall_s": wall,
        "seconds": summary["seconds"],
        "training": summary["training"],
        "comparison": metrics["comparison"],
        "phrasings": metrics.get("phrasings"),
        "facts": metrics.get("facts"),
        "backend": metrics.get("backend"),
        "verdict_line": next((x for x in done.stdout.splitlines() if "significantly better" in x), None),
    }
    out = ROOT / "bench" / "results" / f"quickstart_{args.profile}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{machine_line(prov)}: {wall} s end to end; {result['verdict_line']}")
    print(json.dumps(summary["seconds"]))
    for r in metrics["comparison"]:
        cells = " ".join(f"{c}={r.get(c)}" for c in ("zero_shot", "few_shot", "fine_tuned"))
        print(f"{r['task']:<18} n={r['n']:<3} {cells} {r.get('verdict')}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
