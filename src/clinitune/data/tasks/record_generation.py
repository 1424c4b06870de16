"""record_generation: a synthetic patient record in JSON for an age, a sex and a condition."""

from __future__ import annotations

import copy
import random

import jsonschema

from ..example import Example
from ..phrasings import Phrasings, phrased, plain
from ..privacy.deid import record_schema
from ..records import catalog as cat
from ..records.coherence import check_record
from ..records.mapping import read_record
from .common import condition_name, dumps, parse_json, person
from .spec import TaskSpec

NAME = "record_generation"

PHRASINGS = Phrasings(
    seen=plain(
        "Generate a patient record for a {age} {gender} with {cond}.",
        "Create a de-identified patient record in JSON for a {age} {gender} diagnosed with {cond}.",
        "Write a synthetic EHR record (JSON) for a {age} {gender} patient who has {cond}.",
        "Produce a structured patient record for a {age} {gender} with {cond}.",
        "Patient record, JSON: {age} {gender}, {cond}.",
        "{years}{sx} with {cond}. Make a synthetic record.",
        "I need a realistic but fake patient chart in JSON. The patient is a {age} {gender} whose main problem "
        "is {cond}; include diagnoses, medications and labs.",
        "Can you generate a JSON patient record for a {gender} patient, age {years}, with {cond}?",
        "Dx: {cond}. Age {years}, sex {gender}. Build the patient record.",
        "Generat a patient recrod for a {age} {gender} with {cond}.",
        "synthetic pt record - {years}yo {gender}, {cond} pls",
        "Draft a JSON record in EHR format: {cond} in a {age} {gender}.",
        "For testing our pipeline, create one de-identified patient record (JSON) describing a {age} {gender} "
        "who has {cond}.",
        "Could you make up a patient record for a {age} {gender} with {cond}? Return JSON.",
        "JSON record for: {cond}; {gender}; {years} years old.",
        "New synthetic patient: {age} {gender}, primary diagnosis {cond}. Output the record as JSON.",
    ),
    held_out=plain(
        "Please write out a sample patient record, formatted as JSON, for a {gender} aged {years} who carries a "
        "diagnosis of {cond}.",
        "{years}{sx}, {cond} -> record json",
        "What would a de-identified JSON record look like for a {age} {gender} with {cond}?",
        "Genrate a synthetic patinet record for {age} {gender} w/ {cond}",
        "Condition: {cond}\nSex: {gender}\nAge: {years}\nTask: create a matching patient record in JSON.",
        "Mock up an EHR entry (JSON) for a {gender}, {years} y/o, known {cond}.",
    ),
)


def _primary(rec: dict, rng: random.Random) -> dict | None:
    chronic = [d for d in rec["diagnoses"] if getattr(cat.BY_CODE.get(d["code"]), "chronic", True)]
    return rng.choice(chronic) if chronic else None


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    d = _primary(rec, rng)
    if d is None:
        return []
    r = copy.deepcopy(rec)
    r.pop("zip3", None)
    # A pseudonym is noise the model cannot predict from the instruction; learning to emit it teaches
    # random letters (greedy decoding then loops on them), so generated records carry no id.
    r.pop("patient_id", None)
    # The condition asked for comes first, so the output honours the instruction visibly.
    r["diagnoses"].sort(key=lambda x: x["code"] != d["code"])
    # Kept short: a record the model can learn to emit whole within a 512-token row.
    r["diagnoses"], r["medications"], r["lab_results"] = r["diagnoses"][:3], r["medications"][:2], r["lab_results"][:3]
    slots = {**person(rec), "cond": condition_name(d["code"], d["description"])}
    return [phrased(NAME, group, rng, dumps(r), slots, PHRASINGS)]


def score(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    out = {
        "json_valid": float(isinstance(obj, dict)),
        "schema_valid": 0.0,
        "plausible": 0.0,
        "attributes_honoured": 0.0,
    }
    if not isinstance(obj, dict):
        return out
    try:
        jsonschema.validate(obj, record_schema())
        out["schema_valid"] = 1.0
    except jsonschema.ValidationError:
        pass
    try:
        out["plausible"] = float(not check_record(read_record(obj)))
    except (ValueError, TypeError, AttributeError, KeyError):
        pass
    ref = parse_json(ex.reply) or {}
    want_code = (ref.get("diagnoses") or [{}])[0].get("code")
    codes = {str(d.get("code")) for d in obj.get("diagnoses") or [] if isinstance(d, dict)}
    out["attributes_honoured"] = float(
        obj.get("age") == ref.get("age") and obj.get("gender") == ref.get("gender") and want_code in codes
    )
    return out


def fact(ex: Example) -> str:
    """The condition asked for: the record's first diagnosis."""
    rec = parse_json(ex.reply) or {}
    return str((rec.get("diagnoses") or [{}])[0].get("code"))


SPEC = TaskSpec(
    NAME,
    "json_valid",
    512,
    score,
    {NAME: PHRASINGS},
    build,
    schema="patient_record.schema.json",
    json=True,
    fact=fact,
)
