"""Bring your own records: the shapes people have load, or say precisely which mapping line places a field."""

import json
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.prepare import prepare
from clinitune.data.records.coherence import check_record
from clinitune.data.records.mapping import DEFAULT, load_map, read_record
from clinitune.data.records.sources import load
from clinitune.errors import ClinituneError

runner = CliRunner()

# The course's synthetic patient file, in its own spellings: nested demographics, test_name, allergen, dosage,
# and FHIR's four AdministrativeGender values.
COURSE = [
    {
        "patient_id": f"P{i:03d}",
        "demographics": {"age": 30 + i, "gender": gender, "dob": "03/15/1970", "zip_code": "02139"},
        "diagnoses": [{"code": "I10", "description": "Essential hypertension", "date": "2021-03-04"}],
        "medications": [{"name": "Lisinopril", "dosage": "10mg", "frequency": "once daily"}],
        "allergies": [{"allergen": "Penicillin", "reaction": "rash", "severity": "moderate"}],
        "lab_results": [
            {"test_name": "LDL Cholesterol", "value": 130, "unit": "mg/dL"},
            {"test_name": "Hemoglobin A1c", "value": "5.4 %"},
        ],
    }
    for i, gender in enumerate(["male", "female", "other", "unknown", "M", "F", "U", "Nonbinary-ish"] * 3)
]
VISITS = (
    "visit_id,patient_id,visit_date,provider_id,chief_complaint,procedure_code,tooth_number,cost,insurance_claimed\n"
    + "".join(
        f"V{i:04d},P{i % 7:03d},2024-0{1 + i % 9}-1{i % 10},DR{i % 3:02d},{c},D{1110 + i},{8 + i % 20},"
        f"{95 + i}.50,{'yes' if i % 2 else 'no'}\n"
        for i, c in enumerate(["toothache lower left", "routine cleaning", "chipped tooth", "gum bleeding"] * 10)
    )
)
# A records CSV in nobody's default spellings: it needs a map.
RECORDS_CSV = "member,birth_sex,dx,analyte,result_val,units\n" + "".join(
    f"M{i},{'F' if i % 2 else 'M'},E11.9,HbA1c,{6 + i / 10},%\nM{i},{'F' if i % 2 else 'M'},I10,LDL,{100 + i},mg/dL\n"
    for i in range(12)
)
RECORDS_MAP = (
    "patient_id: member\nsex: birth_sex\ndiagnoses.code: dx\nlab_results.name: analyte\n"
    "lab_results.value: result_val\nlab_results.unit: units\n"
)


def _counts_add_up(sc: dict) -> None:
    assert sc["items_read"] == sc["items_used"] + sum(sc["rejected"].values()) + sum(sc["skipped"].values())


def test_course_patients_load_with_their_own_spellings(tmp_path):
    f = tmp_path / "patients.json"
    f.write_text(json.dumps(COURSE))
    loaded = load("json", path=f)
    assert not loaded.rejects and len(loaded.records) == len(COURSE)
    p = loaded.records[0]
    assert p.allergies[0].substance == "Penicillin" and p.medications[0].dose == "10mg"
    assert [(o.name, o.value, o.unit) for o in p.observations] == [
        ("LDL Cholesterol", 130.0, "mg/dL"),
        ("Hemoglobin A1c", 5.4, "%"),  # the unit written after the number is kept
    ]
    assert p.birth_date.isoformat() == "1970-03-15" and p.conditions[0].onset_date.isoformat() == "2021-03-04"
    assert [r.sex for r in loaded.records[:8]] == ["M", "F", "O", "U", "M", "F", "U", "U"]
    assert all(check_record(r) == [] for r in loaded.records)
    # an unknown spelling is a counted warning, never a rejected patient
    assert loaded.notes.as_dict() == {"sex: 'Nonbinary-ish' not a known spelling, read as unknown": 3}
    _counts_add_up(loaded.counts())


def test_prepare_on_the_course_file_counts_and_renders_every_gender(tmp_path):
    f = tmp_path / "patients.json"
    f.write_text(json.dumps(COURSE))
    m = prepare(source="json", db=None, path=f, out=tmp_path / "o", tasks=["record_generation"], seed=1, progress=False)
    sc = m.source_counts
    assert (sc["items_read"], sc["items_used"], sc["rejected"]) == (len(COURSE), len(COURSE), {})
    _counts_add_up(sc)
    outputs = [json.loads(json.loads(line)["output"]) for line in (tmp_path / "o" / "train.jsonl").open()]
    assert {"other", "unknown"} <= {o["gender"] for o in outputs}
    assert "What the source held" in (tmp_path / "o" / "report.md").read_text()


def test_a_field_that_cannot_be_placed_prints_the_mapping_line(tmp_path):
    rec = {**COURSE[0], "diagnoses": [{"icd": "J45.909", "text": "Asthma"}]}
    f = tmp_path / "p.json"
    f.write_text(json.dumps([rec]))
    res = runner.invoke(app, ["prepare", "--source", "json", "--path", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "item 0: diagnoses[0]: no diagnosis code (its keys: icd, text)" in res.output
    assert "add this line to your --map file: diagnoses.code: icd" in res.output
    (tmp_path / "map.yaml").write_text("diagnoses.code: icd\ndiagnoses.description: text\n")
    p = load("json", path=f, fmap=load_map(tmp_path / "map.yaml")).records[0]
    assert (p.conditions[0].code, p.conditions[0].description) == ("J45.909", "Asthma")


def test_unknown_map_key_suggests_the_field(tmp_path):
    (tmp_path / "m.yaml").write_text("sexx: demographics.gender\n")
    with pytest.raises(ClinituneError, match="sexx: not a field clinitune reads; did you mean sex"):
        load_map(tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("sex: 3\n")
    with pytest.raises(ClinituneError, match="sex: expected a path"):
        load_map(tmp_path / "m.yaml")


def test_suggest_map_writes_a_map_that_loads_the_file(tmp_path):
    rec = {**COURSE[0], "problems": [{"icd": "E11.9", "text": "Type 2 diabetes"}]}
    del rec["diagnoses"]
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    res = runner.invoke(app, ["prepare", "--suggest-map", str(f)])
    assert res.exit_code == 0, res.output
    lines = set(res.output.splitlines())
    assert {"allergies.substance: allergen", "medications.dose: dosage", "lab_results.name: test_name"} <= lines
    assert "diagnoses: problems" in lines and "sex: demographics.gender" in lines
    assert any(line.startswith("diagnoses.code: icd") for line in lines)  # a close match, marked to check
    (tmp_path / "map.yaml").write_text(res.output)
    assert isinstance(yaml.safe_load(res.output), dict)
    p = load("jsonl", path=f, fmap=load_map(tmp_path / "map.yaml")).records[0]
    assert p.conditions[0].code == "E11.9" and p.sex == "M"


def test_any_table_becomes_question_answer_pairs_without_its_identifiers(tmp_path):
    f = tmp_path / "dental_visits.csv"
    f.write_text(VISITS)
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        ["prepare", "--source", "csv", "--path", str(f), "--group-by", "patient_id", "--out", str(out), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    sc = m["source_counts"]
    assert (sc["items_read"], sc["items_used"]) == (40, 40)
    _counts_add_up(sc)
    rows = [json.loads(line) for s in ("train", "eval", "test") for line in (out / f"{s}.jsonl").open()]
    assert {r["task"] for r in rows} == {"table_qa", "table_json"}
    c = m["counts"]
    assert (c["invalid"], len(rows) + c["duplicates_exact"] + c["duplicates_near"]) == (0, 80)
    text = json.dumps(rows)
    for ident in ("V0003", "DR01", "P003", "2024-03-13"):  # ids and full dates never reach a text
        assert ident not in text
    typed = json.loads(next(r["output"] for r in rows if r["task"] == "table_json"))
    assert isinstance(typed["cost"], float) and isinstance(typed["tooth_number"], int)
    assert isinstance(typed["insurance_claimed"], bool) and isinstance(typed["visit_year"], int)
    # one patient's visits share a group, so they sit in one split
    split_of = {}
    for s in ("train", "eval", "test"):
        for line in (out / f"{s}.jsonl").open():
            split_of.setdefault(json.loads(line)["group"], set()).add(s)
    assert len(split_of) == 7 and all(len(v) == 1 for v in split_of.values())
    assert "left out as an identifier: visit_id" in res.output


def test_records_csv_with_a_map_and_without_one(tmp_path):
    f = tmp_path / "members.csv"
    f.write_text(RECORDS_CSV)
    plain = load("csv", path=f)
    assert not plain.records and any("for patient records pass --map" in k for k in plain.notes.as_dict())
    (tmp_path / "map.yaml").write_text(RECORDS_MAP)
    loaded = load("csv", path=f, fmap=load_map(tmp_path / "map.yaml"))
    assert len(loaded.records) == 12 and not loaded.rejects
    p = loaded.records[1]
    assert p.sex == "F" and [c.code for c in p.conditions] == ["E11.9", "I10"]
    assert [(o.name, o.unit) for o in p.observations] == [("HbA1c", "%"), ("LDL", "mg/dL")]
    assert loaded.counts()["items_read"] == 24 == loaded.counts()["items_used"]
    # the value's line left out of the map: the error prints the line that places it
    (tmp_path / "short.yaml").write_text(RECORDS_MAP.replace("lab_results.value: result_val\n", ""))
    res = runner.invoke(
        app,
        [
            "prepare",
            "--source",
            "csv",
            "--path",
            str(f),
            "--map",
            str(tmp_path / "short.yaml"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "lab_results.value: result_val" in res.output


def test_rejects_are_counted_by_reason_and_written_with_skip_invalid(tmp_path):
    bad = [{**COURSE[0], "demographics": {"age": 150, "gender": "female"}}, {**COURSE[1], "lab_results": [{}]}]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(COURSE[:5] + bad))
    out = tmp_path / "o"
    m = prepare(
        source="json", db=None, path=f, out=out, tasks=["record_generation"], seed=1, progress=False, skip_invalid=True
    )
    sc = m.source_counts
    assert sc["items_read"] == 7 and sc["items_used"] == 5 and sum(sc["rejected"].values()) == 2
    _counts_add_up(sc)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").open()]
    assert [r["where"] for r in rejects] == ["item 5", "item 6"]
    assert "age" in rejects[0]["reason"] and "lab_results.name" in rejects[1]["reason"]


def test_a_table_of_another_database(tmp_path):
    db = tmp_path / "dental.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE visits (visit_id TEXT, patient_id TEXT, chief_complaint TEXT, cost REAL)")
        conn.executemany(
            "INSERT INTO visits VALUES (?, ?, ?, ?)",
            [(f"V{i}", f"P{i % 3}", ["toothache", "cleaning"][i % 2], 50.0 + i) for i in range(10)],
        )
    url = f"sqlite:///{db}"
    loaded = load("database", db=url, table="visits")
    assert len(loaded.examples) == 20 and loaded.counts()["items_used"] == 10
    with pytest.raises(ClinituneError, match="--table patients: no such table.*its tables: visits"):
        load("database", db=url, table="patients")


def test_model_output_is_read_by_the_same_reader():
    # eval and the tasks read a model's record with the default map: no map, no notes needed
    p = read_record({"age": 54, "gender": "female", "diagnoses": [{"code": "E11.9"}]}, "answer", DEFAULT)
    assert (p.sex, p.age, p.conditions[0].code) == ("F", 54, "E11.9")


def test_a_records_csv_in_default_spellings_keeps_every_fact(tmp_path):
    # dx_code is a known spelling, but not the last one tried: each known column counts, not only the last
    f = tmp_path / "r.csv"
    f.write_text("patient_id,sex,dx_code,test_name,result,unit\nP1,F,E11.9,,,\nP1,F,,HbA1c,7.1,%\n")
    loaded = load("csv", path=f)
    (p,) = loaded.records
    assert [c.code for c in p.conditions] == ["E11.9"] and [(o.name, o.value) for o in p.observations] == [
        ("HbA1c", 7.1)
    ]
