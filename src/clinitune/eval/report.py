"""Evaluation outputs: metrics.json, report.md, report.html, per-task bar chart, worst outputs."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

from ..layout import RunDir
from ..paths import atomic_write_text
from .metrics import PRIMARY

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

LABELS = {"fine_tuned": "fine-tuned", "zero_shot": "base zero-shot", "few_shot": "base few-shot"}


@dataclass
class EvalResults:
    """What `clinitune eval` measured; metrics.json is its `to_dict()`."""

    # candidate -> {"tasks": {task: {"n": n, metric: mean, ...}}, "loss": ..., "perplexity": ...}
    candidates: dict[str, dict]
    n_examples: int
    seed: int
    phi_gate: list[dict] = field(default_factory=list)
    privacy: dict | None = None
    comparison: list[dict] = field(default_factory=list)  # comparison_rows(candidates)

    def to_dict(self) -> dict:
        return asdict(self)


def comparison_rows(cands: dict[str, dict]) -> list[dict]:
    """One row per task: the primary metric for each candidate and the fine-tuned delta over the best baseline."""
    rows = []
    for task in sorted(cands.get("fine_tuned", {}).get("tasks", {})):
        metric = PRIMARY.get(task, "token_f1")
        vals = {c: cands[c]["tasks"].get(task, {}).get(metric) for c in cands}
        base = [v for c, v in vals.items() if c != "fine_tuned" and v is not None]
        rows.append(
            {
                "task": task,
                "metric": metric,
                **vals,
                "delta": round(vals["fine_tuned"] - max(base), 4) if base else None,
            }
        )
    return rows


def _bar_chart(rows: list[dict], cands: list[str], path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4), dpi=110)
    width = 0.8 / max(len(cands), 1)
    order = [c for c in ("zero_shot", "few_shot", "fine_tuned") if c in cands]
    for j, c in enumerate(order):
        ax.bar([i + j * width for i in range(len(rows))], [r.get(c) or 0 for r in rows], width, label=LABELS[c])
    ax.set_xticks([i + width * (len(order) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels([f"{r['task']}\n({r['metric']})" for r in rows], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title("clinitune eval: primary metric per task")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(results: EvalResults, rows: list[dict], out: Path, run: Path | None) -> None:
    cands = list(results.candidates)
    comp = results.comparison
    atomic_write_text(out / "metrics.json", json.dumps(results.to_dict(), indent=2))
    has_chart = _bar_chart(comp, cands, out / "tasks.png")
    has_loss = False
    if run is not None and RunDir(run).loss_plot.is_file():
        shutil.copy(RunDir(run).loss_plot, out / "loss.png")
        has_loss = True
    worst = {}
    for r in rows:
        worst.setdefault(r["task"], []).append(r)
    worst = {t: sorted(v, key=lambda r: r["score"])[:10] for t, v in worst.items()}
    atomic_write_text(out / "worst_outputs.json", json.dumps(worst, indent=2, ensure_ascii=False))
    atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    head = ["task", "metric", *[LABELS[c] for c in cands], "delta"]
    md = [
        "# clinitune evaluation",
        "",
        f"{results.n_examples} held-out examples, seed {results.seed}.",
        "",
        "## Primary metric per task",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in comp:
        md.append(
            f"| {r['task']} | {r['metric']} | " + " | ".join(fmt(r.get(c)) for c in cands) + f" | {fmt(r['delta'])} |"
        )
    md += ["", "## All metrics", ""]
    for c in cands:
        e = results.candidates[c]
        md.append(f"### {LABELS[c]}" + (f" (loss {e['loss']}, perplexity {e['perplexity']})" if "loss" in e else ""))
        md.append("")
        for task, vals in e["tasks"].items():
            md.append(f"- {task}: " + ", ".join(f"{k} {v}" for k, v in vals.items()))
        md.append("")
    if results.privacy is not None:
        md += ["## Privacy probes", "", "```json", json.dumps(results.privacy, indent=2), "```", ""]
    if has_chart:
        md.append("![per-task scores](tasks.png)")
    if has_loss:
        md.append("![training loss](loss.png)")
    md += [
        "",
        "The 10 lowest-scoring fine-tuned outputs per task are in `worst_outputs.json`; every fine-tuned output, "
        "with its reference and score, is in `predictions.jsonl`.",
    ]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    cells = lambda vals: "".join(f"<td>{html.escape(str(v))}</td>" for v in vals)  # noqa: E731
    body = [
        f"<h1>clinitune evaluation</h1><p>{results.n_examples} held-out examples.</p>",
        "<table border=1 cellpadding=4><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>",
    ]
    for r in comp:
        body.append(
            "<tr>" + cells([r["task"], r["metric"], *[fmt(r.get(c)) for c in cands], fmt(r["delta"])]) + "</tr>"
        )
    body.append("</table>")
    if has_chart:
        body.append('<img src="tasks.png" alt="per-task scores">')
    if has_loss:
        body.append('<img src="loss.png" alt="training loss">')
    if results.privacy is not None:
        body.append(f"<h2>Privacy probes</h2><pre>{html.escape(json.dumps(results.privacy, indent=2))}</pre>")
    atomic_write_text(
        out / "report.html", "<!doctype html><meta charset=utf-8><title>clinitune eval</title>" + "".join(body)
    )
