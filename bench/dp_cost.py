"""What differential privacy costs and buys: the same quickstart training at several epsilons and without DP,
each scored on the same test examples (task scores with intervals, membership AUC, time per step).

Needs a finished quickstart (its data, config and non-DP run):

    .venv/bin/clinitune quickstart --workdir /tmp/qs
    .venv/bin/python bench/dp_cost.py --workdir /tmp/qs --epsilons 1,4,8 --steps 100 --limit 32

Runs one process at a time (train, then eval, per epsilon); prints a markdown table and writes
results/dp_cost.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def clinitune(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clinitune.cli", *args], check=True)


def row(label: str, run: Path, eval_dir: Path) -> dict:
    summary = json.loads((run / "train_summary.json").read_text())
    m = json.loads((eval_dir / "metrics.json").read_text())
    mi = (m.get("privacy") or {}).get("membership_inference") or {}
    dp = summary.get("privacy") or {}
    tasks = {
        r["task"]: {"score": r.get("fine_tuned"), "ci95": (r.get("ci95") or {}).get("fine_tuned"), "n": r["n"]}
        for r in m["comparison"]
    }
    return {
        "run": label,
        "epsilon": dp.get("epsilon_spent"),
        "noise_multiplier": dp.get("noise_multiplier"),
        "seconds_per_step": round(summary["loop_seconds"] / max(summary["steps"], 1), 2),
        "membership_auc": mi.get("auc"),
        "membership_auc_ci95": mi.get("auc_ci95"),
        "tasks": tasks,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--epsilons", default="1,4,8")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--patients-per-step", type=int, default=8)
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "dp_cost.json")
    args = ap.parse_args()
    w = args.workdir
    test = w / "data" / "test.jsonl"

    def scored(run: Path) -> Path:
        # Every run scored alike (no baselines: the quickstart's own eval holds them), the no-DP run too.
        if not (run / "eval" / "metrics.json").is_file():
            limit = str(args.limit)
            clinitune("eval", "--run", str(run), "--data", str(test), "--out", str(run / "eval"), "--limit", limit,
                      "--baseline", "none", "-q")  # fmt: skip
        return run / "eval"

    rows = [row("no DP", w / "run", scored(w / "run"))]
    for eps in args.epsilons.split(","):
        run = w / f"dp-eps{eps}"
        sets = [
            f"training.output_dir={run}",
            f"training.max_steps={args.steps}",
            f"privacy.target_epsilon={eps}",
            f"privacy.patients_per_step={args.patients_per_step}",
        ]
        if not (run / "train_summary.json").is_file():
            clinitune("train", "--config", str(w / "train_config.yaml"), *[a for s in sets for a in ("--set", s)], "-q")
        rows.append(row(f"DP epsilon {eps}", run, scored(run)))
    tasks = sorted(rows[0]["tasks"])
    print("| run | epsilon spent | noise | s/step | membership AUC [95% CI] | " + " | ".join(tasks) + " |")
    print("|---|---|---|---|---|" + "---|" * len(tasks))
    for r in rows:
        auc = (
            f"{r['membership_auc']} [{r['membership_auc_ci95'][0]}, {r['membership_auc_ci95'][1]}]"
            if r["membership_auc_ci95"]
            else "-"
        )
        cells = []
        for t in tasks:
            c = r["tasks"].get(t) or {}
            ci = c.get("ci95")
            cells.append(f"{c['score']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-")
        eps = f"{r['epsilon']:.2f}" if r["epsilon"] is not None else "inf"
        noise = f"{r['noise_multiplier']:.3f}" if r["noise_multiplier"] else "0"
        print(f"| {r['run']} | {eps} | {noise} | {r['seconds_per_step']} | {auc} | " + " | ".join(cells) + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
