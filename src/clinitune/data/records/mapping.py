"""Where a user's records keep each clinical field, and the one reader of a patient record from a dict.

A record (nested JSON, a JSONL line, the rows of a records CSV or database table) is read through a
`FieldMap`: each clinical field (sex, a diagnosis code, a lab's name and value, ...) has a path into the
record, dotted for nested JSON (``demographics.gender``). Common spellings are known without a map; a
``--map`` file names the rest, one line per field. Nothing is guessed past that: a field that can't be placed
is an error that prints the mapping line that would place it, and every key no field reads is counted in
`Notes`, never dropped unseen.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ...errors import ClinituneError
from .patient import Allergy, ConditionFact, Medication, Observation, Patient

PATIENT_FIELDS = {
    "patient_id": ("patient_id", "patientId", "patient.id", "pid", "subject_id", "person_id", "id"),
    "sex": ("demographics.gender", "demographics.sex", "gender", "sex", "sex_at_birth", "administrative_gender"),
    "age": ("demographics.age", "age"),
    "birth_date": (
        "demographics.birth_date",
        "demographics.date_of_birth",
        "demographics.dob",
        "demographics.birthDate",
        "birth_date",
        "birthDate",
        "date_of_birth",
        "dob",
    ),
    "zip": ("demographics.zip_code", "demographics.zip", "demographics.postal_code", "zip_code", "zip", "postal_code"),
    # Names are read only so that the PHI screen can look for them in every text; no example carries them.
    "first_name": ("demographics.first_name", "first_name", "given_name"),
    "last_name": ("demographics.last_name", "last_name", "family_name", "surname"),
}
LISTS = {
    "diagnoses": ("diagnoses", "conditions", "problems", "problem_list"),
    "medications": ("medications", "meds", "prescriptions"),
    "allergies": ("allergies",),
    "lab_results": ("lab_results", "labs", "lab_tests", "observations"),
}
ITEM_FIELDS = {
    "diagnoses": {
        "code": ("code", "icd10", "icd10_code", "icd_10_code", "icd_code", "dx_code"),
        "description": ("description", "display", "name", "diagnosis"),
        "onset_date": ("onset_date", "onset", "diagnosed_date", "diagnosis_date", "date"),
    },
    "medications": {
        "name": ("name", "drug", "medication", "drug_name", "medication_name"),
        "dose": ("dose", "dosage", "strength"),
        "frequency": ("frequency", "freq", "sig"),
        "route": ("route",),
        "start_date": ("start_date", "started", "date"),
    },
    "allergies": {
        "substance": ("substance", "allergen", "name", "agent"),
        "category": ("category", "type"),
        "reaction": ("reaction", "reactions"),
        "severity": ("severity",),
    },
    "lab_results": {
        "name": ("test_name", "test", "name", "lab", "lab_name", "analyte"),
        "code": ("code", "loinc", "loinc_code"),
        "value": ("value", "result", "result_value"),
        "unit": ("unit", "units"),
        "ref_low": ("ref_low", "reference_low", "low"),
        "ref_high": ("ref_high", "reference_high", "high"),
        "flag": ("flag", "interpretation", "abnormal_flag"),
        "date": ("date", "result_date", "collected"),
    },
}
REQUIRED = {
    "diagnoses": ("code",),
    "medications": ("name",),
    "allergies": ("substance",),
    "lab_results": ("name", "value"),
}
WHAT = {
    "diagnoses.code": "diagnosis code",
    "medications.name": "medication name",
    "allergies.substance": "allergy substance",
    "lab_results.name": "lab test name",
    "lab_results.value": "lab value",
    "patient_id": "patient id",
    "sex": "sex or gender",
}
# In a flat table one row holds at most one fact of each kind, so a column names its fact as well as its field.
TABLE_FIELDS = {
    "diagnoses.code": ("diagnosis_code", "dx_code", "icd10_code", "icd10", "icd_code", "icd_10_code"),
    "diagnoses.description": ("diagnosis", "diagnosis_description", "dx_description", "dx"),
    "diagnoses.onset_date": ("onset_date", "diagnosis_date"),
    "medications.name": ("medication", "drug", "medication_name", "drug_name"),
    "medications.dose": ("dose", "dosage"),
    "medications.frequency": ("frequency",),
    "allergies.substance": ("allergen", "allergy"),
    "allergies.reaction": ("reaction",),
    "lab_results.name": ("test_name", "lab_test", "lab_name"),
    "lab_results.value": ("result", "lab_value", "result_value"),
    "lab_results.unit": ("unit", "units"),
}
KEYS = (*PATIENT_FIELDS, *LISTS, *(f"{lst}.{f}" for lst, fs in ITEM_FIELDS.items() for f in fs))
# FHIR AdministrativeGender and the spellings EHR exports use for it.
SEX = {
    "M": ("male", "m", "man", "boy"),
    "F": ("female", "f", "woman", "girl"),
    "O": ("other", "o", "x", "nonbinary", "non-binary", "intersex"),
    "U": ("unknown", "u", "unk", "not specified", "unspecified", "declined", "prefer not to say", "asked-declined"),
}
SEX_OF = {spelling: code for code, spellings in SEX.items() for spelling in spellings}
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y%m%d", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%B %d, %Y")
NUMBER_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(\S.*)?$")


class RecordError(ValueError):
    """One record can't be read; the message names the field and, where it helps, the mapping line."""


@dataclass
class Notes:
    """What reading kept from the user without stopping: counts only, never a value (values may be PHI)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, text: str, n: int = 1) -> None:
        self.counts[text] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass(frozen=True)
class FieldMap:
    """Paths per field: the user's own lines first and alone, the common spellings for every other field."""

    user: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""  # the --map file, for messages and the manifest

    def paths(self, key: str, table: bool = False) -> tuple[str, ...]:
        if key in self.user:
            return self.user[key]
        if key in PATIENT_FIELDS:
            return tuple(p for p in PATIENT_FIELDS[key] if not table or "." not in p)
        if key in LISTS:
            return LISTS[key]
        lst, f = key.split(".")
        return TABLE_FIELDS.get(key, ()) if table else ITEM_FIELDS[lst][f]


DEFAULT = FieldMap()


def load_map(path: Path) -> FieldMap:
    """A --map file: ``field: path`` lines (a path or a list of paths); an unknown field is one line naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClinituneError(f"{path}: no such mapping file; write one with clinitune prepare --suggest-map") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ClinituneError(f"{path}: not a YAML mapping ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ClinituneError(f"{path}: expected 'field: path' lines, e.g. 'sex: demographics.gender'")
    user = {}
    for key, value in data.items():
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}?" if close else f"fields: {', '.join(KEYS)}"
            raise ClinituneError(f"{path}: {key}: not a field clinitune reads; {hint}")
        paths = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else ()
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise ClinituneError(f"{path}: {key}: expected a path such as demographics.gender, got {value!r}")
        user[key] = paths
    return FieldMap(user, str(path))


def get(obj, path: str):
    """The value at a dotted path, or None; a key that itself holds a dot is matched whole first."""
    if isinstance(obj, dict) and path in obj:
        return obj[path]
    head, _, rest = path.partition(".")
    if rest and isinstance(obj, dict) and isinstance(obj.get(head), dict):
        return get(obj[head], rest)
    return None


def first(obj, paths: tuple[str, ...], used: set[str], prefix: str = "") -> object:
    for p in paths:
        value = get(obj, p)
        if value is not None and value != "":
            used.add(prefix + p)
            return value
    return None


def parse_date(value, where: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if re.match(r"\d{4}-\d\d-\d\d", text):  # ISO, with or without a time after it
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            pass
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise RecordError(f"{where}: {text!r} is not a date; give YYYY-MM-DD (MM/DD/YYYY and 03-Jan-2024 work too)")


def sex_code(value, notes: Notes) -> str:
    if value is None:
        notes.add("sex: missing, read as unknown")
        return "U"
    code = SEX_OF.get(str(value).strip().lower())
    if code is None:
        notes.add(f"sex: {str(value)[:20]!r} not a known spelling, read as unknown")
        return "U"
    return code


def number_and_unit(value) -> tuple[float | None, str]:
    if isinstance(value, bool):
        return None, ""
    if isinstance(value, (int, float)):
        return float(value), ""
    m = NUMBER_UNIT.match(str(value)) if isinstance(value, str) else None
    return (float(m.group(1)), (m.group(2) or "").strip()) if m else (None, "")


def mapping_line(key: str, item: dict, used: set[str]) -> str:
    """The line that would place `key`, pointing at the most likely of the keys nothing else read."""
    free = [k for k in item if k not in used]
    lst, _, f = key.partition(".")
    names = (f or lst, *(ITEM_FIELDS.get(lst, {}).get(f, ()) if f else PATIENT_FIELDS.get(lst, ())))
    scored = sorted(free, key=lambda k: -max(difflib.SequenceMatcher(None, k.lower(), n).ratio() for n in names))
    return f"{key}: {scored[0] if scored else 'YOUR_FIELD'}"


def _item(lst: str, raw, where: str, fmap: FieldMap, table: bool) -> tuple[dict, set[str]]:
    """One fact of a list as {field: value} and the keys it read; a missing required field is a RecordError."""
    if not isinstance(raw, dict):
        if isinstance(raw, (str, int, float)) and lst != "lab_results":
            return {**dict.fromkeys(ITEM_FIELDS[lst]), REQUIRED[lst][0]: raw}, set()
        raise RecordError(f"{where}: expected an object, got {type(raw).__name__}")
    used: set[str] = set()
    values = {f: first(raw, fmap.paths(f"{lst}.{f}", table), used) for f in ITEM_FIELDS[lst]}
    for f in REQUIRED[lst]:
        if values[f] is None:
            line = mapping_line(f"{lst}.{f}", raw, used)
            raise RecordError(
                f"{where}: no {WHAT[f'{lst}.{f}']} (its keys: {', '.join(map(str, raw)) or 'none'}); if one of them "
                f"holds it, add this line to your --map file: {line}"
            )
    return values, used


def _fact(lst: str, i: int, v: dict, where: str, notes: Notes):
    """A Patient fact from an item's values, or None for a lab whose value is not a number (counted)."""
    text = {k: "" if x is None else str(x) for k, x in v.items()}
    if lst == "diagnoses":
        return ConditionFact(i, text["code"].strip().upper(), text["description"], parse_date(v["onset_date"], where))
    if lst == "medications":
        return Medication(
            i,
            text["name"].lower(),
            text["dose"],
            text["frequency"],
            text["route"] or "oral",
            start_date=parse_date(v["start_date"], where),
        )
    if lst == "allergies":
        return Allergy(i, text["substance"], text["category"] or "medication", text["reaction"], text["severity"])
    value, unit = number_and_unit(v["value"])
    if value is None:
        notes.add("lab_results: a value that is not a number, lab not read")
        return None
    low, high = number_and_unit(v["ref_low"])[0], number_and_unit(v["ref_high"])[0]
    return Observation(
        i, text["code"] or text["name"], text["name"], value, text["unit"] or unit, low, high, v["flag"] or None
    )


def leaves(obj: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in obj.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(leaves(v, path + "."))
        else:
            out.append(path)
    return out


def read_record(
    obj: dict, where: str = "record", fmap: FieldMap = DEFAULT, notes: Notes | None = None, table: bool = False
) -> Patient:
    """A Patient from one record dict; `where` names it in errors. With table=True, `obj` is a flat row whose list
    fields hold one fact each (a records CSV or table)."""
    notes = notes if notes is not None else Notes()
    used: set[str] = set()
    val = {k: first(obj, fmap.paths(k, table), used) for k in PATIENT_FIELDS}
    age = val["age"]
    if age == "90+":  # Safe Harbor's top age category
        age = 90
    if isinstance(age, str) and age.strip().isdigit():
        age = int(age)
    if age is not None and (not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 120):
        raise RecordError(f"{where}: age: {age!r}; expected a whole number of years, 0-120")
    p = Patient(
        id=str(val["patient_id"]) if val["patient_id"] is not None else where,
        sex=sex_code(val["sex"], notes),
        age=age,
        birth_date=parse_date(val["birth_date"], f"{where}: birth date"),
        zip=str(val["zip"]) if val["zip"] is not None else None,
        first_name=str(val["first_name"]) if val["first_name"] is not None else None,
        last_name=str(val["last_name"]) if val["last_name"] is not None else None,
    )
    for lst in LISTS:
        if table:
            columns = [c for f in ITEM_FIELDS[lst] for c in fmap.paths(f"{lst}.{f}", True)]
            if all(get(obj, c) in (None, "") for c in columns):  # this row holds no fact of this kind
                continue
            values, item_used = _item(lst, obj, f"{where}: {lst}", fmap, True)
            used |= item_used
            items = [(values, where)]
        else:
            raw = first(obj, fmap.paths(lst), used)
            if raw is None:
                continue
            if not isinstance(raw, list):
                raise RecordError(f"{where}: {lst}: expected a list, got {type(raw).__name__}")
            items = []
            list_path = next(p for p in fmap.paths(lst) if get(obj, p) is raw)
            for i, r in enumerate(raw):
                values, item_used = _item(lst, r, f"{where}: {list_path}[{i}]", fmap, False)
                items.append((values, f"{where}: {list_path}[{i}]"))
                for k in r if isinstance(r, dict) else {}:
                    if k not in item_used:
                        notes.add(f"not read: {list_path}[].{k}")
        for n, (values, at) in enumerate(items, 1):
            fact = _fact(lst, n, values, at, notes)
            if fact is not None:
                getattr(p, {"diagnoses": "conditions", "lab_results": "observations"}.get(lst, lst)).append(fact)
    for leaf in leaves(obj):
        if not any(leaf == u or leaf.startswith(u + ".") for u in used):
            notes.add(f"not read: {leaf}")
    return p


def looks_like_record(obj: dict) -> bool:
    """A dict that is a patient record by its default spellings (not by a bare ``id``, which anything has)."""
    named = ("demographics", "patient_id", "gender", "sex", "birth_date", "dob")
    return any(k in obj for k in named) or any(isinstance(obj.get(k), list) for a in LISTS.values() for k in a)


def table_is_records(header: list[str], fmap: FieldMap) -> bool:
    """A flat table holds records when told so by a map, or when it has a sex column and a clinical fact column."""
    if fmap.user:
        return True
    has = {k for k in (*PATIENT_FIELDS, *TABLE_FIELDS) if any(c in header for c in fmap.paths(k, table=True))}
    return "sex" in has and bool({"diagnoses.code", "medications.name", "lab_results.name"} & has)
