"""extraction: a clinical note's diagnoses (with codes), medications and vitals as JSON."""

from __future__ import annotations

import random

from ..example import Example
from ..phrasings import NOTE, Phrasings, on_note, phrased
from .common import age_text, condition_name, dumps, norm, parse_json, set_f1
from .spec import TaskSpec

NAME = "extraction"

PHRASINGS = Phrasings(
    seen=on_note(
        NOTE,
        "Extract the diagnoses (with ICD-10-CM codes), medications and vitals from this clinical note as JSON.",
        "Read the note and return JSON with diagnoses, medications and vitals.",
        "Convert this clinical note into structured JSON: diagnoses with codes, medications with doses, and vitals.",
        "Structure this note as JSON.",
        "Note:\n{input}\n\nPull the diagnoses, meds and vitals out as JSON.",
        "Parse the clinical note below into JSON (diagnoses, medications, vitals).",
        "Extarct diagnoses, medications and vitals from the note as JSON.",
        "What diagnoses, medications and vitals does this note mention? Answer in JSON.",
        "{input}\n\nExtract the structured data from the note above as JSON.",
        "Abstract this encounter note: diagnoses (with ICD-10-CM codes), medications and vitals, in JSON.",
        "note -> json (dx, meds, vitals)",
        "Please turn the following visit note into a JSON object listing its diagnoses with ICD-10-CM codes, the "
        "medications with dose and frequency, and any vitals.",
        "Chart abstraction: return diagnoses, medications and vitals from this note in JSON.",
        "Get the dx, meds and vitals from this note. JSON only.",
        "Which problems, drugs and vital signs are in this note? Return JSON.",
        "Build the structured JSON for this clinical note.",
    ),
    held_out=on_note(
        NOTE,
        "Can you read this note and give me its diagnoses, medications and vitals as JSON?",
        "Clinical note:\n{input}\n\nTask: extract diagnoses, medications and vitals into JSON.",
        "Extrct the dx/meds/vitals as JSON",
        "For the registry, abstract the following note into JSON with three parts: diagnoses (name and ICD-10-CM "
        "code), medications (name, dose, frequency) and vitals.",
        "JSON please: diagnoses, medications, vitals.",
        "{input}\n\nWhat are the coded diagnoses, the medications and the vitals here? JSON.",
    ),
)


def _vitals(rec: dict) -> dict:
    labs = {x["test"]: x["value"] for x in rec["lab_results"]}
    return {
        k: v
        for k, v in {
            "blood_pressure": f"{labs['Systolic blood pressure']:g}/{labs['Diastolic blood pressure']:g}"
            if "Systolic blood pressure" in labs and "Diastolic blood pressure" in labs
            else None,
            "bmi": labs.get("Body mass index"),
        }.items()
        if v is not None
    }


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    if not rec["diagnoses"]:
        return []
    dx = rec["diagnoses"][:4]
    meds = rec["medications"][:3]
    vitals = _vitals(rec)
    visit = rng.choice(["a follow-up", "an annual", "a same-day", "a telehealth"])
    parts = [
        f"{age_text(rec['age']).capitalize()} {rec['gender']} seen for {visit} visit.",
        "History of " + ", ".join(condition_name(d["code"], d["description"]) for d in dx) + ".",
    ]
    parts.append(
        "Medications: " + "; ".join(f"{m['name']} {m['dose']} {m['frequency']}" for m in meds) + "."
        if meds
        else "No current medications."
    )
    if vitals:
        parts.append(
            "Vitals: "
            + ", ".join(f"BP {v} mmHg" if k == "blood_pressure" else f"BMI {v}" for k, v in vitals.items())
            + "."
        )
    target = {
        "diagnoses": [{"name": condition_name(d["code"], d["description"]), "code": d["code"]} for d in dx],
        "medications": [{"name": m["name"], "dose": m["dose"], "frequency": m["frequency"]} for m in meds],
        "vitals": vitals,
    }
    return [phrased(NAME, group, rng, dumps(target), {"input": " ".join(parts)}, PHRASINGS)]


def _items(obj) -> set:
    if not isinstance(obj, dict):
        return set()
    items = {("dx", str(d.get("code", "")).upper()) for d in obj.get("diagnoses") or [] if isinstance(d, dict)}
    items |= {
        ("med", norm(str(m.get("name", ""))), norm(str(m.get("dose", ""))))
        for m in obj.get("medications") or []
        if isinstance(m, dict)
    }
    vitals = obj.get("vitals") if isinstance(obj.get("vitals"), dict) else {}
    items |= {("vital", k, str(v)) for k, v in vitals.items()}
    return items


def score(pred: str, ex: Example) -> dict:
    return set_f1(_items(parse_json(pred)), _items(parse_json(ex.reply)))


SPEC = TaskSpec(NAME, "f1", 320, score, {NAME: PHRASINGS}, build, json=True)
