import datetime as dt
import json
from collections import Counter

import pytest
import simple_icd_10_cm as icd
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.records import catalog as cat
from clinitune.data.records.coherence import check_record, check_records
from clinitune.data.records.db import engine_for
from clinitune.data.records.patient import Allergy, ConditionFact, Encounter, Medication, Observation, Patient, facts
from clinitune.data.records.sources import check_rejects, export, iter_database, load
from clinitune.data.records.synth import write_database
from clinitune.errors import ClinituneError

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "clinic.db"
    url = f"sqlite:///{path}"
    write_database(url, 600, seed=7, progress=False)
    return url


@pytest.fixture(scope="module")
def records(db):
    return list(iter_database(db))


def test_catalog_breadth_and_validity():
    assert len(cat.CONDITIONS) >= 150
    specialties = Counter(c.specialty for c in cat.CONDITIONS)
    for s in (
        "primary care",
        "cardiology",
        "endocrine",
        "respiratory",
        "mental health",
        "musculoskeletal",
        "renal",
        "infectious",
        "oncology",
        "obstetrics",
        "pediatrics",
    ):
        assert specialties[s] >= 5, s
    for c in cat.CONDITIONS:
        assert icd.is_valid_item(c.code) and icd.is_leaf(c.code), c.code
        assert len(c.prevalence) == 4


def test_synth_is_coherent(records):
    assert len(records) == 600
    n, violations = check_records(records)
    assert n == 600 and violations == [], violations[:5]


def test_synth_clinical_properties(records):
    dm = [p for p in records if cat.has_prefix([c.code for c in p.conditions], cat.DIABETES)]
    no_dm = [p for p in records if p not in dm and p.current_age >= 40]
    htn = lambda ps: sum(cat.has_prefix([c.code for c in p.conditions], ("I10", "I11")) for p in ps) / len(ps)  # noqa: E731
    assert len(dm) >= 15
    assert htn(dm) > htn(no_dm) * 1.3  # comorbidities correlate
    for p in records:
        codes = [c.code for c in p.conditions]
        if p.sex == "M":
            assert not cat.has_prefix(codes, cat.PREGNANCY) and not cat.has_prefix(codes, ("N95", "C50"))
        else:
            assert not cat.has_prefix(codes, ("N40", "C61"))
        for c in p.conditions:
            assert icd.is_valid_item(c.code)
            enc = next(e for e in p.encounters if e.id == c.encounter_id)
            assert p.birth_date <= c.onset_date <= enc.date
        cond_ids = {c.id for c in p.conditions}
        assert all(m.condition_id in cond_ids for m in p.medications)
    a1c = [o.value for p in dm for o in p.observations if o.code == "4548-4"]
    assert a1c and sum(v >= 6.5 for v in a1c) / len(a1c) > 0.9
    patients_with_phi = [
        p for p in records if p.first_name and p.phone and p.email and p.mrn and p.zip and p.insurance_member_id
    ]
    assert len(patients_with_phi) == 600


def test_same_seed_same_facts_different_seed_differs(tmp_path, records):
    url = f"sqlite:///{tmp_path / 'again.db'}"
    write_database(url, 600, seed=7, progress=False)
    assert [facts(p) for p in iter_database(url)] == [facts(p) for p in records]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    write_database(other, 50, seed=8, progress=False)
    assert [facts(p) for p in iter_database(other)] != [facts(p) for p in records[:50]]


def test_sqlite_and_postgresql_hold_identical_facts(tmp_path, pg_url):
    lite = f"sqlite:///{tmp_path / 'lite.db'}"
    write_database(lite, 2000, seed=11, progress=False)
    write_database(pg_url, 2000, seed=11, progress=False)
    a = [facts(p) for p in iter_database(lite)]
    b = [facts(p) for p in iter_database(pg_url)]
    assert len(a) == 2000 and a == b


def test_database_source_is_read_only(db, pg_url):
    engine = engine_for(db, readonly=True)
    with pytest.raises(OperationalError, match="readonly"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM patients"))
    write_database(pg_url, 5, seed=1, progress=False)
    pg = engine_for(pg_url, readonly=True)
    with pytest.raises(Exception, match="read-only"):
        with pg.begin() as conn:
            conn.execute(text("DELETE FROM allergies"))


def _planted() -> Patient:
    born = dt.date(1980, 5, 1)
    return Patient(
        id=99,
        sex="M",
        birth_date=born,
        encounters=[Encounter(1, dt.date(2024, 3, 1), "outpatient"), Encounter(2, dt.date(1979, 1, 1), "outpatient")],
        conditions=[
            ConditionFact(1, "Z34.00", "pregnancy", dt.date(2024, 1, 1), 1),  # male pregnancy
            ConditionFact(2, "I10", "hypertension", dt.date(2024, 6, 1), 1),  # onset after its encounter
            ConditionFact(3, "X99.999", "made up", None, 1),  # invalid code
            ConditionFact(4, "F90.0", "ADHD", dt.date(2023, 1, 1), 1),  # age 43 > max 64? fine; used for meds
        ],
        medications=[
            Medication(1, "metformin", "500 mg", "twice daily", condition_id=2),  # metformin does not treat I10
            Medication(2, "lisinopril", "10 mg", "once daily", condition_id=77),  # unknown condition
            Medication(3, "amoxicillin", "500 mg", "twice daily"),  # unlinked, treats nothing recorded; allergy
        ],
        allergies=[Allergy(1, "penicillin", "medication", "hives", "moderate")],
        observations=[
            Observation(
                1, "4548-4", "Hemoglobin A1c", 8.1, "%", 4.0, 5.6, "H", dt.date(2024, 3, 1), 1
            ),  # A1c, no diabetes
            Observation(
                2, "39156-5", "Body mass index", 34.0, "kg/m2", 18.5, 24.9, "N", dt.date(2024, 3, 1), 1
            ),  # flag, no obesity
            Observation(
                3, "8480-6", "Systolic blood pressure", 400, "mm[Hg]", 90, 129, "H", dt.date(2024, 3, 1), 1
            ),  # impossible
            Observation(
                4, "33914-3", "eGFR", 40, "mL/min/1.73m2", 60, 120, "L", dt.date(2024, 3, 1), 1
            ),  # low eGFR, no CKD
        ],
    )


def test_checker_finds_every_planted_violation():
    found = check_record(_planted())
    by_rule = Counter(v.rule for v in found)
    assert by_rule["sex_mismatch"] >= 1
    assert by_rule["date_order"] == 2  # onset after encounter, encounter before birth
    assert by_rule["invalid_code"] == 1
    assert by_rule["medication_indication"] == 3
    assert by_rule["allergy_conflict"] == 1
    assert by_rule["lab_flag"] == 1
    assert by_rule["lab_range"] == 1
    assert by_rule["lab_condition"] == 3  # A1c, BMI, eGFR
    where = {v.where for v in found}
    assert "condition 1 (Z34.00)" in where and "medication 3 (amoxicillin)" in where


def test_fhir_round_trip_is_lossless_and_valid_r4(tmp_path, db, records):
    from fhir.resources.R4B.bundle import Bundle

    out = tmp_path / "fhir"
    assert export(db, "fhir", out, progress=False) == 600
    files = sorted(out.glob("*.json"))
    for f in files[:40]:
        Bundle.model_validate_json(f.read_text())  # raises on any invalid resource
    loaded = load("fhir", path=out)
    assert loaded.rejects == []
    by_id = {p.id: facts(p) for p in loaded.records}
    assert [by_id[p.id] for p in records] == [facts(p) for p in records]


def test_csv_round_trip(tmp_path, db, records):
    out = tmp_path / "csv"
    export(db, "csv", out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{t}.csv" for t in ("patients", "encounters", "conditions", "medications", "allergies", "observations")
    )
    loaded = load("csv", path=out)
    assert loaded.rejects == [] and [facts(p) for p in loaded.records] == [facts(p) for p in records]


def test_instruction_csv_jsonl_and_nested_json(tmp_path):
    (tmp_path / "spec.csv").write_text(
        'instruction,output\n"What ICD-10 code represents essential hypertension?","The ICD-10 code is I10."\n'
    )
    (tmp_path / "spec3.csv").write_text("instruction,input,output\nCode this,chest pain,R07.9 chest pain unspecified\n")
    assert len(load("csv", path=tmp_path / "spec.csv").examples) == 1
    assert load("csv", path=tmp_path / "spec3.csv").examples[0].input == "chest pain"
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"instruction": "Describe Safe Harbor.", "output": "Remove the 18 identifiers."})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
        + "\n"
    )
    assert len(load("jsonl", path=tmp_path / "mixed.jsonl").examples) == 2
    nested = [
        {
            "patient_id": "P001",
            "demographics": {"age": 45, "gender": "female", "zip_code": "02139"},
            "diagnoses": [{"code": "E11.9", "description": "Type 2 diabetes mellitus"}],
            "medications": [{"name": "Metformin", "dose": "500 mg", "frequency": "twice daily"}],
            "allergies": ["penicillin"],
            "lab_results": [{"test": "Hemoglobin A1c", "value": 7.4, "unit": "%"}],
        }
    ]
    (tmp_path / "patients.json").write_text(json.dumps(nested))
    rec = load("json", path=tmp_path / "patients.json").records[0]
    assert rec.sex == "F" and rec.current_age == 45 and rec.conditions[0].code == "E11.9"
    assert check_record(rec) == []


def test_truncated_json_line_is_reported_with_file_and_line(tmp_path):
    good = json.dumps({"instruction": "What ICD-10 code is asthma?", "output": "J45.909 unspecified asthma"})
    f = tmp_path / "data.jsonl"
    f.write_text(good + "\n" + good[:25] + "\n" + good + "\n")
    loaded = load("jsonl", path=f)
    assert len(loaded.examples) == 2 and len(loaded.rejects) == 1
    assert loaded.items_in == 3
    with pytest.raises(ClinituneError) as exc:
        check_rejects(loaded, skip_invalid=False)
    assert f"{f}: line 2: invalid JSON" in str(exc.value) and "--skip-invalid" in str(exc.value)
    check_rejects(loaded, skip_invalid=True)  # goes on; prepare writes rejects.jsonl (test_prepare checks it)


def test_csv_missing_column(tmp_path, db):
    out = tmp_path / "csv"
    export(db, "csv", out, progress=False)
    lines = (out / "conditions.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("code")
    (out / "conditions.csv").write_text(
        "\n".join(",".join(c for i, c in enumerate(row.split(",")) if i != drop) for row in lines[:3]) + "\n"
    )
    loaded = load("csv", path=out)
    assert any("conditions.csv" in r.file and "missing column(s) code" in r.reason for r in loaded.rejects)
    (tmp_path / "bad.csv").write_text("question,answer\nfoo,bar\n")
    assert "missing column(s) instruction, output" in str(load("csv", path=tmp_path / "bad.csv").rejects[0])


def test_fhir_unknown_resource_type_named_with_entry(tmp_path):
    from clinitune.data.records.fhir import to_bundle

    p = _planted()
    bundle = to_bundle(p)
    bundle["entry"].append({"resource": {"resourceType": "Patinet", "id": "x"}})
    bundle["entry"].append({"resource": {"resourceType": "Claim", "id": "c1"}})  # real FHIR, outside the model
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle))
    loaded = load("fhir", path=f)
    bad = [r for r in loaded.rejects if "Patinet" in r.reason]
    n = len(bundle["entry"]) - 2
    assert bad and bad[0].where == f"entry {n}" and bad[0].file == str(f)
    assert loaded.ignored == {"Claim": 1}


def test_unreachable_database_urls():
    with pytest.raises(ClinituneError, match="cannot connect to postgresql"):
        engine_for("postgresql+psycopg://nobody:secret@127.0.0.1:9/clinic", readonly=True)
    with pytest.raises(ClinituneError, match="does not exist; create it with: clinitune synth"):
        list(iter_database("sqlite:////nonexistent/dir/clinic.db"))
    with pytest.raises(ClinituneError, match="not a database URL"):
        engine_for("clinic.db")


def test_cli_synth_export_and_validate(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    res = runner.invoke(
        app, ["synth", "--db", url, "--patients", "40", "--seed", "3", "--export", "fhir", str(tmp_path / "fx"), "-q"]
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == url
    assert len(list((tmp_path / "fx").glob("*.json"))) == 40
    ok = runner.invoke(app, ["validate", "--db", url])
    assert ok.exit_code == 0 and "0 coherence violation" in ok.stdout
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE observations SET flag = 'L' WHERE code = '8867-4'"))
    bad = runner.invoke(app, ["validate", "--db", url, "--json"])
    assert bad.exit_code == 1
    assert {v["rule"] for v in json.loads(bad.stdout)["violations"]} == {"lab_flag"}
    gone = runner.invoke(app, ["validate", "--db", "postgresql+psycopg://x@127.0.0.1:9/db"])
    assert gone.exit_code == 2 and "cannot connect" in gone.output and "Traceback" not in gone.output
