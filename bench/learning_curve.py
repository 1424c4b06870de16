"""A task's learning curve: its primary metric at every checkpoint of a run, against the tokens trained on.

For a task that ends a run no better than the base model, the curve says whether more tokens would help
(still rising) or not (flat at zero). Every point scores the same seeded test examples; each carries its
95 % interval; token 0 is the base model, zero-shot. Writes learning_curve.json and learning_curve.png and
prints a table.

    .venv/bin/python bench/learning_curve.py --workdir /tmp/qsfull --tasks icd10_lookup,validation --n 40

The run must keep its checkpoints (the full quickstart profile keeps all of them).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import matplotlib
from safetensors.torch import load_file

from clinitune.eval import metrics as M
from clinitune.eval.run import budgets, select, sqlite_copy
from clinitune.layout import DataDir, RunDir
from clinitune.models.generate import generate, inference_parts
from clinitune.models.loading import load_adapter
from clinitune.stats import mean_ci

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def model_at(run: RunDir, ckpt: Path | None):
    """The base model with a checkpoint's trainable weights merged in (ckpt None: the base model alone)."""
    m, tok, adapter_dir, pickle = inference_parts(run.path, None, None)
    if ckpt is None:
        return m, tok
    peft = load_adapter(m, adapter_dir, pickle)
    params = dict(peft.named_parameters())
    for name, t in load_file(str(ckpt / "trainable.safetensors")).items():
        params[name].data.copy_(t.to(params[name].dtype))
    return peft.merge_and_unload(), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a quickstart workdir (run/ and data/)")
    ap.add_argument("--tasks", default="icd10_lookup,validation")
    ap.add_argument("--n", type=int, default=40, help="test examples per task, the same at every checkpoint")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--every", type=int, default=1, help="score every k-th checkpoint (the last always)")
    args = ap.parse_args()
    run, data = RunDir(args.workdir / "run"), DataDir(args.workdir / "data")
    tasks = args.tasks.split(",")
    rng = random.Random(args.seed)
    all_by_task = select(data.split("test"), None, args.seed)
    by_task = {t: rng.sample(all_by_task[t], min(args.n, len(all_by_task[t]))) for t in tasks}
    chosen = [e for exs in by_task.values() for e in exs]
    ckpts = run.checkpoints(complete_only=True)
    ckpts = [c for i, c in enumerate(ckpts) if i % args.every == args.every - 1 or c == ckpts[-1]]
    mixture = run.read_summary().task_mixture or {}

    points = []
    for ckpt in [None, *ckpts]:
        t0 = time.perf_counter()
        m, tok = model_at(run, ckpt)
        budget = budgets(by_task, lambda text: len(tok(text)["input_ids"]))
        state = json.loads((ckpt / "state.json").read_text()) if ckpt else {"step": 0, "tokens": 0}
        preds = generate(m, tok, [e.prompt for e in chosen], [budget[e.task] for e in chosen], 32, quiet=True)
        with sqlite_copy(data.path, None) as conn:
            scores = [M.score(e.task, p, e, conn).get(M.primary(e.task), 0.0) for e, p in zip(chosen, preds)]
        point = {"step": state["step"], "tokens": state["tokens"], "tasks": {}}
        for task in tasks:
            vals = [s for e, s in zip(chosen, scores) if e.task == task]
            lo, hi = mean_ci(vals, args.seed)
            point["tasks"][task] = {"mean": round(sum(vals) / len(vals), 4), "ci95": [lo, hi], "n": len(vals)}
        points.append(point)
        cells = "  ".join(f"{t} {v['mean']:.3f}" for t, v in point["tasks"].items())
        print(f"step {point['step']:>5}  tokens {point['tokens']:>9,}  {cells}  ({time.perf_counter() - t0:.0f} s)")

    out = {"workdir": str(args.workdir), "metric": {t: M.primary(t) for t in tasks}, "mixture": mixture}
    out["points"] = points
    (args.workdir / "learning_curve.json").write_text(json.dumps(out, indent=2))
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for i, task in enumerate(tasks):
        xs = [p["tokens"] / 1e6 for p in points]
        ys = [p["tasks"][task]["mean"] for p in points]
        err = [
            [y - p["tasks"][task]["ci95"][0] for y, p in zip(ys, points)],
            [p["tasks"][task]["ci95"][1] - y for y, p in zip(ys, points)],
        ]
        share = mixture.get(task, {}).get("share")
        label = f"{task} ({M.primary(task)}" + (f", {share:.0%} of examples)" if share else ")")
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label, color=f"C{i}")
    ax.set_xlabel("tokens trained on (millions)")
    ax.set_ylabel("primary metric, 95 % interval")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(f"learning curves, n = {args.n} test examples per task", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.workdir / "learning_curve.png")
    print("| step | tokens | " + " | ".join(tasks) + " |")
    print("|---|---|" + "---|" * len(tasks))
    for p in points:
        row = [f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" for v in p["tasks"].values()]
        print(f"| {p['step']} | {p['tokens']:,} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
