"""The tasks: one module per task, each with its phrasings, builder, scorer and `SPEC`; this registry lists them.

Every example has id, task, group (its source patient, or its own key for examples not drawn from one
patient), instruction, input and output. Each task is asked in one of its phrasings chosen by the seeded RNG,
so the model learns the task rather than a sentence. Outputs are verified: codes against the ICD-10-CM table,
SQL by running it, validation errors by the coherence checker, FHIR by fhir.resources.

Prepare, eval, the quickstart and the docs' task table read `SPECS`, in this order. Adding a task is one
module and one line here (docs/contributing.md).
"""

from __future__ import annotations

import json
from importlib import resources

from ..phrasings import Phrasings
from . import (
    extraction,
    fhir_conversion,
    icd10_coding,
    icd10_lookup,
    knowledge,
    record_generation,
    text_to_sql,
    validation,
)
from .common import REFERENCE_PREFIX, token_f1
from .spec import Builder, TaskSpec

__all__ = ["REFERENCE_PREFIX", "Builder", "TaskSpec"]

SPECS: dict[str, TaskSpec] = {
    m.SPEC.name: m.SPEC
    for m in (
        record_generation,
        icd10_coding,
        icd10_lookup,
        text_to_sql,
        extraction,
        validation,
        fhir_conversion,
        knowledge,
    )
}
# A task name no spec has (a user's own examples, "custom" by default) is scored as free text, and asked as
# the user wrote it.
AS_WRITTEN = (("{instruction}", "{input}"),)
CUSTOM = TaskSpec("custom", "token_f1", 128, token_f1, {"custom": Phrasings(seen=AS_WRITTEN, held_out=AS_WRITTEN)})
TASKS = tuple(SPECS)  # the built-in tasks, prepare's default


def spec_of(task: str) -> TaskSpec:
    return SPECS.get(task, CUSTOM)


def patient_builders() -> dict[str, Builder]:
    """The tasks built from one de-identified record at a time."""
    return {n: s.builder for n, s in SPECS.items() if s.builder is not None}


def phrasing_tables() -> dict[str, Phrasings]:
    """Every phrasing key (`task` or `task.kind`) of every task, for asking an example again in other words."""
    return {k: p for s in SPECS.values() for k, p in s.phrasings.items()}


def task_schema(task: str) -> dict | None:
    """The JSON Schema a task's answer must satisfy (record and FHIR tasks), or None for free-text tasks."""
    name = spec_of(task).schema
    return json.loads(resources.files("clinitune.resources").joinpath(name).read_text()) if name else None


def check_registry() -> None:
    """Each spec is filed under its own name and no two tasks claim a phrasing key."""
    keys = [k for s in SPECS.values() for k in s.phrasings]
    for name, s in SPECS.items():
        if s.name != name:
            raise RuntimeError(f"task {name}: filed under {name!r} but its spec says {s.name!r}")
    if dupes := sorted({k for k in keys if keys.count(k) > 1}):
        raise RuntimeError(f"phrasing key(s) {', '.join(dupes)} claimed by two tasks")


check_registry()
