"""How a task is asked: many phrasings per task, a share of them held out of training altogether.

A model tuned on one sentence per task learns the sentence. Each task (its phrasings live in its own module
under data/tasks/) has at least 20 phrasings:
terse and verbose, question and command, fields in other orders, typos, and the shorthand clinicians
write. Builders draw from the `seen` phrasings only. After the split, `prepare` rewrites half of the
test examples with a `held_out` phrasing (`held_out_version`), so the evaluation reports a
held-out-phrasing slice beside the seen one: a model that learned the task scores alike on both.

A phrasing is (instruction template, input template); slots are named in braces. Putting `{input}`
inside the instruction template moves the record or note before or after the request. Each example
records its phrasing id (`task/seen/3`, `task/held_out/0`) and keeps the slot values (in memory only)
so it can be asked again in other words.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .example import Example
from .example import instruction as instruction_example

SEEN, HELD_OUT = "seen", "held_out"
NOTE = "{input}"


@dataclass(frozen=True)
class Phrasings:
    seen: tuple[tuple[str, str], ...]
    held_out: tuple[tuple[str, str], ...]


def plain(*items) -> tuple[tuple[str, str], ...]:
    """Bare strings are instructions with no input; pairs are (instruction, input)."""
    return tuple(item if isinstance(item, tuple) else (item, "") for item in items)


def on_note(note: str, *items) -> tuple[tuple[str, str], ...]:
    """Instructions followed by `note` as their input, unless the instruction places `{input}` itself."""
    return tuple((i, "" if NOTE in i else note) for i in items)


def render(table: Phrasings, which: str, index: int, slots: dict) -> tuple[str, str]:
    """(instruction, input) of one phrasing, filled with `slots`."""
    instr, inp = getattr(table, which)[index]
    return instr.format(**slots), inp.format(**slots)


def phrased(
    task: str,
    group: str,
    rng: random.Random,
    output: str,
    slots: dict,
    table: Phrasings,
    key: str | None = None,
    which: str = SEEN,
) -> Example:
    """An example asked in one of `table`'s phrasings (seen ones unless told), recording which as `key/which/i`."""
    index = rng.randrange(len(getattr(table, which)))
    instr, inp = render(table, which, index, slots)
    ex = instruction_example(task, group, instr, output, inp)
    return replace(ex, phrasing=f"{key or task}/{which}/{index}", slots=dict(slots))


def slice_of(phrasing: str) -> str | None:
    """`seen` or `held_out` for a phrasing id; None for an example that was not phrased here (a user's own)."""
    parts = phrasing.split("/")
    return parts[1] if len(parts) == 3 and parts[1] in (SEEN, HELD_OUT) else None


def held_out_version(ex: Example, seed: int, tables: Mapping[str, Phrasings], share: float = 0.5) -> Example:
    """`ex` asked in a held-out phrasing, for a `share` of test examples chosen by a hash of their id.

    `tables` maps phrasing keys to their phrasings (the task registry's `phrasing_tables()`)."""
    if slice_of(ex.phrasing) != SEEN or not ex.slots:
        return ex
    h = hashlib.sha256(f"{seed}:held-out:{ex.id}".encode()).digest()
    if h[0] >= share * 256:
        return ex
    key = ex.phrasing.split("/")[0]
    rng = random.Random(h)
    return phrased(ex.task, ex.group, rng, ex.reply, ex.slots, tables[key], key=key, which=HELD_OUT)
