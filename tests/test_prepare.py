import json
import random
import re
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.example import instruction, parse
from clinitune.data.prepare import augment, parse_tasks, prepare
from clinitune.data.privacy import keys, patterns, phi
from clinitune.data.privacy.deid import deidentify, record_schema
from clinitune.data.quality import dedupe, example_problems
from clinitune.data.records.db import connect
from clinitune.data.records.patient import Patient
from clinitune.data.records.synth import write_database
from clinitune.data.split import assign, split
from clinitune.data.tasks import TASKS
from clinitune.errors import ClinituneError

# A fixed key keeps the split, and so which test patients are asked in which phrasing, the same on every run.
KEY = keys.DataKey(b"test_prepare".ljust(32, b"."), kept=True)

runner = CliRunner()
PHI_SET = Path(__file__).parent / "data" / "phi_labelled.jsonl"
SPEC_LINES = [
    {
        "instruction": "Generate a patient record for a 45-year-old female with Type 2 diabetes.",
        "output": '{"patient_id": "P001", "age": 45, "gender": "female", '
        '"diagnoses": [{"code": "E11.9", "description": "Type 2 diabetes mellitus"}]}',
    },
    {
        "instruction": "What ICD-10 code represents essential hypertension?",
        "output": "The ICD-10 code for essential (primary) hypertension is I10.",
    },
    {
        "instruction": "Describe the HIPAA Safe Harbor de-identification method.",
        "output": "HIPAA Safe Harbor requires removing all 18 specified identifiers including names, addresses, "
        "dates (except year), and any other unique identifying information.",
    },
]


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('prep') / 'clinic.db'}"
    write_database(url, 500, seed=5, progress=False)
    return url


@pytest.fixture(scope="module")
def prepared(db, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    manifest = prepare(source="database", db=db, path=None, out=out, tasks=list(TASKS), seed=9, progress=False, key=KEY)
    return out, manifest


def test_prepare_from_database_meets_acceptance(prepared, db):
    out, m = prepared
    splits = {s: _read(out / f"{s}.jsonl") for s in ("train", "eval", "test")}
    total = sum(len(v) for v in splits.values())
    assert total >= 2000
    for s in ("train", "eval", "test"):
        assert {e["task"] for e in splits[s]} == set(TASKS), s
    groups = {s: {e["group"] for e in rows} for s, rows in splits.items()}
    assert (
        not groups["train"] & groups["eval"]
        and not groups["train"] & groups["test"]
        and not groups["eval"] & groups["test"]
    )
    for name, info in m.files.items():
        import hashlib

        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == info["sha256"], name
    assert m.counts["records"] == 500 and m.counts["quarantined"] == 0
    assert "| record_generation |" in (out / "report.md").read_text()
    # Every identifier the database holds is gone from every split: looked up by value, not re-screened with the
    # screen that filtered the output (which would pass whatever it missed).
    from sqlalchemy import create_engine, text

    with create_engine(db).connect() as c:
        rows = c.execute(
            text("SELECT first_name, last_name, address, phone, email, ssn, mrn, insurance_member_id FROM patients")
        ).all()
    planted = {v for r in rows for v in (f"{r[0]} {r[1]}", r[2], r[3], r[4], r[5], r[6], r[7]) if v}
    written = "\n".join(json.dumps(e) for rows_ in splits.values() for e in rows_)
    assert len(planted) > 3000 and not [v for v in planted if v in written]
    for e in splits["train"]:
        assert set(e) >= {"id", "task", "group", "instruction", "input", "output"}
        assert example_problems(parse(e, "train.jsonl")) == []


def test_outputs_are_verified(prepared, db):
    out, _ = prepared
    rows = _read(out / "train.jsonl")
    schema = record_schema()
    recs = [e for e in rows if e["task"] == "record_generation"]
    for e in recs:
        jsonschema.validate(json.loads(e["output"]), schema)
    sqls = [e for e in rows if e["task"] == "text_to_sql"][:50]
    with connect(db, readonly=True) as conn:
        for e in sqls:
            assert list(conn.execute(text(e["output"]))), e["output"]
    from fhir.resources.R4B.bundle import Bundle

    for e in [e for e in rows if e["task"] == "fhir_conversion"][:20]:
        Bundle.model_validate_json(e["output"])
    phrasings = {e["instruction"].split(" ")[0] for e in recs}
    assert len(phrasings) >= 3


def test_byte_identical_same_seed_sqlite_and_postgresql(prepared, pg_url, tmp_path):
    out, _ = prepared
    write_database(pg_url, 500, seed=5, progress=False)
    again = tmp_path / "pg"
    # the same key: the same pseudonyms and split
    prepare(source="database", db=pg_url, path=None, out=again, tasks=list(TASKS), seed=9, progress=False, key=KEY)
    for name in ("train.jsonl", "eval.jsonl", "test.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_deidentification_rules():
    import datetime as dt

    p = Patient(
        id=3,
        sex="F",
        birth_date=dt.date(1930, 6, 1),
        first_name="Linda",
        last_name="Garcia",
        zip="82345",
        phone="(617) 555-0143",
        mrn="MRN00000031",
    )
    rec = deidentify(p, keys.DataKey(b"k" * 32, kept=True))
    assert rec["age"] == "90+" and rec["zip3"] == "000"
    text_ = json.dumps(rec)
    for value in ("Linda", "Garcia", "555-0143", "MRN", "1930"):
        assert value not in text_
    jsonschema.validate(rec, record_schema())


def test_phi_screen_on_labelled_set():
    rows = _read(PHI_SET)
    assert len(rows) >= 400 and sum(r["phi"] for r in rows) >= 200
    tp = fp = fn = 0
    for r in rows:
        found = phi.types_of(phi.screen(r["text"]))
        if r["phi"]:
            hit = r["types"][0] in found
            tp, fn = tp + hit, fn + (not hit)
        elif found:
            fp += 1
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.95
    assert {r["types"][0] for r in rows if r["phi"]} >= set(phi.SAFE_HARBOR_TYPES) - {"NAME"} | {"NAME"}


def test_validate_spec_lines_and_phi_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(x) + "\n" for x in SPEC_LINES))
    res = runner.invoke(app, ["validate", str(good)])
    assert res.exit_code == 0, res.output
    bad_lines = [
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Patient SSN 912-34-5678, stable on metformin.",
        },
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Call back at (617) 555-0143 to schedule follow-up.",
        },
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Results sent to linda.g@gmail.com after review.",
        },
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Chart MRN: 00123456 reviewed; A1c 7.1 %.",
        },
        {"instruction": "short", "output": "ok"},
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(x) + "\n" for x in SPEC_LINES + bad_lines) + "{truncated\n")
    res = runner.invoke(app, ["validate", str(bad), "--json"])
    assert res.exit_code == 1
    r = json.loads(res.stdout)
    assert r["examples"] == 9
    phi_lines = {x["line"]: x["types"] for x in r["phi"]}
    assert "SSN" in phi_lines[4] and "PHONE" in phi_lines[5] and "EMAIL" in phi_lines[6] and "MRN" in phi_lines[7]
    assert 1 not in phi_lines and 2 not in phi_lines and 3 not in phi_lines
    invalid = {x["line"]: x["reasons"] for x in r["invalid"]}
    assert any("too short" in s for s in invalid[8]) and "invalid JSON" in invalid[9][0]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "What ICD-10 code is asthma?"},
                    {"role": "assistant", "content": "Unspecified asthma is J45.909."},
                ]
            }
        )
        + "\n"
    )
    assert runner.invoke(app, ["validate", str(chat)]).exit_code == 0


def test_jsonl_source_quarantines_phi_and_gates_quality(tmp_path):
    rows = SPEC_LINES * 2 + [
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Seen by Dr. Kowalski, phone 617-555-0143.",
        },
        {
            "instruction": "What ICD-10 code represents ESSENTIAL hypertension?",
            "output": "The ICD-10 code for essential (primary) hypertension is I10.",
        },
        {"instruction": "Too short", "output": "This output is long enough."},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in rows))
    out = tmp_path / "out"
    m = prepare(source="jsonl", db=None, path=src, out=out, tasks=["knowledge"], seed=1, progress=False)
    c = m.counts
    assert c["duplicates_exact"] == 3 and c["duplicates_near"] == 1 and c["invalid"] == 1 and c["quarantined"] == 1
    q = _read(out / "quarantine.jsonl")
    assert {f["type"] for f in q[0]["phi_findings"]} >= {"NAME", "PHONE"}
    everything = "".join((out / f"{s}.jsonl").read_text() for s in ("train", "eval", "test"))
    assert "555-0143" not in everything and "Kowalski" not in everything


def test_bad_source_stops_with_every_problem_unless_skip_invalid(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(SPEC_LINES[0]) + '\n{"instruction": "cut\n' + json.dumps({"foo": 1}) + "\n")
    with pytest.raises(ClinituneError) as exc:
        prepare(source="jsonl", db=None, path=src, out=tmp_path / "o", tasks=["knowledge"], seed=1, progress=False)
    assert "line 2" in str(exc.value) and "line 3" in str(exc.value)
    m = prepare(
        source="jsonl",
        db=None,
        path=src,
        out=tmp_path / "o",
        tasks=["knowledge"],
        seed=1,
        skip_invalid=True,
        progress=False,
    )
    assert m.counts["items_in"] == 3 and m.counts["items_rejected"] == 2
    assert len(_read(tmp_path / "o" / "rejects.jsonl")) == 2


def test_split_is_grouped_and_stratified():
    rng = random.Random(0)
    exs = [
        instruction(t, f"p{i % 97}", f"Question {i}?", "An answer.")
        for i in range(2000)
        for t in [rng.choice(["a", "b"])]
    ]
    exs += [instruction("k", f"k{i}", f"Question k{i}?", "An answer.") for i in range(100)]
    parts = split(exs, assign(exs, seed=3))
    owner = {}
    for s, rows in parts.items():
        for e in rows:
            assert owner.setdefault(e.group, s) == s
    k_counts = {s: sum(e.task == "k" for e in rows) for s, rows in parts.items()}
    assert k_counts == {"train": 80, "eval": 10, "test": 10}
    assert split(exs, assign(exs, seed=3)) == parts and split(exs, assign(exs, seed=4)) != parts


def test_codebook_is_reference_data_in_train_only(prepared):
    from clinitune.data.records import catalog
    from clinitune.data.tasks import REFERENCE_PREFIX

    out, m = prepared
    splits = {s: _read(out / f"{s}.jsonl") for s in ("train", "eval", "test")}
    ref = [e for e in splits["train"] if e["group"].startswith(REFERENCE_PREFIX)]
    assert not any(e["group"].startswith(REFERENCE_PREFIX) for s in ("eval", "test") for e in splits[s])
    coded = {e["output"].rsplit(" ", 1)[-1].rstrip(".") for e in ref if e["task"] == "icd10_coding"}
    assert coded == set(catalog.BY_CODE)  # every catalog code is taught
    assert {e["output"].split(" ", 1)[0] for e in ref if e["task"] == "icd10_lookup"} == set(catalog.BY_CODE)
    seen = {(e["instruction"], e["input"], e["output"]) for e in splits["train"]}
    assert not [
        e for e in splits["test"] if (e["instruction"], e["input"], e["output"]) in seen
    ]  # no test item is a train item
    assert m.codebook is True


def test_knowledge_tests_recall_of_trained_facts_in_other_words(prepared):
    from clinitune.data.tasks import REFERENCE_PREFIX, knowledge

    out, _ = prepared
    splits = {s: [e for e in _read(out / f"{s}.jsonl") if e["task"] == "knowledge"] for s in ("train", "eval", "test")}
    items = knowledge.knowledge_items()
    assert all(len(it["paraphrases"]) >= 2 for it in items)
    originals = [e for e in splits["train"] if e["group"] == f"{REFERENCE_PREFIX}knowledge"]
    assert len(originals) == len(items)  # every fact is taught in its own words
    trained_answers = {e["output"] for e in splits["train"]}
    for s in ("eval", "test"):
        assert splits[s], s
        for e in splits[s]:
            assert e["output"] in trained_answers  # the fact was taught...
            assert not any(it["question"] in e["instruction"] for it in items)  # ...but is asked in other words
    held = {e["group"] for s in ("eval", "test") for e in splits[s]}
    assert not held & {e["group"] for e in splits["train"]}  # a fact's paraphrases stay together


def _pattern(template: str) -> re.Pattern:
    """A phrasing template as a regex: its fixed words literally, each slot as any text."""
    parts = re.split(r"\{\w+\}", template)
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$", re.S)


def test_held_out_phrasings_never_reach_training(prepared):
    from clinitune.data.tasks import phrasing_tables

    out, m = prepared
    splits = {s: _read(out / f"{s}.jsonl") for s in ("train", "eval", "test")}
    for key, table in phrasing_tables().items():
        if not key.startswith("text_to_sql."):
            assert len(table.seen) + len(table.held_out) >= 20, key
        assert not set(table.seen) & set(table.held_out), key
    sql = [p for k, t in phrasing_tables().items() if k.startswith("text_to_sql.") for p in t.seen + t.held_out]
    assert len(sql) >= 20
    # Every test task is asked both ways, and each slice is labelled.
    test_tasks = {e["task"] for e in splits["test"]}
    assert set(m.test_phrasings) == test_tasks
    for task, n in m.test_phrasings.items():
        assert n["seen"] > 0 and n["held_out"] > 0, task
    # The training and eval text holds no held-out phrasing: matched on the text itself, not the label.
    held = [(k, _pattern(i), _pattern(inp)) for k, t in phrasing_tables().items() for i, inp in t.held_out]
    for s in ("train", "eval"):
        for e in splits[s]:
            assert "held_out" not in e.get("phrasing", ""), e
            for key, pi, pin in held:
                assert not (pi.match(e["instruction"]) and pin.match(e["input"])), (s, key, e["instruction"])
    labelled = [e for e in splits["test"] if "/held_out/" in e.get("phrasing", "")]
    assert labelled and all(
        any(pi.match(e["instruction"]) and pin.match(e["input"]) for _, pi, pin in held) for e in labelled
    )


def test_augment_stays_in_group(prepared):
    out, _ = prepared
    rows = [parse(r, "train.jsonl") for r in _read(out / "train.jsonl")[:300]]
    more = augment(rows, seed=1)
    extra = more[len(rows) :]
    assert extra and all(e.augmented for e in extra)
    groups = {e.group for e in rows}
    assert all(e.group in groups for e in extra)


def test_prepare_fails_closed_without_screen(monkeypatch, tmp_path):
    def broken():
        raise ClinituneError("the PHI screen needs presidio-analyzer")

    monkeypatch.setattr(patterns, "_analyzer", broken)
    with pytest.raises(ClinituneError, match="PHI screen"):
        prepare(source="jsonl", db=None, path=tmp_path, out=tmp_path / "o", tasks=["knowledge"], seed=1, progress=False)


def test_unknown_task_and_dedupe_near():
    with pytest.raises(ClinituneError, match="unknown task"):
        parse_tasks("record_generation,coding")
    lines = [SPEC_LINES[1], dict(SPEC_LINES[1]), {**SPEC_LINES[1], "instruction": SPEC_LINES[1]["instruction"].upper()}]
    kept, exact, near = dedupe([parse(x, "t") for x in lines])
    assert (len(kept), exact, near) == (1, 1, 1)


def test_sql_answers_quote_values_from_the_database(tmp_path):
    import random as _random

    from clinitune.data.records.sources import iter_database
    from clinitune.data.tasks import text_to_sql

    url = f"sqlite:///{tmp_path / 'q.db'}"
    write_database(url, 30, seed=3, progress=False)
    with connect(url, readonly=False) as conn:
        sql = "UPDATE allergies SET substance = :s WHERE id = (SELECT min(id) FROM allergies)"
        conn.execute(text(sql), {"s": "St. John's wort"})
        conn.commit()
    stats = text_to_sql.SqlStats()
    for p in iter_database(url):
        stats.add(p)
    exs = text_to_sql.examples(stats, url, _random.Random(0))  # every question, each verified by running its SQL
    wort = [e for e in exs if "St. John" in e.instruction]
    assert wort and "'St. John''s wort'" in wort[0].reply


def test_prepare_is_configured_like_train(db, tmp_path):
    """A config's prepare: section and the flags that stand for its keys write the same bytes; a flag wins over
    the file; a wrong value names its key and line."""
    key_file = tmp_path / "data.key"
    key_file.write_text(KEY.secret.hex())
    key_file.chmod(0o600)
    tasks = "icd10_coding,knowledge"
    section = {"db": db, "tasks": tasks.split(","), "split": "0.6,0.2,0.2", "key_file": str(key_file), "seed": 3}
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(json.dumps({"prepare": {**section, "out": str(tmp_path / "a")}}))
    assert runner.invoke(app, ["prepare", "-c", str(cfg), "-q"]).exit_code == 0
    flags = ["--db", db, "--tasks", tasks, "--split", "0.6,0.2,0.2", "--key-file", str(key_file), "--seed", "3"]
    assert runner.invoke(app, ["prepare", *flags, "--out", str(tmp_path / "b"), "-q"]).exit_code == 0
    for name in ("train.jsonl", "eval.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert {r["task"] for r in _read(tmp_path / "a" / "train.jsonl")} == {"icd10_coding", "knowledge"}
    # a flag is a shorthand for its key, so it replaces the file's value
    res = runner.invoke(app, ["prepare", "-c", str(cfg), "--tasks", "knowledge", "--out", str(tmp_path / "c"), "-q"])
    assert res.exit_code == 0 and {r["task"] for r in _read(tmp_path / "c" / "train.jsonl")} == {"knowledge"}
    cfg.write_text("prepare:\n  db: sqlite:///x.db\n  split: 0.5,0.1,0.1\n  phi_actoin: redact\n")
    res = runner.invoke(app, ["prepare", "-c", str(cfg)])
    assert res.exit_code == 2
    assert "prepare.yaml:3: prepare.split" in res.output and "summing to 1" in res.output
    assert "prepare.yaml:4: prepare.phi_actoin: unknown key; did you mean phi_action?" in res.output
