"""What several tasks share: plain names for codes, the patient slots of a phrasing, and the parsing and set
overlap their scorers use."""

from __future__ import annotations

import copy
import json
import re

from ..example import Example
from ..records import icd10

REFERENCE_PREFIX = "reference:"  # groups that are reference data, not patients: training split only
CODE_RE = re.compile(r"\b([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?)\b")

# Plain-language names for frequent codes; other codes use their official description.
COMMON_NAMES = {
    "I10": "hypertension",
    "E11.9": "type 2 diabetes",
    "E11.65": "type 2 diabetes with hyperglycemia",
    "E10.9": "type 1 diabetes",
    "E66.9": "obesity",
    "E66.01": "morbid obesity",
    "E66.3": "overweight",
    "E78.5": "hyperlipidemia",
    "E78.00": "high cholesterol",
    "E03.9": "hypothyroidism",
    "J45.909": "asthma",
    "J44.9": "COPD",
    "F32.9": "depression",
    "F41.1": "generalized anxiety disorder",
    "I48.91": "atrial fibrillation",
    "I50.9": "heart failure",
    "I25.10": "coronary artery disease",
    "N18.30": "chronic kidney disease stage 3",
    "K21.9": "GERD",
    "M54.50": "low back pain",
    "G43.909": "migraine",
    "N39.0": "a urinary tract infection",
    "J06.9": "an upper respiratory infection",
    "R73.03": "prediabetes",
    "G47.33": "obstructive sleep apnea",
    "M81.0": "osteoporosis",
    "M10.9": "gout",
    "J30.9": "allergic rhinitis",
    "F90.0": "ADHD",
    "N40.0": "benign prostatic hyperplasia",
    "D64.9": "anemia",
    "E55.9": "vitamin D deficiency",
    "F17.210": "nicotine dependence",
}


def condition_name(code: str, description: str | None = None) -> str:
    if code in COMMON_NAMES:
        return COMMON_NAMES[code]
    d = description or (icd10.description(code) if icd10.is_valid(code) else code)
    return d[0].lower() + d[1:]


def age_text(age) -> str:
    return "90-or-older" if age == "90+" else f"{age}-year-old"


def person(rec: dict) -> dict:
    """The slots a phrasing may name about the patient: `54-year-old`, `54`, `male`, `M`."""
    age = age_text(rec["age"])
    return {
        "age": age,
        "Age": age.capitalize(),
        "years": str(rec["age"]),
        "gender": rec["gender"],
        "sx": {"male": "M", "female": "F"}.get(rec["gender"], "U"),
    }


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def compact(rec: dict, dx: int = 3, meds: int = 2, labs: int = 2) -> dict:
    """A shorter record for tasks that put a record in the prompt."""
    r = copy.deepcopy(rec)
    r["diagnoses"], r["medications"], r["lab_results"] = (
        r["diagnoses"][:dx],
        r["medications"][:meds],
        r["lab_results"][:labs],
    )
    r.pop("zip3", None)
    return r


# ------------------------------------------------------------------ scoring


def parse_json(text: str):
    """The first JSON value in `text` (models may wrap it in prose or code fences)."""
    text = text.strip()
    if text.startswith("```"):
        text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            return None
        try:
            return json.JSONDecoder().raw_decode(text[start:])[0]
        except json.JSONDecodeError:
            return None


def first_code(text: str) -> str | None:
    m = CODE_RE.search(text.upper())
    return m.group(1) if m else None


def norm(s: str) -> str:
    return re.sub(r"[\W_]+", " ", s.lower()).strip()


def set_f1(pred: set, ref: set) -> dict:
    if not pred and not ref:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    tp = len(pred & ref)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(ref) if ref else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def token_f1(pred: str, ex: Example) -> dict:
    p, r = norm(pred).split(), norm(ex.reply).split()
    common = sum(min(p.count(w), r.count(w)) for w in set(p))
    if not p or not r or not common:
        return {"token_f1": 0.0}
    prec, rec = common / len(p), common / len(r)
    return {"token_f1": 2 * prec * rec / (prec + rec)}
