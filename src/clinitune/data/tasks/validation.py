"""validation: the data-quality errors in a patient record, each planted and confirmed by the coherence checker."""

from __future__ import annotations

import random

from ..example import Example
from ..phrasings import NOTE, Phrasings, on_note, phrased
from ..records import catalog as cat
from ..records.coherence import check_record
from ..records.mapping import read_record
from .common import compact, dumps, parse_json, set_f1
from .spec import TaskSpec

NAME = "validation"

PHRASINGS = Phrasings(
    seen=on_note(
        NOTE,
        "Validate this patient record and list any data-quality errors as JSON.",
        "Check this patient record for errors. Return JSON with valid and errors.",
        "Validate this patient record.",
        "Is this record valid? Answer in JSON with valid and errors.",
        "Run a data-quality check on the record below.",
        "Record:\n{input}\n\nFind any data-quality errors (JSON).",
        "Vaildate this patient record and report errors as JSON.",
        "QA this patient record.",
        "Any problems with this record? Return JSON.",
        "Look for invalid codes, implausible labs and diagnoses or drugs that don't fit in this record; report "
        "them as JSON.",
        "{input}\n\nValidate the record above.",
        "Audit this EHR record for data-quality errors and return JSON with valid and errors.",
        "check record for errors -> json",
        "Before this record goes into the registry, please check it for errors and list each one with its rule, "
        "field and message as JSON.",
        "Does this patient record pass validation?",
        "List the data-quality errors in this record, if any (JSON).",
    ),
    held_out=on_note(
        NOTE,
        "Could you check whether this patient record has any errors? JSON answer.",
        "Patient record to review:\n{input}\n\nReturn the validation result as JSON.",
        "validate pls",
        "Chekc this record for data-qualty errors.",
        "Act as a data steward: verify that the codes, labs, medications and sex-specific diagnoses in this record "
        "are consistent, and return JSON with valid and errors.",
        "Is anything wrong in this patient record?",
    ),
)


def _plant(rec: dict, rng: random.Random) -> list[dict]:
    """Plant 0-2 errors the checker can see; return what was planted."""
    codes = [d["code"] for d in rec["diagnoses"]]
    options = ["invalid_code", "medication_indication", "lab_range"]
    if rec["gender"] in ("male", "female"):  # a sex-specific code contradicts only a known sex
        options.append("sex_mismatch")
    if not cat.has_prefix(codes, cat.DIABETES):
        options.append("lab_condition")
    planted = []
    for kind in rng.sample(options, rng.choice((0, 1, 1, 2))):
        if kind == "invalid_code" and rec["diagnoses"]:
            i = rng.randrange(len(rec["diagnoses"]))
            bad = rng.choice(["X99.99", "I10.9", "E11.999", "J45.999", "Q99.99"])
            rec["diagnoses"][i]["code"] = bad
            planted.append(
                {
                    "rule": "invalid_code",
                    "field": f"diagnoses[{i}].code",
                    "message": f"{bad} is not a valid ICD-10-CM code",
                }
            )
        elif kind == "sex_mismatch":
            code, desc = (
                ("Z34.00", "Encounter for supervision of normal first pregnancy, unspecified trimester")
                if rec["gender"] == "male"
                else ("N40.0", "Benign prostatic hyperplasia without lower urinary tract symptoms")
            )
            rec["diagnoses"].append({"code": code, "description": desc, "onset_year": None})
            planted.append(
                {
                    "rule": "sex_mismatch",
                    "field": f"diagnoses[{len(rec['diagnoses']) - 1}].code",
                    "message": f"{code} does not apply to a {rec['gender']} patient",
                }
            )
        elif kind == "medication_indication":
            now = [d["code"] for d in rec["diagnoses"]]
            drug = next(
                dr
                for dr in rng.sample(sorted(cat.DRUG_INDICATIONS), len(cat.DRUG_INDICATIONS))
                if not cat.DRUG_INDICATIONS[dr] & set(now) and not any(m["name"] == dr for m in rec["medications"])
            )
            rec["medications"].append({"name": drug, "dose": "10 mg", "frequency": "once daily", "indication": None})
            planted.append(
                {
                    "rule": "medication_indication",
                    "field": f"medications[{len(rec['medications']) - 1}]",
                    "message": f"{drug} treats none of the recorded diagnoses",
                }
            )
        elif kind == "lab_range":
            value = rng.choice([400, 520, 18])
            rec["lab_results"].append(
                {
                    "test": "Systolic blood pressure",
                    "value": value,
                    "unit": "mm[Hg]",
                    "flag": "H" if value > 129 else "L",
                }
            )
            planted.append(
                {
                    "rule": "lab_range",
                    "field": f"lab_results[{len(rec['lab_results']) - 1}]",
                    "message": f"systolic blood pressure {value} mm[Hg] is outside physiological limits",
                }
            )
        elif kind == "lab_condition":
            value = round(rng.uniform(7.0, 10.5), 1)
            rec["lab_results"].append({"test": "Hemoglobin A1c", "value": value, "unit": "%", "flag": "H"})
            planted.append(
                {
                    "rule": "lab_condition",
                    "field": f"lab_results[{len(rec['lab_results']) - 1}]",
                    "message": f"A1c {value} % is in the diabetic range but no diabetes is recorded",
                }
            )
    return planted


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    r = compact(rec)
    r.pop("patient_id")
    before = {v.rule for v in check_record(read_record({**r, "patient_id": "x"}))}
    if before:
        return []  # the clean record must be clean by the checker's own rules, or the label would lie
    planted = _plant(r, rng)
    found = {v.rule for v in check_record(read_record({**r, "patient_id": "x"}))}
    if found != {p["rule"] for p in planted}:
        return []  # a plant the checker cannot confirm is not a verified label
    planted.sort(key=lambda p: p["field"])
    return [phrased(NAME, group, rng, dumps({"valid": not planted, "errors": planted}), {"input": dumps(r)}, PHRASINGS)]


def _issues(obj) -> set:
    if not isinstance(obj, dict):
        return set()
    return {(str(e.get("rule")), str(e.get("field"))) for e in obj.get("errors") or [] if isinstance(e, dict)}


def score(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    if not isinstance(obj, dict):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return set_f1(_issues(obj), _issues(parse_json(ex.reply)))


def fact(ex: Example) -> str:
    """The errors of one record: a clean record's answer is the same for every record, its record is not."""
    return f"{ex.reply}|{ex.input or ex.instruction}"


SPEC = TaskSpec(NAME, "f1", 160, score, {NAME: PHRASINGS}, build, json=True, fact=fact)
