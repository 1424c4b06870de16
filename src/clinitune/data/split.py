"""Train/eval/test split: grouped by patient (no patient in two splits), stratified by task, seeded."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from .example import Example
from .tasks import REFERENCE_PREFIX

SPLITS = ("train", "eval", "test")


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def _assign(groups: list[str], seed: int, ratios: tuple[float, float, float]) -> dict[str, str]:
    ordered = sorted(groups, key=lambda g: _rank(seed, g))
    n = len(ordered)
    n_eval = max(1, round(n * ratios[1])) if n >= 3 else 0
    n_test = max(1, round(n * ratios[2])) if n >= 3 else 0
    out = {}
    for i, g in enumerate(ordered):
        out[g] = "eval" if i < n_eval else "test" if i < n_eval + n_test else "train"
    return out


def assign(examples: list[Example], seed: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, str]:
    """Group to split. Groups that span tasks (patients) are split together; groups of one task within it.

    Reference groups (the code table, the knowledge questions) are not assigned: they always train.
    """
    tasks_of: dict[str, set] = defaultdict(set)
    for ex in examples:
        if not ex.group.startswith(REFERENCE_PREFIX):
            tasks_of[ex.group].add(ex.task)
    multi = [g for g, t in tasks_of.items() if len(t) > 1]
    by_task: dict[str, list[str]] = defaultdict(list)
    for g, t in tasks_of.items():
        if len(t) == 1:
            by_task[next(iter(t))].append(g)
    where = _assign(multi, seed, ratios)
    for task in sorted(by_task):
        where.update(_assign(by_task[task], seed, ratios))
    return where


def split_of(ex: Example, where: dict[str, str]) -> str:
    return "train" if ex.group.startswith(REFERENCE_PREFIX) else where[ex.group]


def split(examples: list[Example], where: dict[str, str]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:
        out[split_of(ex, where)].append(ex)
    return out
