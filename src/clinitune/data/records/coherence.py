"""Clinical coherence rules, applied to one record or a whole database.

Synth must pass them all; evaluation reuses them to judge whether a generated record is
medically plausible. A rule names what is wrong and where (the fact's id or field).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from . import catalog as cat
from . import icd10
from .patient import Patient


@dataclass(frozen=True)
class Violation:
    patient_id: int | str
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"patient {self.patient_id} {self.where}: [{self.rule}] {self.detail}"


def _code_age(p: Patient, c) -> int | None:
    when = c.onset_date
    if when is None and c.encounter_id is not None:
        when = next((e.date for e in p.encounters if e.id == c.encounter_id), None)
    return p.age_at(when) if when and p.birth_date else p.current_age


def check_record(p: Patient) -> list[Violation]:
    out: list[Violation] = []

    def bad(rule, where, detail):
        out.append(Violation(p.id, rule, where, detail))

    if p.sex not in ("M", "F", "O", "U"):
        bad("demographics", "sex", f"sex must be M, F, O (other) or U (unknown), got {p.sex!r}")
    age_now = p.current_age
    if age_now is not None and not 0 <= age_now <= 120:
        bad("demographics", "age", f"age {age_now} is outside 0-120")
    encounters = {e.id: e for e in p.encounters}
    conditions = {c.id: c for c in p.conditions}
    codes = [c.code for c in p.conditions if c.system == "ICD-10-CM"]

    for e in p.encounters:
        if p.birth_date and e.date < p.birth_date:
            bad("date_order", f"encounter {e.id}", f"encounter {e.date} is before birth {p.birth_date}")

    for c in p.conditions:
        where = f"condition {c.id} ({c.code})"
        if c.system != "ICD-10-CM":
            continue
        if not icd10.is_valid(c.code):
            bad("invalid_code", where, f"{c.code} is not an ICD-10-CM code")
            continue
        age = _code_age(p, c)
        if p.sex == "M" and c.code.startswith(cat.FEMALE_ONLY):
            bad("sex_mismatch", where, f"{c.code} applies to females only")
        if p.sex == "F" and c.code.startswith(cat.MALE_ONLY):
            bad("sex_mismatch", where, f"{c.code} applies to males only")
        entry = cat.BY_CODE.get(c.code)
        if entry and entry.sex and p.sex in ("M", "F") and entry.sex != p.sex:
            bad("sex_mismatch", where, f"{c.code} applies to {'females' if entry.sex == 'F' else 'males'} only")
        if age is not None:
            if c.code.startswith(cat.PREGNANCY) and not cat.PREGNANCY_AGES[0] <= age <= cat.PREGNANCY_AGES[1]:
                bad(
                    "age_mismatch",
                    where,
                    f"pregnancy code at age {age}; expected {cat.PREGNANCY_AGES[0]}-{cat.PREGNANCY_AGES[1]}",
                )
            elif entry and not entry.min_age <= age <= entry.max_age:
                bad("age_mismatch", where, f"{c.code} at age {age}; expected {entry.min_age}-{entry.max_age}")
        if c.onset_date and p.birth_date and c.onset_date < p.birth_date:
            bad("date_order", where, f"onset {c.onset_date} is before birth {p.birth_date}")
        enc = encounters.get(c.encounter_id)
        if c.onset_date and enc and c.onset_date > enc.date:
            bad("date_order", where, f"onset {c.onset_date} is after the encounter {enc.date} that recorded it")
    return out + medication_violations(p, conditions, codes) + observation_violations(p, codes)


def medication_violations(p: Patient, conditions: dict, codes: list[str]) -> list[Violation]:
    out: list[Violation] = []

    def bad(rule, where, detail):
        out.append(Violation(p.id, rule, where, detail))

    allergic_to = {a.substance for a in p.allergies}
    for m in p.medications:
        where = f"medication {m.id} ({m.drug})"
        if m.condition_id is not None:
            cond = conditions.get(m.condition_id)
            if cond is None:
                bad("medication_indication", where, f"treats condition {m.condition_id}, which is not in the record")
            elif cond.code in cat.MEDICATIONS and m.drug not in {x[0] for x in cat.MEDICATIONS[cond.code]}:
                bad("medication_indication", where, f"{m.drug} does not treat {cond.code}")
            elif cond.onset_date and m.start_date and m.start_date < cond.onset_date:
                bad("date_order", where, f"started {m.start_date}, before the onset {cond.onset_date} of {cond.code}")
        else:
            indications = cat.DRUG_INDICATIONS.get(m.drug.lower(), set())
            if not indications & set(codes):
                bad("medication_indication", where, f"{m.drug} treats none of the recorded conditions")
        for substance in allergic_to:
            if m.drug in cat.ALLERGY_FORBIDS.get(substance, set()):
                bad("allergy_conflict", where, f"{m.drug} is prescribed despite an allergy to {substance}")
    return out


def observation_violations(p: Patient, codes: list[str]) -> list[Violation]:
    out: list[Violation] = []

    def bad(rule, where, detail):
        out.append(Violation(p.id, rule, where, detail))

    age_now = p.current_age
    for o in p.observations:
        where = f"observation {o.id} ({o.name})"
        m = cat.MEASURES.get(o.code) or cat.MEASURE_BY_NAME.get(o.name.lower())
        if m and not m.hard_low <= o.value <= m.hard_high:
            bad("lab_range", where, f"{o.value} {o.unit} is outside physiological limits {m.hard_low}-{m.hard_high}")
        if o.flag is not None and o.ref_low is not None and o.ref_high is not None:
            expected = "H" if o.value > o.ref_high else "L" if o.value < o.ref_low else "N"
            if o.flag != expected:
                bad(
                    "lab_flag",
                    where,
                    f"flag {o.flag} disagrees with {o.value} against {o.ref_low}-{o.ref_high} (expected {expected})",
                )
        if p.birth_date and o.date and o.date < p.birth_date:
            bad("date_order", where, f"measured {o.date}, before birth")
        code = m.code if m else o.code
        if code == "4548-4" and o.value >= 6.5 and not cat.has_prefix(codes, cat.DIABETES):
            bad("lab_condition", where, f"A1c {o.value} % is in the diabetic range but no diabetes is recorded")
        age_then = p.age_at(o.date) if o.date and p.birth_date else age_now
        if code == "39156-5" and age_then is not None and age_then >= 18:
            obese = cat.has_prefix(codes, cat.OBESITY)
            if obese and o.value < 30:
                bad("lab_condition", where, f"obesity is recorded but BMI is {o.value}")
            if not obese and o.value >= 30:
                bad("lab_condition", where, f"BMI {o.value} but no obesity is recorded")
        if code == "33914-3":
            ckd = next((c for c in codes if c.startswith("N18")), None)
            rng = cat.CKD_EGFR.get(ckd[:5]) if ckd else None
            if rng and not rng[0] <= o.value <= rng[1]:
                bad("lab_condition", where, f"eGFR {o.value} does not fit {ckd} (expected {rng[0]}-{rng[1]})")
            if not ckd and o.value < 60:
                bad("lab_condition", where, f"eGFR {o.value} < 60 but no chronic kidney disease is recorded")
    return out


def check_records(records) -> tuple[int, list[Violation]]:
    n, found = 0, []
    for p in records:
        n += 1
        found.extend(check_record(p))
    return n, found


def summarize(violations: list[Violation]) -> Counter:
    return Counter(v.rule for v in violations)
