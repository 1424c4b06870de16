"""The spec's validate_training_example as a report, plus duplicates and balance.

Each check returns reasons instead of asserting, so a whole file is judged in one pass and the
user sees every problem with its line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from .example import Example
from .tasks import spec_of


@dataclass(frozen=True)
class Limits:
    min_instruction: int = 10  # exclusive, as the spec writes it: len > 10
    min_output: int = 10
    max_output: int = 2048  # exclusive: len < 2048


def example_problems(ex: Example, limits: Limits = Limits()) -> list[str]:
    """Why an example is unfit to learn from; the shape itself was checked when it was parsed."""
    out = []
    if ex.shape != "text" and len(ex.instruction) <= limits.min_instruction:
        out.append(f"instruction too short ({len(ex.instruction)} chars; needs > {limits.min_instruction})")
    if len(ex.reply) <= limits.min_output:
        out.append(f"output too short ({len(ex.reply)} chars; needs > {limits.min_output})")
    if len(ex.reply) >= limits.max_output:
        out.append(f"output too long ({len(ex.reply)} chars; needs < {limits.max_output})")
    if spec_of(ex.task).json:
        try:
            json.loads(ex.reply)
        except json.JSONDecodeError as exc:
            out.append(f"output is not valid JSON ({exc.msg} at char {exc.pos}) but task {ex.task} promises JSON")
    return out


def _key(ex: Example) -> str:
    return "\x1f".join(m.content for m in ex.messages)


def _normalized(ex: Example) -> str:
    """Case, punctuation and whitespace do not make two examples different."""
    return re.sub(r"[\W_]+", " ", _key(ex).lower()).strip()


def duplicates(examples: list[Example]) -> list[tuple[int, int, str]]:
    """(index, index of the first it repeats, "exact" or "near") for each example that repeats an earlier one:
    exact is the same text, near is equal after normalization."""
    first_exact: dict[str, int] = {}
    first_near: dict[str, int] = {}
    out = []
    for i, ex in enumerate(examples):
        key = _key(ex)
        if key in first_exact:
            out.append((i, first_exact[key], "exact"))
            continue
        first_exact[key] = i
        nkey = _normalized(ex)
        if nkey in first_near:
            out.append((i, first_near[nkey], "near"))
            continue
        first_near[nkey] = i
    return out


def dedupe(examples: list[Example]) -> tuple[list[Example], int, int]:
    """Drop exact duplicates, then near duplicates (equal after normalization). Keeps first seen."""
    dups = duplicates(examples)
    drop = {i for i, _, _ in dups}
    kept = [ex for i, ex in enumerate(examples) if i not in drop]
    return kept, sum(k == "exact" for *_, k in dups), sum(k == "near" for *_, k in dups)


def balance(examples: list[Example]) -> dict[str, dict]:
    counts = Counter(ex.task for ex in examples)
    total = sum(counts.values()) or 1
    return {t: {"count": n, "share": round(n / total, 4)} for t, n in sorted(counts.items())}
