"""Evaluation outputs: metrics.json, report.md, report.html, per-task bar chart, worst outputs."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

from ..data.example import Example
from ..data.phrasings import HELD_OUT, SEEN, slice_of
from ..data.tasks import spec_of
from ..layout import EvalDir, RunDir
from ..paths import atomic_write_text
from ..stats import BETTER, SAME, WORSE, mean_ci, min_decisive_n, overall, paired, unpaired_diff_ci
from .metrics import primary

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

GGUF = "gguf"  # the candidate scored through llama.cpp from `eval --gguf FILE`
GGUF_SCHEMA = "gguf_schema"  # the same file with JSON answers constrained to their schema (`--constrain`)
HF_SCHEMA = "fine_tuned_schema"  # the fine-tuned model with JSON answers constrained likewise
COMPARED = "compared"  # another run of the same base model (`eval --compare RUN_DIR`), e.g. without DP
LABELS = {
    "fine_tuned": "fine-tuned",
    COMPARED: "compared run",
    "zero_shot": "base zero-shot",
    "few_shot": "base few-shot",
    HF_SCHEMA: "fine-tuned + schema",
    GGUF: "GGUF",
    GGUF_SCHEMA: "GGUF + schema",
}
BASELINES = ("zero_shot", "few_shot")
CACHE_NOTE = "baselines/ (same model files, prompts and settings; eval.cache_baselines: false to redo)"
SEEN_FACT, UNSEEN_FACT = "seen_fact", "unseen_fact"  # the answer's fact was, or was not, in a training answer
ORDER = ("zero_shot", "few_shot", "fine_tuned", COMPARED, HF_SCHEMA, GGUF, GGUF_SCHEMA)


@dataclass
class EvalResults:
    """What `clinitune eval` measured; metrics.json is its `to_dict()`."""

    # candidate -> {"tasks": {task: {"n": n, metric: mean, ..., "ci95": {metric: [lo, hi]}}}, "loss", "perplexity"}
    candidates: dict[str, dict]
    n_examples: int
    seed: int
    phi_gate: list[dict] = field(default_factory=list)
    privacy: dict | None = None
    comparison: list[dict] = field(default_factory=list)  # comparison_rows(...)
    gguf: str | None = None  # the file behind the "gguf" candidate
    phrasings: list[dict] = field(default_factory=list)  # seen against held-out phrasing slices (phrasing_rows)
    # What the test measures, per task: how many test answers state a fact training taught (fact_counts), and
    # the seen-fact against unseen-fact slices where a task has both (fact_rows).
    facts: dict[str, dict] = field(default_factory=dict)
    fact_slices: list[dict] = field(default_factory=list)
    # `--compare RUN_DIR`: {"run": dir, "dp": {candidate: DP record or None}, "privacy": its probes}
    compared: dict | None = None
    # {"key": ..., "hit": bool}: the base model's answers were read from (hit) or written to the data set's cache
    baseline_cache: dict | None = None
    backend: str = "hf"  # who wrote the replies of --run / --model: transformers, or llama.cpp on an f16 GGUF

    def to_dict(self) -> dict:
        return asdict(self)


def comparison_rows(cands: dict[str, dict], scores: dict[str, dict[str, list[float]]], seed: int = 0) -> list[dict]:
    """One row per task on its primary metric: each candidate's mean and interval, the subject (the fine-tuned
    model, or the GGUF alone) paired against each baseline, the GGUF paired against the HF model it came from,
    and a verdict against the baselines: better, worse, or no significant difference."""
    subject = "fine_tuned" if "fine_tuned" in cands else GGUF
    rows = []
    for task in sorted(cands[subject]["tasks"]):
        metric = primary(task)
        row = {"task": task, "metric": metric, "n": cands[subject]["tasks"][task]["n"]}
        row |= {c: cands[c]["tasks"][task].get(metric) for c in cands}
        row["ci95"] = {c: cands[c]["tasks"][task]["ci95"].get(metric) for c in cands}
        row["vs"] = {b: paired(scores[subject][task], scores[b][task], seed).to_dict() for b in BASELINES if b in cands}
        if subject == "fine_tuned" and GGUF in cands:
            row["gguf_vs_hf"] = paired(scores[GGUF][task], scores["fine_tuned"][task], seed).to_dict()
        if subject == "fine_tuned" and COMPARED in cands:
            row["vs_compared"] = paired(scores["fine_tuned"][task], scores[COMPARED][task], seed).to_dict()
        base = [row[b] for b in BASELINES if b in cands]
        row["delta"] = round(row[subject] - max(base), 4) if base else None
        row["verdict"] = overall([v["verdict"] for v in row["vs"].values()]) if row["vs"] else None
        row["decidable"] = row["n"] >= min_decisive_n()  # below it no outcome could be significant
        rows.append(row)
    return rows


def phrasing_rows(by_task: dict[str, list[Example]], primary: dict[str, dict[str, list[float]]], seed: int):
    """Per task and candidate: the primary metric on test examples asked in a phrasing training saw, and in one
    it never saw, with intervals; `gap` is held-out minus seen. The subject's rows also pair it with each
    baseline within each slice (`vs`) and give a verdict per slice. Tasks without both slices are left out."""
    where = {t: [slice_of(e.phrasing) for e in exs] for t, exs in by_task.items()}
    return slice_rows(where, primary, seed, (SEEN, HELD_OUT))


def taught(by_task: dict[str, list[Example]], train: list[Example]) -> dict[str, list[bool]]:
    """Per task, for each test example: does its answer state a fact (its task's `fact`) a training answer
    of the same task stated? A recalled code or knowledge item is not a new one."""
    facts: dict[str, set] = {}
    for e in train:
        facts.setdefault(e.task, set()).add(spec_of(e.task).fact_of(e))
    return {t: [spec_of(t).fact_of(e) in facts.get(t, ()) for e in exs] for t, exs in by_task.items()}


def fact_counts(seen: dict[str, list[bool]]) -> dict[str, dict]:
    return {t: {"n": len(v), "seen": sum(v), "share": round(sum(v) / len(v), 4)} for t, v in seen.items() if v}


def fact_rows(seen: dict[str, list[bool]], primary: dict[str, dict[str, list[float]]], seed: int) -> list[dict]:
    """Seen-fact against unseen-fact slices, as `phrasing_rows` does for phrasings, where a task has both."""
    where = {t: [SEEN_FACT if s else UNSEEN_FACT for s in v] for t, v in seen.items()}
    return slice_rows(where, primary, seed, (SEEN_FACT, UNSEEN_FACT))


def slice_rows(where: dict[str, list], primary: dict[str, dict[str, list[float]]], seed: int, names: tuple) -> list:
    """Per task and candidate, the primary metric on two slices of the same examples (`where` labels each),
    with intervals and the gap (second minus first); the subject paired with each baseline within each slice."""
    subject = "fine_tuned" if "fine_tuned" in primary else GGUF
    baselines = [b for b in BASELINES if b in primary]
    mean = lambda v: round(sum(v) / len(v), 4)  # noqa: E731
    a, b_ = names
    rows = []
    for task, labels in where.items():
        if a not in labels or b_ not in labels:
            continue
        part = lambda cand, sl: [v for v, w in zip(primary[cand][task], labels) if w == sl]  # noqa: E731
        for cand in primary:
            first, second = part(cand, a), part(cand, b_)
            row = {
                "task": task,
                "candidate": cand,
                a: {"n": len(first), "mean": mean(first), "ci95": list(mean_ci(first, seed))},
                b_: {"n": len(second), "mean": mean(second), "ci95": list(mean_ci(second, seed))},
                "gap": round(mean(second) - mean(first), 4),
                "gap_ci95": list(unpaired_diff_ci(second, first, seed)),
            }
            if cand == subject and baselines:
                row["vs"] = {
                    sl: {b: paired(part(cand, sl), part(b, sl), seed).to_dict() for b in baselines} for sl in names
                }
                row["verdict"] = {sl: overall([v["verdict"] for v in vs.values()]) for sl, vs in row["vs"].items()}
            rows.append(row)
    return rows


def task_plot(row: dict, cands: list[str], path: Path) -> None:
    """One task: each candidate's score with its 95 % interval as an error bar, so overlap is visible at a glance."""
    order = [c for c in ORDER if c in cands]
    vals = [row.get(c) or 0.0 for c in order]
    spans = [row["ci95"].get(c) or [v, v] for v, c in zip(vals, order)]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(order), 2.8), dpi=110)
    ax.bar(
        range(len(order)),
        vals,
        color=[f"C{ORDER.index(c)}" for c in order],
        yerr=[[v - lo for v, (lo, _) in zip(vals, spans)], [hi - v for v, (_, hi) in zip(vals, spans)]],
        capsize=4,
    )
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([LABELS[c] for c in order], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(row["metric"], fontsize=8)
    ax.set_title(f"{row['task']} (n={row['n']})" + (f": {row['verdict']}" if row.get("verdict") else ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cell(value: float | None, ci: list[float] | None) -> str:
    """0.625 [0.250, 1.000]"""
    if value is None:
        return "-"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def versus(row: dict) -> str:
    """The paired differences of a row, e.g. `+0.625 [0.250, 1.000] p=0.031 vs base zero-shot`."""
    parts = []
    for b, v in row["vs"].items():
        parts.append(f"{v['diff']:+.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] p={v['p']:.3g} vs {LABELS[b]}")
    return "; ".join(parts) or "-"


def console_table(results: EvalResults) -> list[str]:
    """The per-task table for a terminal: score [interval] per candidate, then the verdict against the baselines."""
    cands = [c for c in ORDER if c in results.candidates]
    width = 23
    lines = [
        "task".ljust(19)
        + "metric".ljust(20)
        + "n".rjust(4)
        + "".join(LABELS[c].rjust(width) for c in cands)
        + "  verdict"
    ]
    for r in results.comparison:
        cells = "".join(cell(r.get(c), r["ci95"].get(c)).rjust(width) for c in cands)
        lines.append(f"{r['task']:<19}{r['metric']:<20}{r['n']:>4}{cells}  {r.get('verdict') or '-'}")
    if (results.baseline_cache or {}).get("hit"):
        lines.append(f"baselines: the base model's answers reused from the data set's {CACHE_NOTE}")
    return lines


def verdict_line(results: EvalResults) -> str:
    """One sentence a reader can trust: how many tasks are significantly better, and which are not."""
    rows = [r for r in results.comparison if r.get("verdict")]
    if not rows:
        return "no baseline was run: no verdict"
    better = [r["task"] for r in rows if r["verdict"] == BETTER]
    worse = [r["task"] for r in rows if r["verdict"] == WORSE]
    same = [r["task"] for r in rows if r["verdict"] == SAME]
    out = f"fine-tuned is significantly better than every baseline on {len(better)} of {len(rows)} tasks"
    if same:
        out += f"; no significant difference on {', '.join(same)}"
    if worse:
        out += f"; worse on {', '.join(worse)}"
    note = undecidable_note(rows)
    return out + (f". {note}" if note else "")


def undecidable_note(rows: list[dict]) -> str:
    """The tasks no outcome could have made significant, and why: too few examples, not a tie."""
    small = [f"{r['task']} (n={r['n']})" for r in rows if r.get("verdict") and not r.get("decidable", True)]
    if not small:
        return ""
    need = min_decisive_n()
    return (
        f"At their n no result could be significant on {', '.join(small)}: an exact paired test needs at "
        f"least {need} examples (all {need} better gives p = {2 / 2**need:.3f}); raise eval.limit or the test split"
    )


def dp_text(dp: dict | None) -> str:
    if not dp:
        return "no DP"
    return f"DP-SGD: epsilon {dp['epsilon_spent']:.2f} (target {dp['target_epsilon']:g}), delta {dp['delta']:.2g}"


def probe_cells(privacy: dict | None) -> list[str]:
    """Membership AUC [interval] (n), canary exposure, extraction leaks: one row of the side-by-side table."""
    if not privacy:
        return ["-", "-", "-"]
    mi = privacy["membership_inference"]
    can = privacy.get("canary_exposure")
    ext = privacy.get("extraction", {})
    return [
        f"{cell(mi['auc'], mi['auc_ci95'])} (n={mi['n_members']}+{mi['n_nonmembers']})",
        f"{can['max_exposure_bits']:.2f} bits" if can else "-",
        f"{ext['leaks']} of {ext['prompts']}" if "leaks" in ext else "-",
    ]


def compared_section(results: EvalResults) -> list[str]:
    """The subject beside `--compare`'s run: task scores paired, then DP status and privacy probes for both,
    so a DP run's utility cost and privacy gain are read off one page."""
    c = results.compared
    md = [
        f"## Beside the compared run (`{c['run']}`)",
        "",
        "| task | fine-tuned minus compared run (paired) | verdict |",
        "|---|---|---|",
    ]
    for r in results.comparison:
        v = r["vs_compared"]
        md.append(
            f"| {r['task']} | {v['diff']:+.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] p={v['p']:.3g} | "
            f"{v['verdict']} |"
        )
    md += [
        "",
        "| model | privacy | membership AUC (0.5: no signal) | canary max exposure | extraction leaks |",
        "|---|---|---|---|---|",
        f"| {LABELS['fine_tuned']} | {dp_text(c['dp'].get('fine_tuned'))} | "
        + " | ".join(probe_cells(results.privacy))
        + " |",
        f"| {LABELS[COMPARED]} | {dp_text(c['dp'].get(COMPARED))} | " + " | ".join(probe_cells(c["privacy"])) + " |",
    ]
    return md


PHRASING_HEAD = [
    "task",
    "candidate",
    "seen (n)",
    "seen",
    "held out (n)",
    "held out",
    "held out minus seen",
    "vs baselines: seen / held out",
]
FACT_HEAD = [
    "task",
    "candidate",
    "seen fact (n)",
    "seen fact",
    "unseen fact (n)",
    "unseen fact",
    "unseen minus seen",
    "vs baselines: seen / unseen",
]


def phrasing_table(rows: list[dict], names: tuple = (SEEN, HELD_OUT)) -> list[list[str]]:
    a, b = names
    return [
        [
            r["task"],
            LABELS[r["candidate"]],
            str(r[a]["n"]),
            cell(r[a]["mean"], r[a]["ci95"]),
            str(r[b]["n"]),
            cell(r[b]["mean"], r[b]["ci95"]),
            f"{r['gap']:+.3f} [{r['gap_ci95'][0]:.3f}, {r['gap_ci95'][1]:.3f}]",
            f"{r['verdict'][a]} / {r['verdict'][b]}" if r.get("verdict") else "",
        ]
        for r in rows
    ]


def facts_section(results: EvalResults) -> list[str]:
    """What the test measures: per task, how many test answers state a fact (a code, a knowledge item) that a
    training answer stated, in other words; a seen fact tests recall of what was taught, not new knowledge."""
    md = [
        "## What the test measures: answers whose fact training taught",
        "",
        "A seen fact (the same code, knowledge item or answer, asked in other words) tests recall of what was "
        "taught; an unseen one tests generalization.",
        "",
        "| task | test answers | fact seen in training | share |",
        "|---|---|---|---|",
    ]
    md += [f"| {t} | {f['n']} | {f['seen']} | {f['share']:.0%} |" for t, f in results.facts.items()]
    if results.fact_slices:
        md += ["", "| " + " | ".join(FACT_HEAD) + " |", "|" + "---|" * len(FACT_HEAD)]
        md += ["| " + " | ".join(r) + " |" for r in phrasing_table(results.fact_slices, (SEEN_FACT, UNSEEN_FACT))]
    return md


def phrasing_line(results: EvalResults, candidate: str = "fine_tuned", tolerance: float = 0.10) -> str | None:
    """How the model does on phrasings it never saw: the tasks whose held-out slice is within `tolerance`
    (relative) of the seen slice, and those whose gap's interval lies wholly below -tolerance x seen."""
    rows = [r for r in results.phrasings if r["candidate"] == candidate]
    if not rows:
        return None
    close = [r["task"] for r in rows if abs(r["gap"]) <= tolerance * max(r["seen"]["mean"], 1e-9)]
    behind = [r["task"] for r in rows if r["gap_ci95"][1] < -tolerance * r["seen"]["mean"]]
    out = f"held-out phrasings ({LABELS[candidate]}): within {tolerance:.0%} of seen phrasings on {len(close)} of "
    out += f"{len(rows)} tasks"
    out += f"; significantly behind on {', '.join(behind)}" if behind else ""
    judged = [r for r in rows if r.get("verdict")]
    if judged:
        wins = {sl: sum(r["verdict"][sl] == BETTER for r in judged) for sl in ("seen", "held_out")}
        out += f"; better than every baseline on seen phrasings in {wins['seen']} of {len(judged)} tasks, "
        out += f"on held-out ones in {wins['held_out']}"
    return out


def write_report(results: EvalResults, rows: list[dict], out: Path, run: Path | None) -> None:
    cands = [c for c in ORDER if c in results.candidates]
    comp = results.comparison
    ed = EvalDir(out)
    atomic_write_text(ed.metrics, json.dumps(results.to_dict(), indent=2))
    ed.plots.mkdir(parents=True, exist_ok=True)
    for r in comp:
        task_plot(r, cands, ed.plots / f"{r['task']}.png")
    has_loss = False
    if run is not None and RunDir(run).loss_plot.is_file():
        shutil.copy(RunDir(run).loss_plot, ed.loss_plot)
        has_loss = True
    worst = {}
    for r in rows:
        worst.setdefault(r["task"], []).append(r)
    worst = {t: sorted(v, key=lambda r: r["score"])[:10] for t, v in worst.items()}
    atomic_write_text(ed.worst, json.dumps(worst, indent=2, ensure_ascii=False))
    atomic_write_text(ed.predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    head = ["task", "metric", "n", *[LABELS[c] for c in cands], "paired difference", "verdict"]
    table = [
        [
            r["task"],
            r["metric"],
            str(r["n"]),
            *[cell(r.get(c), r["ci95"].get(c)) for c in cands],
            versus(r),
            r.get("verdict") or "-",
        ]
        for r in comp
    ]
    atomic_write_text(ed.report, report_markdown(results, cands, head, table, has_loss))
    atomic_write_text(ed.html, report_html(results, head, table, has_loss))


def report_markdown(results: EvalResults, cands: list[str], head: list[str], table: list[list], has_loss: bool) -> str:
    comp = results.comparison
    gguf_note = f" GGUF: `{results.gguf}`." if results.gguf else ""
    if results.backend == "llama_cpp":
        gguf_note += (
            " Replies decoded by llama.cpp from each model written as f16 GGUF (eval.backend); losses by transformers."
        )
    md = [
        "# clinitune evaluation",
        "",
        f"{results.n_examples} held-out examples, seed {results.seed}. Each score is a mean with its 95 % bootstrap "
        "interval; a verdict needs the paired difference's interval to exclude 0 (and, for 0/1 metrics, an exact "
        f"McNemar p < 0.05) against every baseline.{gguf_note}"
        + (f" {undecidable_note(comp)}." if undecidable_note(comp) else "")
        + (
            f" Baseline answers reused from the data set's {CACHE_NOTE}."
            if (results.baseline_cache or {}).get("hit")
            else ""
        ),
        "",
        "## Primary metric per task",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    md += ["| " + " | ".join(row) + " |" for row in table]
    if any("gguf_vs_hf" in r for r in comp):
        md += [
            "",
            "## What the GGUF costs on the tasks (GGUF minus the HF model, paired)",
            "",
            "| task | difference | verdict |",
            "|---|---|---|",
        ]
        for r in comp:
            g = r["gguf_vs_hf"]
            ci = f"[{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}]"
            md.append(f"| {r['task']} | {g['diff']:+.3f} {ci} p={g['p']:.3g} | {g['verdict']} |")
    if results.compared is not None:
        md += ["", *compared_section(results)]
    if results.phrasings:
        md += [
            "",
            "## Seen and held-out phrasings (primary metric; held out: phrasings training never saw)",
            "",
            "| " + " | ".join(PHRASING_HEAD) + " |",
            "|" + "---|" * len(PHRASING_HEAD),
        ]
        md += ["| " + " | ".join(row) + " |" for row in phrasing_table(results.phrasings)]
    if results.facts:
        md += ["", *facts_section(results)]
    md += ["", "## All metrics", ""]
    for c in cands:
        e = results.candidates[c]
        md.append(f"### {LABELS[c]}" + (f" (loss {e['loss']}, perplexity {e['perplexity']})" if "loss" in e else ""))
        md.append("")
        for task, vals in e["tasks"].items():
            md.append(
                f"- {task} (n={vals['n']}): "
                + ", ".join(f"{k} {cell(v, vals['ci95'].get(k))}" for k, v in vals.items() if k not in ("n", "ci95"))
            )
        md.append("")
    if results.privacy is not None:
        md += ["## Privacy probes", "", "```json", json.dumps(results.privacy, indent=2), "```", ""]
    md += ["## Per task", ""] + [f"![{r['task']}](plots/{r['task']}.png)" for r in comp] + [""]
    if has_loss:
        md.append("![training loss](loss.png)")
    md += [
        "",
        "The 10 lowest-scoring outputs per task are in `worst_outputs.json`; every output of the model under "
        "test, with its reference and score, is in `predictions.jsonl`.",
    ]
    return "\n".join(md) + "\n"


def report_html(results: EvalResults, head: list[str], table: list[list], has_loss: bool) -> str:
    comp = results.comparison
    cells = lambda vals: "".join(f"<td>{html.escape(str(v))}</td>" for v in vals)  # noqa: E731
    body = [
        f"<h1>clinitune evaluation</h1><p>{results.n_examples} held-out examples, seed {results.seed}; "
        "scores with 95 % bootstrap intervals, verdicts from paired differences.</p>",
        "<table border=1 cellpadding=4><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>",
    ]
    body += ["<tr>" + cells(row) + "</tr>" for row in table]
    body.append("</table>")
    if results.phrasings:
        body.append("<h2>Seen and held-out phrasings</h2><table border=1 cellpadding=4><tr>")
        body.append("".join(f"<th>{html.escape(h)}</th>" for h in PHRASING_HEAD) + "</tr>")
        body += ["<tr>" + cells(row) + "</tr>" for row in phrasing_table(results.phrasings)]
        body.append("</table>")
    # Each plot marks itself rendered once the browser has decoded it: the report's test reads that back.
    body.append("<h2>Per task</h2>")
    body += [
        f'<figure><img src="plots/{html.escape(r["task"])}.png" alt="{html.escape(r["task"])}" '
        'onload="this.dataset.rendered = this.naturalWidth > 0"></figure>'
        for r in comp
    ]
    if has_loss:
        body.append('<img src="loss.png" alt="training loss">')
    if results.compared is not None:
        body.append(
            f"<h2>Beside the compared run</h2><pre>{html.escape(chr(10).join(compared_section(results)))}</pre>"
        )
    if results.privacy is not None:
        body.append(f"<h2>Privacy probes</h2><pre>{html.escape(json.dumps(results.privacy, indent=2))}</pre>")
    return "<!doctype html><meta charset=utf-8><title>clinitune eval</title>" + "".join(body)
