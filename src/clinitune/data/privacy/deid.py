"""Field-by-field Safe Harbor de-identification of a structured record, before any text exists.

Names, contact details, identifiers and street addresses are dropped; dates keep only the year;
ZIP keeps 3 digits (000 for the sparsely populated prefixes); ages over 89 become "90+". The
result is the documented record schema (resources/patient_record.schema.json) that tasks render.
"""

from __future__ import annotations

import json
from importlib import resources

from ..records.patient import Patient
from .keys import DataKey

# Safe Harbor: 3-digit ZIPs whose areas hold 20,000 people or fewer (Census 2000) become 000.
RESTRICTED_ZIP3 = (
    "036",
    "059",
    "063",
    "102",
    "203",
    "556",
    "692",
    "790",
    "821",
    "823",
    "830",
    "831",
    "878",
    "879",
    "884",
    "890",
    "893",
)
KEY_LABS = (
    "Hemoglobin A1c",
    "LDL cholesterol",
    "eGFR",
    "Systolic blood pressure",
    "Diastolic blood pressure",
    "Body mass index",
    "TSH",
    "Hemoglobin",
)


PSEUDONYM_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no digits, no vowels: cannot look like an ID number or a word


def pseudonym(patient_id, key: DataKey) -> str:
    """A stable, non-reversible patient id: the source id never leaves the database, and without the key
    no one can enumerate small ids to find which pseudonym is whose."""
    n = key.number("pseudonym", patient_id)
    chars = []
    for _ in range(10):
        n, r = divmod(n, len(PSEUDONYM_ALPHABET))
        chars.append(PSEUDONYM_ALPHABET[r])
    return "P" + "".join(chars)


def safe_age(age: int | None) -> int | str | None:
    return "90+" if age is not None and age > 89 else age


def zip3(zip_code: str | None, restricted: tuple[str, ...] = RESTRICTED_ZIP3) -> str | None:
    if not zip_code:
        return None
    z = zip_code.strip()[:3]
    return "000" if z in restricted else z


def deidentify(p: Patient, key: DataKey, restricted_zip3: tuple[str, ...] = RESTRICTED_ZIP3) -> dict:
    """The de-identified record: the only form of a patient that tasks ever see."""
    latest: dict[str, dict] = {}
    for o in sorted(p.observations, key=lambda o: (o.date or 0, o.id) if o.date else (0, o.id)):
        if o.name in KEY_LABS:
            latest[o.name] = {"test": o.name, "value": o.value, "unit": o.unit, "flag": o.flag}
    conditions = {c.id: c for c in p.conditions}
    return {
        "patient_id": pseudonym(p.id, key),
        "age": safe_age(p.current_age),
        "gender": {"M": "male", "F": "female", "O": "other"}.get(p.sex, "unknown"),
        "zip3": zip3(p.zip, restricted_zip3),
        "diagnoses": [
            {"code": c.code, "description": c.description, "onset_year": c.onset_date.year if c.onset_date else None}
            for c in sorted(p.conditions, key=lambda c: c.id)
        ],
        "medications": [
            {
                "name": m.drug,
                "dose": m.dose,
                "frequency": m.frequency,
                "indication": conditions[m.condition_id].code if m.condition_id in conditions else None,
            }
            for m in sorted(p.medications, key=lambda m: m.id)
        ],
        "allergies": [
            {"substance": a.substance, "reaction": a.reaction} for a in sorted(p.allergies, key=lambda a: a.id)
        ],
        "lab_results": [latest[k] for k in KEY_LABS if k in latest],
    }


def record_schema() -> dict:
    return json.loads(resources.files("clinitune.resources").joinpath("patient_record.schema.json").read_text())
