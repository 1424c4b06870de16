"""Task builders: de-identified records (and the database) to instruction examples.

Every example has id, task, group (its source patient, or its own key for examples not drawn
from one patient), instruction, input and output. Each task is asked in one of its phrasings
(data/phrasings.py) chosen by the seeded RNG, so the model learns the task rather than a sentence.
Outputs are verified: codes against the ICD-10-CM table, SQL by running it, validation errors by the
coherence checker, FHIR by fhir.resources.

Longer than 400 lines because it holds one builder per task, eight of them, and the SQL templates.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text

from ..errors import ClinituneError
from . import phrasings
from .example import Example
from .example import instruction as example
from .phrasings import phrased
from .records import catalog as cat
from .records import icd10
from .records.coherence import check_record
from .records.db import connect
from .records.fhir import ICD10CM
from .records.mapping import read_record

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


def task_schema(task: str) -> dict | None:
    """The JSON Schema a task's answer must satisfy (record and FHIR tasks), or None for free-text tasks."""
    name = spec_of(task).schema
    return json.loads(resources.files("clinitune.resources").joinpath(name).read_text()) if name else None


def condition_name(code: str, description: str | None = None) -> str:
    if code in COMMON_NAMES:
        return COMMON_NAMES[code]
    d = description or (icd10.description(code) if icd10.is_valid(code) else code)
    return d[0].lower() + d[1:]


def _age_text(age) -> str:
    return "90-or-older" if age == "90+" else f"{age}-year-old"


def _person(rec: dict) -> dict:
    """The slots a phrasing may name about the patient: `54-year-old`, `54`, `male`, `M`."""
    age = _age_text(rec["age"])
    return {
        "age": age,
        "Age": age.capitalize(),
        "years": str(rec["age"]),
        "gender": rec["gender"],
        "sx": {"male": "M", "female": "F"}.get(rec["gender"], "U"),
    }


def _dumps(obj) -> str:
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


# ------------------------------------------------------------------ per-patient tasks


def _primary(rec: dict, rng: random.Random) -> dict | None:
    chronic = [d for d in rec["diagnoses"] if getattr(cat.BY_CODE.get(d["code"]), "chronic", True)]
    return rng.choice(chronic) if chronic else None


def record_generation(rec: dict, group: str, rng: random.Random) -> list[Example]:
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
    slots = {**_person(rec), "cond": condition_name(d["code"], d["description"])}
    return [phrased("record_generation", group, rng, _dumps(r), slots)]


def icd10_coding(rec: dict, group: str, rng: random.Random) -> list[Example]:
    out = []
    for d in rng.sample(rec["diagnoses"], min(4, len(rec["diagnoses"]))):
        desc = d["description"][0].lower() + d["description"][1:]
        slots = {**_person(rec), "desc": desc, "name": condition_name(d["code"], d["description"])}
        answer = f"The ICD-10-CM code for {desc} is {d['code']}."
        out.append(phrased("icd10_coding", group, rng, answer, slots))
    return out


def icd10_lookup(rec: dict, group: str, rng: random.Random) -> list[Example]:
    return [
        phrased(
            "icd10_lookup",
            group,
            rng,
            f"{d['code']} is the ICD-10-CM code for {d['description']}.",
            {"code": d["code"]},
        )
        for d in rng.sample(rec["diagnoses"], min(2, len(rec["diagnoses"])))
    ]


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


def extraction(rec: dict, group: str, rng: random.Random) -> list[Example]:
    if not rec["diagnoses"]:
        return []
    dx = rec["diagnoses"][:4]
    meds = rec["medications"][:3]
    vitals = _vitals(rec)
    visit = rng.choice(["a follow-up", "an annual", "a same-day", "a telehealth"])
    parts = [
        f"{_age_text(rec['age']).capitalize()} {rec['gender']} seen for {visit} visit.",
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
    return [phrased("extraction", group, rng, _dumps(target), {"input": " ".join(parts)})]


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


def validation(rec: dict, group: str, rng: random.Random) -> list[Example]:
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
    return [phrased("validation", group, rng, _dumps({"valid": not planted, "errors": planted}), {"input": _dumps(r)})]


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


def fhir_conversion(rec: dict, group: str, rng: random.Random) -> list[Example]:
    if not rec["diagnoses"]:
        return []
    r = {k: rec[k] for k in ("patient_id", "age", "gender")}
    r["diagnoses"] = rec["diagnoses"][:2]
    bundle = fhir_resources(r)
    Bundle.model_validate(bundle)  # the label must be valid FHIR R4
    return [phrased("fhir_conversion", group, rng, _dumps(bundle), {"input": _dumps(r)})]


# ------------------------------------------------------------------ code table

REFERENCE_PREFIX = "reference:"  # groups that are reference data, not patients: training split only


def codebook(rng: random.Random) -> list[Example]:
    """The catalog's code table as coding and lookup examples.

    A coder learns the codebook, not only the codes that happened to occur in the training patients:
    without it a test patient's rarer code is one the model never saw. The table is reference data,
    so it goes to train only (split keeps `reference:` groups there) and test stays patient-derived.
    """
    out = []
    for c in sorted(cat.BY_CODE):
        desc = icd10.description(c)
        low = desc[0].lower() + desc[1:]
        # ICD-10-CM puts nonessential modifiers in parentheses: "essential (primary) hypertension" is also
        # written "essential hypertension", and a coder is asked both ways.
        bare = re.sub(r"\s*\([^)]*\)", "", low)
        names = list(dict.fromkeys([low, bare] + ([COMMON_NAMES[c]] if c in COMMON_NAMES else [])))
        for name in names:
            # Asked without a patient: the phrasings that carry a note need age and sex.
            instr, _ = rng.choice([p for p in phrasings.CODING.seen if not p[1]])
            out.append(
                example(
                    "icd10_coding",
                    f"{REFERENCE_PREFIX}icd10",
                    instr.format(desc=name, name=name),
                    f"The ICD-10-CM code for {low} is {c}.",
                )
            )
        out.append(
            phrased(
                "icd10_lookup", f"{REFERENCE_PREFIX}icd10", rng, f"{c} is the ICD-10-CM code for {desc}.", {"code": c}
            )
        )
    return out


@dataclass(frozen=True)
class TaskSpec:
    """Everything about one task but its scorer, which eval/metrics.py registers under the same name (and
    refuses to import without)."""

    name: str
    metric: str  # the primary metric: the one a "better" verdict is about
    max_new_tokens: int  # the answer's generation budget at eval
    builder: Callable[[dict, str, random.Random], list[Example]] | None  # from one record; None: reference or DB
    schema: str | None = None  # the JSON Schema file in resources/ an answer must satisfy
    json: bool = False  # the answer is JSON (the quality gate parses it)


# The registry: prepare, eval, the quickstart and the docs' task table read it, in this order.
SPECS = {
    s.name: s
    for s in (
        TaskSpec("record_generation", "json_valid", 512, record_generation, "patient_record.schema.json", json=True),
        TaskSpec("icd10_coding", "exact_match", 40, icd10_coding),
        TaskSpec("icd10_lookup", "description_match", 64, icd10_lookup),
        TaskSpec("text_to_sql", "execution_accuracy", 96, None),
        TaskSpec("extraction", "f1", 320, extraction, json=True),
        TaskSpec("validation", "f1", 160, validation, json=True),
        TaskSpec("fhir_conversion", "field_f1", 512, fhir_conversion, "fhir_bundle.schema.json", json=True),
        TaskSpec("knowledge", "token_f1", 96, None),
    )
}
# A task name no spec has (a user's own examples, "custom" by default) is scored as free text.
CUSTOM = TaskSpec("custom", "token_f1", 128, None)
TASKS = tuple(SPECS)
JSON_TASKS = tuple(n for n, s in SPECS.items() if s.json)
PATIENT_TASKS = {n: s.builder for n, s in SPECS.items() if s.builder is not None}


def spec_of(task: str) -> TaskSpec:
    return SPECS.get(task, CUSTOM)


def check_specs() -> None:
    """Each task has all its parts: phrasings, its schema file, a budget; a missing one fails at import, by name."""
    for name, s in SPECS.items():
        if not any(k == name or k.startswith(name + ".") for k in phrasings.TASKS):
            raise RuntimeError(f"task {name}: no phrasings in data/phrasings.py TASKS")
        if s.schema and not resources.files("clinitune.resources").joinpath(s.schema).is_file():
            raise RuntimeError(f"task {name}: schema file resources/{s.schema} is missing")
        if not s.metric or s.max_new_tokens <= 0:
            raise RuntimeError(f"task {name}: needs a primary metric and a positive max_new_tokens")


check_specs()


# ------------------------------------------------------------------ knowledge


def knowledge_items() -> list[dict]:
    text = resources.files("clinitune.resources").joinpath("knowledge.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def knowledge(rng: random.Random) -> list[Example]:
    """Each fact's own question teaches (train only); its paraphrases are split like patients.

    The knowledge file is the user's reference corpus, as the code table is: what fine-tuning should
    show is that the model recalls a supplied fact when asked in other words. A fact held out whole
    would measure only what the base model already knew.
    """
    out = []
    for i, item in enumerate(knowledge_items()):
        out.append(phrased("knowledge", f"{REFERENCE_PREFIX}knowledge", rng, item["answer"], {"q": item["question"]}))
        out += [
            phrased("knowledge", f"knowledge:{i}", rng, item["answer"], {"q": q}) for q in item.get("paraphrases", ())
        ]
    return out


# ------------------------------------------------------------------ text to SQL


class SqlStats:
    """Aggregates gathered while records stream past, to state what each SQL answer must be."""

    def __init__(self):
        self.code_patients: dict[str, set] = defaultdict(set)
        self.code_sex: dict[tuple[str, str], set] = defaultdict(set)
        self.allergy_patients: dict[str, set] = defaultdict(set)
        self.drug_patients: dict[str, set] = defaultdict(set)
        self.code_drugs: dict[str, set] = defaultdict(set)
        self.encounter_types: Counter = Counter()
        self.flag_high: Counter = Counter()

    def add(self, p) -> None:
        conds = {c.id: c.code for c in p.conditions}
        for c in p.conditions:
            self.code_patients[c.code].add(p.id)
            self.code_sex[(c.code, p.sex)].add(p.id)
        for a in p.allergies:
            self.allergy_patients[a.substance].add(p.id)
        for m in p.medications:
            self.drug_patients[m.drug].add(p.id)
            if m.condition_id in conds:
                self.code_drugs[conds[m.condition_id]].add(m.drug)
        for e in p.encounters:
            self.encounter_types[e.type] += 1
        for o in p.observations:
            if o.flag == "H":
                self.flag_high[o.code] += 1


def _lit(value: str) -> str:
    """A value as an SQL string literal: the answer is SQL text, so a quote in the data is doubled, not pasted."""
    return "'" + str(value).replace("'", "''") + "'"


def _sql_candidates(stats: SqlStats):
    """(template key, question kind, its slots, sql, expected rows) for the whole database."""
    for code in sorted(stats.code_patients):
        name = condition_name(code)
        c = _lit(code)
        yield (
            f"count:{code}",
            "count",
            {"name": name, "code": code},
            f"SELECT COUNT(DISTINCT patient_id) FROM conditions WHERE code = {c};",
            [(len(stats.code_patients[code]),)],
        )
        for sex, word in (("F", "female"), ("M", "male")):
            n = len(stats.code_sex.get((code, sex), ()))
            if n:
                yield (
                    f"sex:{code}:{sex}",
                    "sex",
                    {"word": word, "name": name, "code": code},
                    f"SELECT COUNT(DISTINCT c.patient_id) FROM conditions c JOIN patients p ON p.id = c.patient_id "
                    f"WHERE c.code = {c} AND p.sex = '{sex}';",
                    [(n,)],
                )
        if stats.code_drugs.get(code):
            yield (
                f"drugs:{code}",
                "drugs",
                {"name": name, "code": code},
                f"SELECT DISTINCT m.drug FROM medications m JOIN conditions c ON c.id = m.condition_id WHERE c.code "
                f"= {c} ORDER BY m.drug;",
                [(d,) for d in sorted(stats.code_drugs[code])],
            )
    for substance in sorted(stats.allergy_patients):
        yield (
            f"allergy:{substance}",
            "allergy",
            {"substance": substance},
            f"SELECT COUNT(DISTINCT patient_id) FROM allergies WHERE substance = {_lit(substance)};",
            [(len(stats.allergy_patients[substance]),)],
        )
    for drug in sorted(stats.drug_patients):
        yield (
            f"drug:{drug}",
            "drug",
            {"drug": drug},
            f"SELECT COUNT(DISTINCT patient_id) FROM medications WHERE drug = {_lit(drug)};",
            [(len(stats.drug_patients[drug]),)],
        )
    for etype in sorted(stats.encounter_types):
        yield (
            f"enc:{etype}",
            "enc",
            {"etype": etype},
            f"SELECT COUNT(*) FROM encounters WHERE type = {_lit(etype)};",
            [(stats.encounter_types[etype],)],
        )
    for loinc in sorted(stats.flag_high):
        name = cat.MEASURES[loinc].name if loinc in cat.MEASURES else loinc
        yield (
            f"high:{loinc}",
            "high",
            {"name": name, "loinc": loinc},
            f"SELECT COUNT(*) FROM observations WHERE code = {_lit(loinc)} AND flag = 'H';",
            [(stats.flag_high[loinc],)],
        )


def text_to_sql(stats: SqlStats, db_url: str, rng: random.Random, limit: int | None = None) -> list[Example]:
    """Questions over the clinical DB with SQL answers, each run read-only and checked against `stats`."""
    cands = list(_sql_candidates(stats))
    if limit is not None and len(cands) > limit:
        cands = rng.sample(cands, limit)
    out = []
    with connect(db_url, readonly=True) as conn:
        for key, kind, slots, sql, expected in cands:
            rows = [tuple(r) for r in conn.execute(text(sql))]
            if rows != expected:
                raise ClinituneError(
                    f"text_to_sql verification failed for {key}: the SQL returned {rows[:3]}, expected {expected[:3]}"
                )
            out.append(phrased("text_to_sql", f"sql:{key}", rng, sql, slots, key=f"text_to_sql.{kind}"))
    return out
