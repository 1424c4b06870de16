"""The training side of the data: loading it, and which rows each epoch sees, in what order, in which micro-batch.

Tokenizing and packing live in the runtime layer (data/tokenize.py); here is only what training
adds to them: the checks on the training files, task weights, a per-epoch shuffle that a resumed run
reproduces, and a step's rows split over ranks and micro-batches.
"""

from __future__ import annotations

import logging
import random
from collections import Counter

from ..config import Config
from ..data.example import load as load_examples
from ..data.tasks import TASKS
from ..data.tokenize import Row, Tokenized, pack, tokenize
from ..errors import ClinituneError

log = logging.getLogger(__name__)


def weighted_order(data: Tokenized, weights: dict[str, float], rng: random.Random) -> list[int]:
    """Each task's examples repeated int(w) times plus a fresh random fraction w % 1 of them."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(data.tasks):
        by_task.setdefault(t, []).append(i)
    order: list[int] = []
    for t in sorted(by_task):
        idx, w = by_task[t], weights.get(t, 1.0)
        order += idx * int(w)
        order += rng.sample(idx, round((w % 1) * len(idx)))
    return order


def mixture(tasks: list[str], explicit: dict[str, float], temperature: float | None) -> dict[str, float]:
    """Each task's repeat factor per epoch. With a temperature T, a task's share of an epoch goes as n^(1/T)
    (temperature sampling, as multilingual training mixes languages): T=1 keeps the data's mix, a larger T
    evens it out, so a small hard task (code lookup) is not drowned by long record tasks. The config's own
    task_weights win over the computed ones."""
    counts = Counter(tasks)
    weights: dict[str, float] = {}
    if temperature:
        total, z = sum(counts.values()), sum(n ** (1 / temperature) for n in counts.values())
        weights = {t: round(min(100.0, n ** (1 / temperature) / z * total / n), 3) for t, n in sorted(counts.items())}
    return {**weights, **explicit}


def mixture_report(tasks: list[str], weights: dict[str, float]) -> dict[str, dict]:
    """Per task: its examples, its weight, and its share of an epoch after weighting (what the run trained on)."""
    counts = Counter(tasks)
    drawn = {t: n * weights.get(t, 1.0) for t, n in counts.items()}
    total = sum(drawn.values()) or 1
    return {
        t: {"examples": counts[t], "weight": weights.get(t, 1.0), "share": round(drawn[t] / total, 4)}
        for t in sorted(counts)
    }


def epoch_rows(
    data: Tokenized,
    seed: int,
    epoch: int,
    max_len: int,
    packing: bool,
    shuffle: bool = True,
    weights: dict[str, float] | None = None,
) -> list[Row]:
    """An epoch's rows, a function of (seed, epoch) alone: a resumed run sees the same order."""
    rng = random.Random(f"{seed}:epoch:{epoch}")
    order = weighted_order(data, weights, rng) if weights else list(range(len(data.input_ids)))
    if shuffle:
        rng.shuffle(order)
    return pack(data, order, max_len, packing)


def micro_batches(step_rows: list[Row], rank: int, rows_per_rank: int, batch_size: int) -> list[list[Row]]:
    """This rank's share of a step's rows, in micro-batches (some empty for a rank short of rows at an epoch's end)."""
    mine = step_rows[rank * rows_per_rank : (rank + 1) * rows_per_rank]
    return [mine[i : i + batch_size] for i in range(0, rows_per_rank, batch_size)]


def load_data(cfg: Config, tok) -> tuple[Tokenized, list[Row]]:
    """Tokenized training examples and the packed eval rows; a task weight naming no task is an error."""
    train_data = tokenize(tok, load_examples(cfg.data.train), cfg.data.max_seq_length)
    eval_examples = load_examples(cfg.data.eval) if cfg.data.eval else []
    if cfg.data.eval_max_examples and len(eval_examples) > cfg.data.eval_max_examples:
        eval_examples = random.Random(cfg.training.seed).sample(eval_examples, cfg.data.eval_max_examples)
    eval_data = tokenize(tok, eval_examples, cfg.data.max_seq_length) if eval_examples else None
    absent = sorted(set(cfg.data.task_weights) - set(train_data.tasks))
    if absent and set(absent) <= set(TASKS):
        log.warning("data.task_weights: %s has no examples in %s", ", ".join(absent), cfg.data.train)
    elif absent:
        unknown = sorted(set(absent) - set(TASKS))
        raise ClinituneError(
            f"data.task_weights: no task named {', '.join(unknown)} in {cfg.data.train}; "
            f"its tasks are {', '.join(sorted(set(train_data.tasks)))}"
        )
    if not train_data.input_ids:
        raise ClinituneError(
            f"{cfg.data.train}: every example is longer than data.max_seq_length={cfg.data.max_seq_length}"
        )
    for name, d in (("train", train_data), ("eval", eval_data)):
        if d and (d.truncated or d.dropped):
            log.warning(
                "%s: %d example(s) truncated and %d dropped (prompt alone too long) at data.max_seq_length=%d",
                name,
                d.truncated,
                d.dropped,
                cfg.data.max_seq_length,
            )
    seq, packing = cfg.data.max_seq_length, cfg.data.packing
    eval_rows = epoch_rows(eval_data, cfg.training.seed, 0, seq, packing, shuffle=False) if eval_data else []
    return train_data, eval_rows
