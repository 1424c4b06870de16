"""A task is one spec in one registry: prepare builds it, eval scores it, and a task missing a part fails by name."""

import json
import random
import re
from pathlib import Path

import pytest

from clinitune.data import phrasings, tasks
from clinitune.data.example import parse
from clinitune.data.phrasings import Phrasings, phrased
from clinitune.data.prepare import prepare
from clinitune.data.privacy import keys
from clinitune.data.records.synth import write_database
from clinitune.eval import metrics as M

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data-and-phi.md"


def allergy_count(rec: dict, group: str, rng: random.Random):
    n = len(rec["allergies"])
    return [phrased("allergy_count", group, rng, f"The patient has {n} recorded allergies.", {"age": rec["age"]})]


@pytest.fixture
def toy_task(monkeypatch):
    spec = tasks.TaskSpec("allergy_count", "exact_match", 8, allergy_count)
    monkeypatch.setitem(tasks.SPECS, spec.name, spec)
    monkeypatch.setitem(tasks.PATIENT_TASKS, spec.name, spec.builder)
    monkeypatch.setitem(
        phrasings.TASKS,
        spec.name,
        Phrasings(
            seen=(("How many allergies does this {age}-year-old have?", ""),), held_out=(("Count allergies.", ""),)
        ),
    )
    monkeypatch.setitem(M.SCORERS, spec.name, lambda pred, ex: {"exact_match": float(pred.strip() == ex.reply)})
    return spec


def test_a_toy_task_goes_through_prepare_and_eval_by_its_registries(toy_task, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    write_database(db, 30, seed=2, progress=False)
    out = tmp_path / "data"
    key = keys.load_or_create(tmp_path / "k")
    m = prepare(source="database", db=db, path=None, out=out, tasks=["allergy_count"], seed=1, progress=False, key=key)
    rows = [json.loads(x) for s in ("train", "eval", "test") for x in (out / f"{s}.jsonl").read_text().splitlines()]
    assert rows and {r["task"] for r in rows} == {"allergy_count"} and m.counts["examples_built"] == 30
    ex = parse(rows[0], "train.jsonl:1")
    assert M.score("allergy_count", ex.reply, ex) == {"exact_match": 1.0}
    assert M.primary("allergy_count") == "exact_match"


def test_a_task_without_phrasings_fails_at_import_by_name(monkeypatch):
    monkeypatch.setitem(tasks.SPECS, "orphan", tasks.TaskSpec("orphan", "f1", 10, None))
    with pytest.raises(RuntimeError, match="task orphan: no phrasings"):
        tasks.check_specs()


def test_every_task_has_a_scorer_and_an_unknown_task_is_free_text():
    assert set(tasks.SPECS) <= set(M.SCORERS)
    assert tasks.spec_of("my_own_task") is tasks.CUSTOM and M.primary("my_own_task") == "token_f1"


def test_the_docs_task_table_lists_the_registry_in_order():
    rows = re.findall(r"^\| `(\w+)` \|", DOCS.read_text(), flags=re.M)
    assert tuple(rows[: len(tasks.TASKS)]) == tasks.TASKS
