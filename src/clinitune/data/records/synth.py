"""`clinitune synth`: a clinically coherent synthetic EHR, written through SQLAlchemy.

Every patient has its own RNG seeded from (seed, patient index), so the facts do not depend on
the backend, the batch size, or how many patients come before; ids are assigned in generation
order and inserted explicitly, so SQLite and PostgreSQL hold identical rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from dataclasses import asdict

from sqlalchemy import insert
from tqdm import tqdm

from . import catalog as cat
from . import icd10, names, schema
from .db import engine_for
from .patient import REFERENCE_DATE, Allergy, ConditionFact, Encounter, Medication, Observation, Patient

log = logging.getLogger(__name__)

AGE_WEIGHTS = (0.22, 0.30, 0.31, 0.17)
AGE_SPANS = ((0, 17), (18, 39), (40, 64), (65, 95))
FIRST_ENCOUNTER = dt.date(2021, 1, 4)
LAST_ENCOUNTER = dt.date(2025, 12, 19)
ENCOUNTER_TYPES = (("outpatient", 0.55), ("urgent care", 0.2), ("emergency", 0.15), ("inpatient", 0.1))
BATCH = 1000


class _Ids:
    """Sequential ids per table, in generation order."""

    def __init__(self):
        self.next = {t: 1 for t in schema.FACT_TABLES}

    def __call__(self, table: str) -> int:
        i = self.next[table]
        self.next[table] = i + 1
        return i


def _birth_date(rng: random.Random, age: int) -> dt.date:
    # Born between Jan 2 and Dec 31 of (reference year - age - 1): exactly `age` on the reference date.
    return dt.date(REFERENCE_DATE.year - age - 1, 1, 2) + dt.timedelta(days=rng.randrange(364))


def _years_after(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # Feb 29
        return d.replace(year=d.year + years, day=28)


def _rand_date(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1)) if hi > lo else lo


def _identity(rng: random.Random, pid: int, sex: str) -> dict:
    first = rng.choice(names.FEMALE_FIRST if sex == "F" else names.MALE_FIRST)
    last = rng.choice(names.LAST)
    city, state, zip3 = rng.choice(names.CITIES)
    area = rng.randrange(201, 990)
    phone_fmt = rng.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}"])
    return {
        "mrn": f"MRN{pid:07d}{rng.randrange(10)}",
        "first_name": first,
        "last_name": last,
        "address": f"{rng.randrange(1, 9999)} {rng.choice(names.STREETS)} {rng.choice(names.STREET_SUFFIXES)}",
        "city": city,
        "state": state,
        "zip": f"{zip3}{rng.randrange(100):02d}",
        "phone": phone_fmt.format(a=area, b=rng.randrange(200, 999), c=f"{rng.randrange(10000):04d}"),
        "email": f"{first.lower()}.{last.lower()}{rng.randrange(100)}@{rng.choice(names.EMAIL_DOMAINS)}",
        # 9xx area numbers are never issued: realistic shape, no real person's SSN.
        "ssn": f"9{rng.randrange(10, 99)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
        "insurance_member_id": f"{rng.choice(['XGH', 'BCB', 'UHC', 'AET', 'CGN'])}{rng.randrange(10**8, 10**9)}",
    }


def _draw_conditions(rng: random.Random, sex: str, age: int) -> list[cat.Condition]:
    chosen: list[cat.Condition] = []
    codes: list[str] = []
    groups: set[str] = set()
    band = cat.band_index(age)
    for c in cat.CONDITIONS:
        if (c.sex and c.sex != sex) or not c.min_age <= age or (c.group and c.group in groups):
            continue
        if c.requires and not cat.has_prefix(codes, c.requires):
            continue
        p = c.prevalence[band]
        if not c.sex:
            p *= 2 * c.sex_ratio / (1 + c.sex_ratio) if sex == "F" else 2 / (1 + c.sex_ratio)
        for prefix, mult in c.boosts.items():
            if cat.has_prefix(codes, (prefix,)):
                p *= mult
        if rng.random() < min(p, 0.95):
            chosen.append(c)
            codes.append(c.code)
            if c.group:
                groups.add(c.group)
    return chosen


def _flag(value: float, low: float | None, high: float | None) -> str | None:
    if low is None or high is None:
        return None
    return "H" if value > high else "L" if value < low else "N"


def _measure(ids, code, value, enc, ref=None) -> Observation:
    m = cat.MEASURES[code]
    low, high = ref if ref is not None else (m.low, m.high)
    return Observation(
        ids("observations"),
        code,
        m.name,
        value,
        m.unit,
        low,
        high,
        _flag(value, low, high),
        enc.date,
        enc.id,
        m.category,
    )


def _observations(
    rng: random.Random, ids, p: Patient, enc: Encounter, codes: list[str], first: bool
) -> list[Observation]:
    u = rng.uniform
    age = p.age_at(enc.date)
    has = lambda *prefixes: cat.has_prefix(codes, prefixes)  # noqa: E731
    obs = []
    adult = age >= 18
    if age >= 3:
        htn = has("I10", "I11", "O13")
        obs.append(_measure(ids, "8480-6", round(u(135, 168) if htn else u(96, 126)), enc))
        obs.append(_measure(ids, "8462-4", round(u(82, 98) if htn else u(62, 79)), enc))
    obs.append(_measure(ids, "8867-4", round(u(62, 96)), enc))
    obs.append(_measure(ids, "8310-5", round(u(36.3, 37.1), 1), enc))
    obs.append(_measure(ids, "59408-5", round(u(89, 94) if has("J44") else u(96, 100)), enc))
    if age >= 2:
        if adult:
            height = u(165, 190) if p.sex == "M" else u(152, 176)
            bmi = (
                u(40.5, 48)
                if has("E66.01")
                else u(30.5, 39.5)
                if has("E66.9")
                else u(25.3, 29.6)
                if has("E66.3")
                else u(19.5, 24.6)
            )
        else:
            height = min(50 + 6.5 * age, 175) * u(0.95, 1.05)
            bmi = u(14.5, 21)
        height = round(height, 1)
        weight = round(bmi * (height / 100) ** 2, 1)
        obs.append(_measure(ids, "8302-2", height, enc))
        obs.append(_measure(ids, "29463-7", weight, enc))
        bmi_value = round(weight / (height / 100) ** 2, 1)
        obs.append(_measure(ids, "39156-5", bmi_value, enc, None if adult else (None, None)))
    diabetic, prediabetic = has(*cat.DIABETES), has("R73.03")
    if (first and adult) or (diabetic and age >= 1):
        obs.append(
            _measure(
                ids, "4548-4", round(u(6.6, 10.5) if diabetic else u(5.7, 6.4) if prediabetic else u(4.6, 5.5), 1), enc
            )
        )
    if first and adult:
        obs.append(
            _measure(ids, "2345-7", round(u(130, 240) if diabetic else u(100, 125) if prediabetic else u(74, 98)), enc)
        )
        if age >= 20:
            high_chol, high_tg = has("E78.5", "E78.0"), has("E78.1")
            obs.append(
                _measure(
                    ids, "2093-3", round(u(215, 290) if high_chol else u(180, 240) if high_tg else u(140, 198)), enc
                )
            )
            obs.append(_measure(ids, "13457-7", round(u(135, 200) if high_chol else u(60, 128)), enc))
            obs.append(_measure(ids, "2085-9", round(u(38, 75)), enc))
            obs.append(_measure(ids, "2571-8", round(u(200, 480) if high_tg else u(60, 148)), enc))
        ckd = next((c for c in codes if c.startswith("N18")), None)
        lo, hi = cat.CKD_EGFR.get(ckd[:5], (5, 14.9)) if ckd else (62, 115)
        egfr = rng.randint(math.ceil(max(lo, 5)), math.floor(min(hi, 118)))
        obs.append(_measure(ids, "33914-3", egfr, enc))
        creat = u(4.0, 9.0) if egfr < 15 else u(2.1, 3.5) if egfr < 30 else u(1.3, 2.0) if egfr < 60 else u(0.6, 1.2)
        obs.append(_measure(ids, "2160-0", round(creat, 2), enc))
        obs.append(
            _measure(
                ids, "3016-3", round(u(4.6, 12) if has("E03") else u(0.01, 0.3) if has("E05") else u(0.5, 3.9), 2), enc
            )
        )
        obs.append(_measure(ids, "2951-2", round(u(136, 144)), enc))
        obs.append(_measure(ids, "2823-3", round(u(5.2, 5.8) if egfr < 30 else u(3.6, 5.0), 1), enc))
    if first and age >= 1:
        anemic = has("D50", "D64", "O99.01")
        ref = (12.0, 15.5) if p.sex == "F" else (13.5, 17.5)
        hb = (
            (u(8.5, 11.5) if p.sex == "F" else u(9.0, 12.5))
            if anemic
            else (u(12.2, 15.2) if p.sex == "F" else u(13.6, 17.0))
        )
        obs.append(_measure(ids, "718-7", round(hb, 1), enc, ref))
    return obs


def generate_patient(seed: int, pid: int, ids: _Ids) -> Patient:
    rng = random.Random(f"clinitune:{seed}:{pid}")
    sex = rng.choice("FM")
    band = rng.choices(range(4), AGE_WEIGHTS)[0]
    age = rng.randint(*AGE_SPANS[band])
    birth = _birth_date(rng, age)
    p = Patient(id=pid, sex=sex, birth_date=birth, **_identity(rng, pid, sex))

    start = max(FIRST_ENCOUNTER, birth + dt.timedelta(days=1))
    n_enc = rng.choices((1, 2, 3, 4), (0.3, 0.35, 0.23, 0.12))[0]
    dates = sorted({_rand_date(rng, start, LAST_ENCOUNTER) for _ in range(n_enc)})
    types = ["wellness"] + rng.choices(
        [t for t, _ in ENCOUNTER_TYPES], [w for _, w in ENCOUNTER_TYPES], k=len(dates) - 1
    )
    p.encounters = [Encounter(ids("encounters"), d, t) for d, t in zip(dates, types)]

    for substance, category, reactions, _ in rng.sample(cat.ALLERGIES, rng.choices((0, 1, 2), (0.65, 0.28, 0.07))[0]):
        reaction = rng.choice(reactions)
        severity = "severe" if reaction == "anaphylaxis" else rng.choice(("mild", "moderate"))
        p.allergies.append(Allergy(ids("allergies"), substance, category, reaction, severity))
    forbidden = set().union(*(cat.ALLERGY_FORBIDS[a.substance] for a in p.allergies)) if p.allergies else set()

    used_drugs: set[str] = set()
    enc_of_code: dict[str, Encounter] = {}
    for c in _draw_conditions(rng, sex, age):
        eligible = [e for e in p.encounters if c.min_age <= p.age_at(e.date) <= c.max_age]
        if c.requires:
            eligible = [
                e for e in eligible if any(e is enc_of_code.get(k) for k in enc_of_code if k.startswith(c.requires))
            ]
        if not eligible:
            continue
        enc = eligible[0] if c.chronic else rng.choice(eligible)
        earliest = max(_years_after(birth, c.min_age), birth)
        if c.code.startswith(cat.PREGNANCY) or c.requires:
            onset = max(earliest, enc.date - dt.timedelta(days=rng.randrange(20, 240)))
        elif c.chronic:
            onset = _rand_date(rng, max(earliest, enc.date - dt.timedelta(days=8 * 365)), enc.date)
        else:
            onset = max(earliest, enc.date - dt.timedelta(days=rng.randrange(0, 10)))
        fact = ConditionFact(
            ids("conditions"), c.code, icd10.description(c.code), onset, enc.id, "active" if c.chronic else "resolved"
        )
        p.conditions.append(fact)
        enc_of_code[c.code] = enc
        options = [m for m in cat.MEDICATIONS.get(c.code, []) if m[0] not in forbidden and m[0] not in used_drugs]
        if options and rng.random() < (0.85 if c.chronic else 0.6):
            for drug, dose, freq, route in rng.sample(options, 2 if len(options) > 1 and rng.random() < 0.25 else 1):
                used_drugs.add(drug)
                p.medications.append(Medication(ids("medications"), drug, dose, freq, route, fact.id, enc.id, enc.date))

    codes = [c.code for c in p.conditions]
    for i, enc in enumerate(p.encounters):
        p.observations.extend(_observations(rng, ids, p, enc, codes, first=i == 0))
    return p


def generate(seed: int, n: int):
    """Yield `n` patients, deterministic in (seed, n)."""
    ids = _Ids()
    for pid in range(1, n + 1):
        yield generate_patient(seed, pid, ids)


def patient_rows(p: Patient) -> dict[str, list[dict]]:
    """The rows of one patient, keyed by table name."""
    d = asdict(p)
    rows = {"patients": [{k: d[k] for k in schema.patients.c.keys()}]}
    for table in schema.FACT_TABLES:
        rows[table] = [{**r, "patient_id": p.id} for r in d[table]]
    return rows


def write_database(url: str, n: int, seed: int, progress: bool = True) -> dict[str, int]:
    """Create the schema at `url` (replacing clinitune's tables) and write `n` patients in batches."""
    engine = engine_for(url)
    schema.metadata.drop_all(engine)
    schema.metadata.create_all(engine)
    counts = {t: 0 for t in ("patients", *schema.FACT_TABLES)}
    tables = {"patients": schema.patients, **schema.FACT_TABLES}
    batch: dict[str, list[dict]] = {t: [] for t in tables}

    def flush():
        with engine.begin() as conn:
            for t, rows in batch.items():  # dict order: patients before the facts that reference them
                if rows:
                    conn.execute(insert(tables[t]), rows)
                    counts[t] += len(rows)
                    rows.clear()

    try:
        for i, p in enumerate(tqdm(generate(seed, n), total=n, desc="synth", unit="patient", disable=not progress), 1):
            for t, rows in patient_rows(p).items():
                batch[t].extend(rows)
            if i % BATCH == 0:
                flush()
        flush()
    finally:
        engine.dispose()
    return counts
