"""The seed's validate_training_example as a report, plus duplicates and balance.

Each check returns reasons instead of asserting, so a whole file is judged in one pass and the
user sees every problem with its line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from .tasks import JSON_TASKS


@dataclass(frozen=True)
class Limits:
    min_instruction: int = 10  # exclusive, as the seed writes it: len > 10
    min_output: int = 10
    max_output: int = 2048  # exclusive: len < 2048


def _text_fields(ex: dict) -> tuple[str, str, str]:
    """(instruction, input, output) for instruction examples and chat examples alike."""
    if "messages" in ex:
        msgs = ex["messages"]
        user = " ".join(m.get("content", "") for m in msgs if m.get("role") in ("system", "user"))
        last = next((m.get("content", "") for m in reversed(msgs) if m.get("role") == "assistant"), "")
        return user, "", last
    return ex.get("instruction") or "", ex.get("input") or "", ex.get("output") or ""


def example_problems(ex: dict, limits: Limits = Limits()) -> list[str]:
    if not isinstance(ex, dict):
        return ["not a JSON object"]
    if "messages" in ex:
        msgs = ex["messages"]
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            return ["messages: expected a list of {role, content}"]
        if not any(m.get("role") == "assistant" for m in msgs):
            return ["messages: no assistant turn to learn from"]
    else:
        missing = [k for k in ("instruction", "output") if not isinstance(ex.get(k), str)]
        if missing:
            return [f"missing field {k}" for k in missing]
    instruction, _, output = _text_fields(ex)
    out = []
    if len(instruction) <= limits.min_instruction:
        out.append(f"instruction too short ({len(instruction)} chars; needs > {limits.min_instruction})")
    if len(output) <= limits.min_output:
        out.append(f"output too short ({len(output)} chars; needs > {limits.min_output})")
    if len(output) >= limits.max_output:
        out.append(f"output too long ({len(output)} chars; needs < {limits.max_output})")
    if ex.get("task") in JSON_TASKS:
        try:
            json.loads(output)
        except json.JSONDecodeError as exc:
            out.append(f"output is not valid JSON ({exc.msg} at char {exc.pos}) but task {ex['task']} promises JSON")
    return out


def _normalized(ex: dict) -> str:
    """Case, punctuation and whitespace do not make two examples different."""
    return re.sub(r"[\W_]+", " ", "\x1f".join(_text_fields(ex)).lower()).strip()


def dedupe(examples: list[dict]) -> tuple[list[dict], int, int]:
    """Drop exact duplicates, then near duplicates (equal after normalization). Keeps first seen."""
    seen_exact, seen_near = set(), set()
    kept, exact, near = [], 0, 0
    for ex in examples:
        key = "\x1f".join(_text_fields(ex))
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


def balance(examples: list[dict]) -> dict[str, dict]:
    counts = Counter(ex.get("task", "unknown") for ex in examples)
    total = sum(counts.values()) or 1
    return {t: {"count": n, "share": round(n / total, 4)} for t, n in sorted(counts.items())}
