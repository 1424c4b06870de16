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
from .tasks import JSON_TASKS


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
    if ex.task in JSON_TASKS:
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


def dedupe(examples: list[Example]) -> tuple[list[Example], int, int]:
    """Drop exact duplicates, then near duplicates (equal after normalization). Keeps first seen."""
    seen_exact, seen_near = set(), set()
    kept, exact, near = [], 0, 0
    for ex in examples:
        key = _key(ex)
        if key in seen_exact:
            exact += 1
            continue
        seen_exact.add(key)
        nkey = _normalized(ex)
        if nkey in seen_near:
            near += 1
            continue
        seen_near.add(nkey)
        kept.append(ex)
    return kept, exact, near


def balance(examples: list[Example]) -> dict[str, dict]:
    counts = Counter(ex.task for ex in examples)
    total = sum(counts.values()) or 1
    return {t: {"count": n, "share": round(n / total, 4)} for t, n in sorted(counts.items())}
