"""`clinitune eval`: the fine-tuned model against its own base, zero-shot and few-shot, on held-out data.

One base model is loaded; the LoRA adapter is switched off for the baselines, so the comparison
costs one model in memory and isolates exactly what fine-tuning changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.example import Example
from ..data.example import load as load_examples
from ..data.manifest import phi_gate
from ..layout import DataDir
from ..models.generate import example_losses, generate, load_for_inference
from . import metrics as M
from .privacy import privacy_probes
from .report import EvalResults, comparison_rows, write_report

log = logging.getLogger(__name__)
CANDIDATES = ("fine_tuned", "zero_shot", "few_shot")


def few_shot(ex: Example, pool: dict[str, list[Example]], k: int, rng: random.Random) -> list[dict]:
    shots = [e for e in pool.get(ex.task, []) if e.id != ex.id]
    msgs = []
    for s in rng.sample(shots, min(k, len(shots))):
        msgs += s.conversation
    return msgs + ex.prompt


@contextlib.contextmanager
def sqlite_copy(data_dir: Path, db: str | None):
    """A read-only copy of the source SQLite DB for text_to_sql, so no query can touch the original."""
    url = db or DataDir(data_dir).source_url()
    if not url or not url.startswith("sqlite:///"):
        yield None
        return
    src = Path(url.removeprefix("sqlite:///"))
    if not src.is_file():
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="clinitune-eval-"))
    shutil.copy(src, tmp / "db.sqlite")
    conn = sqlite3.connect(f"file:{tmp / 'db.sqlite'}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)


def sample_sizes(by_task: dict[str, list[Example]], limit: int) -> dict[str, int]:
    """Examples per task for a budget of `limit` long ones: every task gets limit / tasks, and a task
    whose prompts and answers are short gets up to 4x that. Its examples cost a fraction as much to
    run, and its metric is mostly 0/1 per example (a code, a description, a query result), so 4
    examples can only tell 0 from 0.25."""
    per = max(1, limit // len(by_task))
    size = lambda e: sum(len(m.content) for m in e.messages)  # noqa: E731
    mean_chars = {t: sum(size(e) for e in v) / len(v) for t, v in by_task.items()}
    longest = max(mean_chars.values())
    return {t: per * max(1, min(4, int(longest // max(mean_chars[t], 1.0)))) for t in sorted(by_task)}


def evaluate(
    *,
    data: Path,
    out: Path,
    run: Path | None = None,
    model: str | None = None,
    adapter: Path | None = None,
    baselines: list[str] = ("zero_shot", "few_shot"),
    limit: int | None = None,
    seed: int = 42,
    k: int = 2,
    db: str | None = None,
    batch_size: int = 16,
    quiet: bool = False,
    allow_phi: bool = False,
) -> EvalResults:
    # Test prompts and few-shot examples reach the model: a file prepare did not vouch for is screened first.
    gates = [
        phi_gate(p, allow_phi, label)
        for label, p in (("--data", data), ("few-shot pool", DataDir(data.parent).split("train")))
        if p.is_file()
    ]
    examples = load_examples(data)
    rng = random.Random(seed)
    by_task: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_task[ex.task].append(ex)
    if limit:
        by_task = {t: rng.sample(by_task[t], min(n, len(by_task[t]))) for t, n in sample_sizes(by_task, limit).items()}
    chosen = [e for t in sorted(by_task) for e in by_task[t]]
    train_path = DataDir(data.parent).split("train")
    pool_rows = load_examples(train_path) if train_path.is_file() else []
    pool: dict[str, list[Example]] = defaultdict(list)
    for e in pool_rows:
        pool[e.task].append(e)

    m, tok, has_adapter = load_for_inference(run, model, adapter)
    # A reply needs at most a bit more than the longest reference: the same bound for every candidate,
    # so a base model that rambles costs seconds, not minutes.
    budget = {
        t: min(M.MAX_NEW_TOKENS.get(t, 128), int(1.25 * max(len(tok(e.reply)["input_ids"]) for e in exs)) + 16)
        for t, exs in by_task.items()
    }
    cands = [b for b in baselines if b in CANDIDATES] + ["fine_tuned"]
    outputs: dict[str, dict[str, str]] = {c: {} for c in cands}
    privacy = None
    bar = tqdm(total=len(cands), desc="eval", unit="candidate", disable=quiet, dynamic_ncols=True)
    test_losses: dict[
        str, list[float]
    ] = {}  # per candidate, on `chosen`: perplexity, and reused by the membership probe
    for cand in cands:  # baselines first: the fine-tuned pass merges the adapter into the weights
        if cand == "fine_tuned" and has_adapter:
            test_losses[cand] = example_losses(m, tok, chosen)
            privacy = privacy_probes(
                m,
                tok,
                pool_rows,
                chosen,
                data.parent,
                db,
                seed,  # needs the adapter switchable
                test_losses=(test_losses.get("zero_shot"), test_losses[cand]),
            )
            # Merged, generation runs on plain linear layers: in the quickstart 38 s instead of 76 s through the LoRA
            # wrappers.
            m.merge_adapter()
        ctx = m.disable_adapter() if (cand != "fine_tuned" and has_adapter) else contextlib.nullcontext()
        with ctx:
            # All tasks in shared batches: on a CPU a decode step costs about the same for 4 rows or 16.
            prompts, row_budget = [], []
            for task in sorted(by_task):
                shot_rng = random.Random(f"{seed}:{task}")
                prompts += [few_shot(e, pool, k, shot_rng) if cand == "few_shot" else e.prompt for e in by_task[task]]
                row_budget += [budget[task]] * len(by_task[task])
            preds = generate(m, tok, prompts, row_budget, batch_size, desc=cand)
            outputs[cand].update({e.id: p for e, p in zip(chosen, preds)})
            bar.set_postfix_str(cand)
            bar.update(1)
            if cand != "few_shot":
                if cand not in test_losses:
                    test_losses[cand] = example_losses(m, tok, chosen)
                outputs[cand]["__losses__"] = test_losses[cand]  # type: ignore[assignment]

    bar.close()
    candidates: dict[str, dict] = {}
    rows = []
    with sqlite_copy(data.parent, db) as conn:
        for cand in cands:
            tasks_out = {}
            for task in sorted(by_task):
                scores = []
                for e in by_task[task]:
                    s = M.score(task, outputs[cand][e.id], e, conn)
                    scores.append(s)
                    if cand == "fine_tuned":
                        rows.append(
                            {
                                "task": task,
                                "id": e.id,
                                "score": s.get(M.PRIMARY.get(task, ""), 0.0),
                                "instruction": e.instruction,
                                "input": e.input,
                                "reference": e.reply,
                                "prediction": outputs[cand][e.id],
                            }
                        )
                keys = sorted({k for s in scores for k in s})
                tasks_out[task] = {
                    "n": len(scores),
                    **{k2: round(sum(s.get(k2, 0.0) for s in scores) / len(scores), 4) for k2 in keys},
                }
            entry = {"tasks": tasks_out}
            losses = [
                x for x in outputs[cand].get("__losses__") or [] if math.isfinite(x)
            ]  # nan: prompt longer than the model's window
            if losses:
                mean = sum(losses) / len(losses)
                entry["loss"] = round(mean, 4)
                entry["perplexity"] = round(float(torch.tensor(mean).exp()), 3)
            candidates[cand] = entry
    results = EvalResults(
        candidates=candidates,
        n_examples=len(chosen),
        seed=seed,
        phi_gate=[asdict(g) for g in gates],
        privacy=privacy,
        comparison=comparison_rows(candidates),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_report(results, rows, out, run)
    return results
