"""fhir_conversion: a patient record as a FHIR R4 collection Bundle of a Patient and its Conditions."""

from __future__ import annotations

import random

from fhir.resources.R4B.bundle import Bundle

from ..example import Example
from ..phrasings import NOTE, Phrasings, on_note, phrased
from ..records.fhir import ICD10CM
from .common import dumps, parse_json, set_f1
from .spec import TaskSpec

NAME = "fhir_conversion"

PHRASINGS = Phrasings(
    seen=on_note(
        NOTE,
        "Convert this patient record to FHIR R4 Patient and Condition resources (a collection Bundle, JSON).",
        "Express this record as a FHIR R4 Bundle containing a Patient and its Conditions.",
        "Write the FHIR R4 resources (Patient, Condition) for this patient record as a JSON Bundle.",
        "Convert to FHIR.",
        "Record:\n{input}\n\nMap it to a FHIR R4 Bundle (Patient + Conditions).",
        "Turn this record into FHIR R4 JSON.",
        "Conver this record to a FHIR R4 bundle.",
        "What would this record look like as FHIR R4 resources? Give the Bundle.",
        "FHIR R4 bundle for this patient, please.",
        "Map the patient and the diagnoses below to FHIR R4 Patient and Condition resources in a collection Bundle.",
        "{input}\n\nConvert the record above to FHIR R4.",
        "record -> FHIR R4 Bundle",
        "We are loading this into a FHIR server: produce a Bundle of type collection with one Patient and a "
        "Condition for each diagnosis, coded in ICD-10-CM.",
        "Generate FHIR R4 Patient/Condition resources from this record.",
        "Serialize this record as a FHIR R4 collection Bundle.",
        "Build the FHIR Bundle for this patient.",
    ),
    held_out=on_note(
        NOTE,
        "Can you convert this record into a FHIR R4 Bundle?",
        "Source record:\n{input}\n\nOutput: FHIR R4 collection Bundle (Patient and Conditions).",
        "to fhir r4 pls",
        "Convrt this patient record into FHIR R4 resoures.",
        "For interoperability testing, please express the following patient and each of their diagnoses as FHIR R4 "
        "Patient and Condition resources inside a single collection Bundle.",
        "FHIR version of this record?",
    ),
)


def fhir_resources(rec: dict) -> dict:
    pid = rec["patient_id"].lower()
    entries = [{"resource": {"resourceType": "Patient", "id": pid, "gender": rec["gender"]}}]
    for i, d in enumerate(rec["diagnoses"][:2], 1):
        res = {
            "resourceType": "Condition",
            "id": f"{pid}-c{i}",
            "code": {"coding": [{"system": ICD10CM, "code": d["code"], "display": d["description"]}]},
            "subject": {"reference": f"Patient/{pid}"},
        }
        if d.get("onset_year"):
            res["onsetDateTime"] = str(d["onset_year"])
        entries.append({"resource": res})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    if not rec["diagnoses"]:
        return []
    r = {k: rec[k] for k in ("patient_id", "age", "gender")}
    r["diagnoses"] = rec["diagnoses"][:2]
    bundle = fhir_resources(r)
    Bundle.model_validate(bundle)  # the label must be valid FHIR R4
    return [phrased(NAME, group, rng, dumps(bundle), {"input": dumps(r)}, PHRASINGS)]


def _dicts(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _fhir_fields(obj) -> set:
    out = set()
    for e in _dicts(obj.get("entry")) if isinstance(obj, dict) else []:
        r = e.get("resource") if isinstance(e.get("resource"), dict) else {}
        if r.get("resourceType") == "Patient":
            out.add(("Patient", str(r.get("gender"))))
        elif r.get("resourceType") == "Condition":
            code = r.get("code") if isinstance(r.get("code"), dict) else {}
            for c in _dicts(code.get("coding")):
                out.add(("Condition", str(c.get("code")), str(r.get("onsetDateTime"))))
    return out


def score(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    valid = 0.0
    if isinstance(obj, dict):
        try:
            Bundle.model_validate(obj)
            valid = 1.0
        except Exception:  # pydantic raises ValidationError, and others on odd shapes
            valid = 0.0
    f = set_f1(_fhir_fields(obj), _fhir_fields(parse_json(ex.reply)))
    return {"fhir_valid": valid, "field_f1": f["f1"]}


SPEC = TaskSpec(NAME, "field_f1", 512, score, {NAME: PHRASINGS}, build, schema="fhir_bundle.schema.json", json=True)
