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

from tqdm import tqdm

from ..data.example import Example
from ..data.example import load as load_examples
from ..data.manifest import phi_gate
from ..data.tasks import spec_of, task_schema
from ..data.tasks.text_to_sql import guard
from ..errors import ClinituneError
from ..export.gguf_writer import write_gguf
from ..layout import DataDir, RunDir
from ..models.generate import (
    example_losses,
    generate,
    inference_parts,
    llama_batched_greedy,
    llama_greedy,
    load_llama,
)
from ..models.loading import load_adapter
from ..models.structured import schema_grammar
from ..paths import require_dir
from ..stats import mean_ci, min_decisive_n
from . import cache
from . import metrics as M
from .privacy import membership_sample, privacy_probes
from .report import (
    BASELINES,
    COMPARED,
    GGUF,
    GGUF_SCHEMA,
    HF_SCHEMA,
    EvalResults,
    comparison_rows,
    fact_counts,
    fact_rows,
    phrasing_rows,
    taught,
    write_report,
)

log = logging.getLogger(__name__)
CANDIDATES = ("fine_tuned", "zero_shot", "few_shot")
LLAMA_SEQS = 16  # sequences sharing a llama.cpp decode step: each holds its own KV cache
MEMBERSHIP_N = 32  # members and non-members the membership probe scores
CONSTRAINED_TOKENS = 1024  # a bounded schema's longest answer (3 items per array, 40 characters per string) fits


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
    conn = guard(sqlite3.connect(f"file:{tmp / 'db.sqlite'}?mode=ro", uri=True))
    try:
        yield conn
    finally:
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)


# A generated token costs one forward pass; a prompt token is read with all the others in one batched
# pass, in roughly an eighth of the time per token (an estimate, not a measurement; it only sizes samples).
PREFILL_SHARE = 8
OVERRUN = 1.25  # what making every verdict reachable may add to the eval's budget


def sample_sizes(by_task: dict[str, list[Example]], limit: int) -> dict[str, int]:
    """Examples per task for a budget of `limit` long ones, fixed before any model answers (never from outcomes).

    The budget: every task gets limit / tasks, and a task that is cheap to run up to 4x that. The cost of an
    example is its reply, plus its prompt at PREFILL_SHARE's discount: validation (a long record in, a short
    list of errors out) is cheap, record generation (a short request, a long record out) is not. Then every
    task is raised to the fewest examples on which a paired test can ever be significant (stats.min_decisive_n):
    at 4 no verdict is possible whatever the model does. The raise is paid for by the cheap tasks' examples
    beyond that minimum, and may overrun the budget by OVERRUN; past that the dearest tasks keep their share,
    and the report says they can't be decided at their n."""
    per = max(1, limit // len(by_task))
    cost = lambda e: len(e.reply) + sum(len(m["content"]) for m in e.prompt) / PREFILL_SHARE  # noqa: E731
    mean_cost = {t: max(sum(cost(e) for e in v) / len(v), 1.0) for t, v in by_task.items()}
    dearest = max(mean_cost.values())
    share = {t: min(len(v), per * max(1, min(4, int(dearest // mean_cost[t])))) for t, v in sorted(by_task.items())}
    budget = sum(share[t] * mean_cost[t] for t in share)
    need = min_decisive_n()
    raised = sorted((t for t in share if share[t] < need <= len(by_task[t])), key=lambda t: (mean_cost[t], t))
    while True:
        n = {t: need if t in raised else share[t] for t in share}
        spend = lambda: sum(n[t] * mean_cost[t] for t in n)  # noqa: E731
        while spend() > budget and (spare := [t for t in n if n[t] > need]):
            n[max(spare, key=lambda t: (n[t], -mean_cost[t], t))] -= 1
        if spend() <= OVERRUN * budget or not raised:
            return n
        raised.pop()


def select(data: Path, limit: int | None, seed: int) -> dict[str, list[Example]]:
    """The test examples to score, by task: all of them, or a seeded sample sized by `sample_sizes`."""
    by_task: dict[str, list[Example]] = defaultdict(list)
    for ex in load_examples(data):
        by_task[ex.task].append(ex)
    if limit:
        rng = random.Random(seed)
        by_task = {t: rng.sample(by_task[t], min(n, len(by_task[t]))) for t, n in sample_sizes(by_task, limit).items()}
    return {t: by_task[t] for t in sorted(by_task)}


def score_all(by_task, outputs, data_dir: Path, db: str | None) -> dict[str, dict[str, list[dict]]]:
    """Per candidate, per task, the metric dict of each example (in `by_task` order)."""
    scores: dict[str, dict[str, list[dict]]] = {}
    with sqlite_copy(data_dir, db) as conn:
        for cand, out in outputs.items():
            scores[cand] = {t: [M.score(t, out[e.id], e, conn) for e in exs] for t, exs in by_task.items()}
    return scores


def summarize(per_example: dict[str, list[dict]], losses: list[float] | None, seed: int) -> dict:
    """A candidate's entry: per task n, each metric's mean and 95 % interval; loss and perplexity if known."""
    tasks = {}
    for task, scores in per_example.items():
        keys = sorted({k for s in scores for k in s})
        values = {k: [s.get(k, 0.0) for s in scores] for k in keys}
        tasks[task] = {
            "n": len(scores),
            **{k: round(sum(v) / len(v), 4) for k, v in values.items()},
            "ci95": {k: list(mean_ci(v, seed)) for k, v in values.items()},
        }
    entry: dict = {"tasks": tasks}
    finite = [x for x in losses or [] if math.isfinite(x)]  # nan: prompt longer than the model's window
    if finite:
        mean = sum(finite) / len(finite)
        entry["loss"] = round(mean, 4)
        entry["perplexity"] = round(math.exp(mean), 3)
    return entry


def primary_scores(scores: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, list[float]]]:
    """Candidate -> task -> the primary metric of each example, the values paired comparisons use."""
    return {c: {t: [s.get(M.primary(t), 0.0) for s in v] for t, v in per.items()} for c, per in scores.items()}


def evaluate(
    *,
    data: Path,
    out: Path,
    run: Path | None = None,
    model: str | None = None,
    adapter: Path | None = None,
    gguf: Path | None = None,
    constrain: bool = False,
    baselines: list[str] = ("zero_shot", "few_shot"),
    limit: int | None = None,
    seed: int = 42,
    k: int = 2,
    db: str | None = None,
    batch_size: int = 32,
    quiet: bool = False,
    allow_phi: bool = False,
    compare: Path | None = None,
    cache_baselines: bool = True,
    backend: str = "hf",
) -> EvalResults:
    """Score the fine-tuned model (HF, and/or the GGUF it shipped as) and the base model's baselines on
    the same examples; every metric with its interval, every comparison paired. `compare`: another run of
    the same base model (a DP run beside a non-DP one), scored and probed on the same examples."""
    require_dir(out, "--out")
    if compare is not None:
        same_base(run, compare)
    # Test prompts and few-shot examples reach the model: a file prepare did not vouch for is screened first.
    pool_path = DataDir(data.parent).split("train")
    gates = [
        phi_gate(p, allow_phi, label) for label, p in (("--data", data), ("few-shot pool", pool_path)) if p.is_file()
    ]
    by_task = select(data, limit, seed)
    chosen = [e for exs in by_task.values() for e in exs]
    pool_rows = load_examples(pool_path) if pool_path.is_file() else []
    pool: dict[str, list[Example]] = defaultdict(list)
    for e in pool_rows:
        pool[e.task].append(e)

    outputs: dict[str, dict[str, str]] = {}
    test_losses: dict[str, list[float]] = {}  # per candidate, on `chosen`: perplexity, and the membership probe
    privacy = compared = cached = None
    if run is not None or model is not None:
        outputs, test_losses, privacy, compared, cached = run_hf(
            run,
            model,
            adapter,
            by_task,
            pool,
            pool_rows,
            baselines,
            k,
            seed,
            batch_size,
            quiet,
            data.parent,
            db,
            constrain,
            compare,
            cache_baselines,
            backend,
        )
    if gguf is not None:
        outputs[GGUF] = run_gguf(gguf, by_task, quiet)
        if constrain:
            schema_tasks = {t: exs for t, exs in by_task.items() if task_schema(t)}
            constrained = run_gguf(gguf, schema_tasks, quiet, constrain=True)
            outputs[GGUF_SCHEMA] = {**outputs[GGUF], **constrained}
    if not outputs:
        raise ClinituneError("eval needs --run RUN_DIR, --model MODEL or --gguf FILE")

    scores = score_all(by_task, outputs, data.parent, db)
    primary = primary_scores(scores)
    candidates = {c: summarize(scores[c], test_losses.get(c), seed) for c in outputs}
    seen_fact = taught(by_task, pool_rows)
    results = EvalResults(
        candidates=candidates,
        n_examples=len(chosen),
        seed=seed,
        phi_gate=[asdict(g) for g in gates],
        privacy=privacy,
        comparison=comparison_rows(candidates, primary, seed),
        gguf=str(gguf) if gguf else None,
        phrasings=phrasing_rows(by_task, primary, seed),
        facts=fact_counts(seen_fact) if pool_rows else {},
        fact_slices=fact_rows(seen_fact, primary, seed) if pool_rows else [],
        compared=compared,
        baseline_cache=cached,
        backend=backend,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_report(results, prediction_rows(by_task, outputs, scores), out, run)
    return results


def prediction_rows(by_task: dict[str, list[Example]], outputs: dict, scores: dict) -> list[dict]:
    """Each example the model under test answered, with its reference and primary score; beside it, the
    shipped GGUF's answer to the same prompt when both were scored (where the file answers otherwise)."""
    subject = "fine_tuned" if "fine_tuned" in outputs else GGUF
    beside = GGUF if subject != GGUF and GGUF in outputs else None
    return [
        {
            "task": t,
            "id": e.id,
            "score": s.get(M.primary(t), 0.0),
            "phrasing": e.phrasing,
            "instruction": e.instruction,
            "input": e.input,
            "reference": e.reply,
            "prediction": outputs[subject][e.id],
            **({"gguf_prediction": outputs[beside][e.id]} if beside else {}),
        }
        for t, exs in by_task.items()
        for e, s in zip(exs, scores[subject][t])
    ]


def budgets(by_task: dict[str, list[Example]], count) -> dict[str, int]:
    """A reply needs at most a bit more than the longest reference: the same bound for every candidate,
    so a base model that rambles costs seconds, not minutes."""
    return {
        t: min(spec_of(t).max_new_tokens, int(1.25 * max(count(e.reply) for e in exs)) + 16)
        for t, exs in by_task.items()
    }


def same_base(run: Path | None, compare: Path) -> None:
    """--compare needs --run, and both runs fine-tuned from one base model: otherwise the difference is the base."""
    if run is None:
        raise ClinituneError("--compare RUN_DIR: needs --run RUN_DIR, the run to compare it with")
    mine, theirs = RunDir(run).read_summary().base_model, RunDir(compare).read_summary().base_model
    if mine != theirs:
        raise ClinituneError(
            f"--compare {compare}: trained from {theirs}, but --run {run} from {mine}; compare runs of one base model"
        )


def dp_of(run: Path) -> dict | None:
    """The DP-SGD record of a run (epsilon spent, delta, accountant, unit), or None for a run without DP."""
    return RunDir(run).read_summary().privacy


def run_hf(
    run,
    model,
    adapter,
    by_task,
    pool,
    pool_rows,
    baselines,
    k,
    seed,
    batch_size,
    quiet,
    data_dir,
    db,
    constrain,
    compare=None,
    cache_baselines=True,
    backend="hf",
):
    """Replies of the base model (baselines) and then of the fine-tuned model through transformers; test
    losses; privacy; with `constrain`, the fine-tuned model's JSON answers again, under their schemas; with
    `compare`, the other run's model on the same prompts, with its own probes against the same base losses.

    The baselines run on the plain base model, before the adapter is merged into it, so no pass goes through
    LoRA wrappers and one model is in memory. With `cache_baselines`, the base model's answers and losses are
    kept beside the data set (eval/cache.py) and a later eval with the same prompts reads them back. With
    `backend="llama_cpp"` the replies come from each model written as an f16 GGUF and decoded by llama.cpp with
    continuous batching; losses and probes stay on the HF model."""
    m, tok, adapter_dir, allow_pickle = inference_parts(run, model, adapter)
    budget = budgets(by_task, lambda text: len(tok(text)["input_ids"]))
    chosen = [e for exs in by_task.values() for e in exs]
    cands = [b for b in baselines if b in CANDIDATES] + ["fine_tuned"]
    outputs: dict[str, dict[str, str]] = {}
    test_losses: dict[str, list[float]] = {}  # per candidate, on `chosen`: perplexity
    if adapter_dir is not None:
        members, non = membership_sample(pool_rows, chosen, MEMBERSHIP_N, seed)
        base_probe = (example_losses(m, tok, members), example_losses(m, tok, non))
    # One pass per model: the baselines share the base model's batches (a decode step costs about the same for
    # 8 rows as for 32 on a CPU), then the adapter is merged in for the fine-tuned pass.
    groups = [g for g in ([c for c in cands if c != "fine_tuned"], ["fine_tuned"]) if g]
    bar = tqdm(total=len(groups), desc="eval", unit="model", disable=quiet, dynamic_ncols=True)
    cache_note = None
    for group in groups:
        if group == ["fine_tuned"] and adapter_dir is not None:
            m = load_adapter(m, adapter_dir, allow_pickle).merge_and_unload()
        prompts, row_budget = [], []
        for cand in group:
            for task, exs in by_task.items():
                shot_rng = random.Random(f"{seed}:{task}")
                prompts += [few_shot(e, pool, k, shot_rng) if cand == "few_shot" else e.prompt for e in exs]
                row_budget += [budget[task]] * len(exs)
        base = group[0] in BASELINES
        key = (
            cache.baseline_key(m, prompts, row_budget, batch_size, group, backend) if base and cache_baselines else None
        )
        hit = cache.load(data_dir, key) if key else None
        if hit:
            outputs |= hit["outputs"]
            test_losses |= hit["losses"]
            cache_note = {"key": key, "hit": True}
        else:
            preds = answer(m, tok, prompts, row_budget, batch_size, " + ".join(group), quiet, backend)
            for i, cand in enumerate(group):
                outputs[cand] = {e.id: p for e, p in zip(chosen, preds[i * len(chosen) : (i + 1) * len(chosen)])}
                if cand != "few_shot":
                    test_losses[cand] = example_losses(m, tok, chosen)
            if key:
                cache.save(
                    data_dir,
                    key,
                    {c: outputs[c] for c in group},
                    {c: test_losses[c] for c in group if c in test_losses},
                )
                cache_note = {"key": key, "hit": False}
        bar.set_postfix_str(group[-1])
        bar.update(1)
    bar.close()
    privacy = None
    if adapter_dir is not None:
        privacy = privacy_probes(m, tok, members, non, base_probe, data_dir, db, seed)
    if constrain:
        outputs[HF_SCHEMA] = {**outputs["fine_tuned"], **hf_constrained(m, tok, by_task, budget, quiet)}
    compared = None
    if compare is not None:
        del m  # one model in memory at a time
        m, tok, other, pickle = inference_parts(compare, None, None)
        if other is not None:
            m = load_adapter(m, other, pickle).merge_and_unload()
        prompts = [e.prompt for e in chosen]
        preds = answer(m, tok, prompts, [budget[e.task] for e in chosen], batch_size, "compared", quiet, backend)
        outputs[COMPARED] = {e.id: p for e, p in zip(chosen, preds)}
        test_losses[COMPARED] = example_losses(m, tok, chosen)
        compared = {
            "run": str(compare),
            "dp": {"fine_tuned": dp_of(run), COMPARED: dp_of(compare)},
            "privacy": privacy_probes(m, tok, members, non, base_probe, data_dir, db, seed) if privacy else None,
        }
    return outputs, test_losses, privacy, compared, cache_note


def answer(m, tok, prompts: list, budgets: list[int], batch_size: int, desc: str, quiet: bool, backend: str):
    """Greedy replies of the in-memory model: through transformers, or written as an f16 GGUF (a few seconds for
    a small model) and decoded by llama.cpp, sequences sharing decode steps and refilling finished slots."""
    if backend == "hf":
        return generate(m, tok, prompts, budgets, batch_size, desc=desc, quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="clinitune-eval-gguf-") as tmp:
        # safetensors' numpy reader has no bf16: the checkpoint the GGUF is written from is saved in fp32
        m.save_pretrained(tmp, state_dict={k: v.float() for k, v in m.state_dict().items()})
        tok.save_pretrained(tmp)
        llm = load_llama(write_gguf(tmp, Path(tmp) / "model-f16.gguf", dtype="f16"))
        try:
            return llama_batched_greedy(llm, prompts, budgets, n_seq=min(batch_size, LLAMA_SEQS))
        finally:
            llm.close()


def hf_constrained(m, tok, by_task, budget: dict[str, int], quiet: bool) -> dict[str, str]:
    """Replies of the model to the JSON tasks, each decoded under its task's JSON Schema."""
    chosen = [(e, t) for t, exs in by_task.items() if task_schema(t) for e in exs]
    # A constrained answer always closes its JSON, but only within its budget: give it room to.
    preds = generate(
        m,
        tok,
        [e.prompt for e, _ in chosen],
        [max(budget[t], CONSTRAINED_TOKENS) for _, t in chosen],
        desc="fine_tuned + schema",
        quiet=quiet,
        schemas=[task_schema(t) for _, t in chosen],
    )
    return {e.id: p for (e, _), p in zip(chosen, preds)}


def run_gguf(path: Path, by_task: dict[str, list[Example]], quiet: bool, constrain: bool = False) -> dict[str, str]:
    """Replies of a GGUF through llama.cpp, greedy, with the same prompts and budgets as the HF candidates;
    with `constrain`, each answer is decoded under its task's JSON Schema grammar."""
    llm = load_llama(path)
    budget = budgets(by_task, lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False)))
    grammars = {t: schema_grammar(task_schema(t), llm) for t in by_task if constrain and task_schema(t)}
    free = [(e, t) for t, exs in by_task.items() for e in exs if t not in grammars]
    held = [(e, t) for t, exs in by_task.items() for e in exs if t in grammars]
    # Free answers share decode steps; a grammar-constrained one runs alone, under its task's grammar.
    replies = llama_batched_greedy(llm, [e.prompt for e, _ in free], [budget[t] for _, t in free]) if free else []
    out = {e.id: r for (e, _), r in zip(free, replies)}
    desc = f"gguf {path.name} + schema"
    for e, t in tqdm(held, desc=desc, unit="example", disable=quiet or not held, dynamic_ncols=True):
        # A constrained answer always closes its JSON, but only within its budget: give it room to.
        out[e.id] = llama_greedy(llm, e.prompt, max(budget[t], CONSTRAINED_TOKENS), grammars[t])
    llm.close()  # now, not in a destructor at interpreter exit, where llama.cpp's bindings are already gone
    return out
