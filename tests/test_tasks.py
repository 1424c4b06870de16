"""A task is one module with one spec in one registry: prepare builds it, eval scores it, and a task missing a
part fails by name."""

import json
import random
import re
from pathlib import Path

import pytest

from clinitune.data import tasks
from clinitune.data.example import parse
from clinitune.data.phrasings import Phrasings, phrased
from clinitune.data.prepare import prepare
from clinitune.data.privacy import keys
from clinitune.data.records.synth import write_database
from clinitune.eval import metrics as M

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data-and-phi.md"
SRC = Path(tasks.__file__).parent

# The toy task is what a new task module holds: its phrasings, its builder, its scorer, its spec.
ALLERGY_PHRASINGS = Phrasings(
    seen=(("How many allergies does this {age}-year-old have?", ""),), held_out=(("Count allergies.", ""),)
)


def allergy_count(rec: dict, group: str, rng: random.Random):
    n = len(rec["allergies"])
    answer = f"The patient has {n} recorded allergies."
    return [phrased("allergy_count", group, rng, answer, {"age": rec["age"]}, ALLERGY_PHRASINGS)]


def exact(pred, ex):
    return {"exact_match": float(pred.strip() == ex.reply)}


@pytest.fixture
def toy_task(monkeypatch):
    spec = tasks.TaskSpec("allergy_count", "exact_match", 8, exact, {"allergy_count": ALLERGY_PHRASINGS}, allergy_count)
    monkeypatch.setitem(tasks.SPECS, spec.name, spec)  # the one registry line
    return spec


def test_a_toy_task_goes_through_prepare_and_eval_by_its_one_registry_line(toy_task, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    write_database(db, 30, seed=2, progress=False)
    out = tmp_path / "data"
    # A fixed key and a 30 % test split: the same split on every run, with test examples in both phrasings.
    (tmp_path / "k").write_text("5e" * 32)
    (tmp_path / "k").chmod(0o600)
    key = keys.load_or_create(tmp_path / "k")
    m = prepare(
        source="database",
        db=db,
        path=None,
        out=out,
        tasks=["allergy_count"],
        seed=1,
        progress=False,
        key=key,
        ratios=(0.6, 0.1, 0.3),
    )
    rows = [json.loads(x) for s in ("train", "eval", "test") for x in (out / f"{s}.jsonl").read_text().splitlines()]
    assert rows and {r["task"] for r in rows} == {"allergy_count"} and m.counts["examples_built"] == 30
    ex = parse(rows[0], "train.jsonl:1")
    assert M.score("allergy_count", ex.reply, ex) == {"exact_match": 1.0}
    assert M.primary("allergy_count") == "exact_match"
    # Its test examples were asked again in its held-out phrasing, found through the same spec.
    test = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()]
    assert any(r["instruction"] == "Count allergies." for r in test)


@pytest.mark.parametrize(
    "change, says",
    [
        ({"phrasings": {}}, "task orphan: no phrasings"),
        ({"phrasings": {"orphan": Phrasings(seen=(("q", ""),), held_out=())}}, "no phrasings"),
        ({"phrasings": {"other": ALLERGY_PHRASINGS}}, "phrasing key 'other'"),
        ({"scorer": None}, "task orphan: no scorer"),
        ({"max_new_tokens": 0}, "positive max_new_tokens"),
        ({"schema": "nowhere.schema.json"}, "resources/nowhere.schema.json is missing"),
    ],
)
def test_a_task_missing_a_part_fails_on_construction_by_name(change, says):
    parts = dict(name="orphan", metric="f1", max_new_tokens=10, scorer=exact, phrasings={"orphan": ALLERGY_PHRASINGS})
    with pytest.raises(RuntimeError, match=re.escape(says)):
        tasks.TaskSpec(**{**parts, **change})


def test_every_task_is_one_module_holding_its_spec_and_an_unknown_task_is_free_text():
    for name, spec in tasks.SPECS.items():
        module = getattr(tasks, name)  # data/tasks/<name>.py
        assert module.SPEC is spec and Path(module.__file__) == SRC / f"{name}.py"
        assert spec.scorer.__module__ in (module.__name__, "clinitune.data.tasks.common"), name
    assert tasks.spec_of("my_own_task") is tasks.CUSTOM and M.primary("my_own_task") == "token_f1"


def test_two_tasks_may_not_claim_one_phrasing_key(monkeypatch):
    twin = tasks.TaskSpec("knowledge", "f1", 8, exact, {"knowledge": ALLERGY_PHRASINGS})
    monkeypatch.setitem(tasks.SPECS, "knowledge_twin", twin)
    with pytest.raises(RuntimeError, match="filed under 'knowledge_twin'"):
        tasks.check_registry()


def test_the_docs_task_table_lists_the_registry_in_order():
    rows = re.findall(r"^\| `(\w+)` \|", DOCS.read_text(), flags=re.M)
    assert tuple(rows[: len(tasks.TASKS)]) == tasks.TASKS
