"""What a task is: one `TaskSpec`, defined in the task's own module beside its builder and scorer."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources

from ..example import Example
from ..phrasings import Phrasings

Builder = Callable[[dict, str, random.Random], list[Example]]
# A scorer returns metric -> value in [0, 1] for one prediction; a `needs_db` scorer also takes the read-only
# database connection its answers run on.
Scorer = Callable[..., dict]


@dataclass(frozen=True)
class TaskSpec:
    """Everything about one task. A spec missing a part raises on construction, so at import, with its name."""

    name: str
    metric: str  # the primary metric: the one a "better" verdict is about
    max_new_tokens: int  # the answer's generation budget at eval
    scorer: Scorer
    # How it is asked: phrasing key -> seen and held-out phrasings. The key is the task's name, or
    # `name.kind` for a task asked several kinds of question with their own slots (text_to_sql).
    phrasings: Mapping[str, Phrasings]
    builder: Builder | None = None  # from one de-identified record; None: built from reference data or the DB
    schema: str | None = None  # the JSON Schema file in resources/ an answer must satisfy
    json: bool = False  # the answer is JSON (the quality gate parses it)
    needs_db: bool = False  # the scorer runs the answer on the database
    # The fact an answer states (a code, a fact's text), to tell which test answers training taught; None: the
    # whole answer.
    fact: Callable[[Example], str] | None = None

    def __post_init__(self):
        problems = []
        if not self.phrasings or not all(p.seen and p.held_out for p in self.phrasings.values()):
            problems.append("no phrasings (each key needs seen and held-out ones)")
        problems += [f"phrasing key {k!r} is not {self.name!r} or {self.name}.<kind>" for k in self.bad_keys()]
        if not callable(self.scorer):
            problems.append("no scorer")
        if not self.metric or self.max_new_tokens <= 0:
            problems.append("needs a primary metric and a positive max_new_tokens")
        if self.schema and not resources.files("clinitune.resources").joinpath(self.schema).is_file():
            problems.append(f"schema file resources/{self.schema} is missing")
        if problems:
            raise RuntimeError(f"task {self.name}: " + "; ".join(problems))

    def fact_of(self, ex: Example) -> str:
        return self.fact(ex) if self.fact is not None else ex.reply.strip()

    def bad_keys(self) -> list[str]:
        return [k for k in self.phrasings if k != self.name and not k.startswith(self.name + ".")]
