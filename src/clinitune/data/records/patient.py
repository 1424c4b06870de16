"""The one record model every source produces: a patient with nested clinical facts.

Field names match the database columns, so a row and a fact convert by name. Identifiers
(name, address, phone, ...) are present because real EHRs hold them; de-identification removes
them before any text is rendered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields

REFERENCE_DATE = dt.date(2026, 1, 1)  # "today" for ages: fixed, so one seed gives one dataset forever


@dataclass
class Encounter:
    id: int
    date: dt.date
    type: str


@dataclass
class ConditionFact:
    id: int
    code: str
    description: str
    onset_date: dt.date | None = None
    encounter_id: int | None = None
    status: str = "active"
    system: str = "ICD-10-CM"


@dataclass
class Medication:
    id: int
    drug: str
    dose: str
    frequency: str
    route: str = "oral"
    condition_id: int | None = None
    encounter_id: int | None = None
    start_date: dt.date | None = None


@dataclass
class Allergy:
    id: int
    substance: str
    category: str
    reaction: str
    severity: str


@dataclass
class Observation:
    id: int
    code: str
    name: str
    value: float
    unit: str
    ref_low: float | None = None
    ref_high: float | None = None
    flag: str | None = None
    date: dt.date | None = None
    encounter_id: int | None = None
    category: str = "laboratory"


@dataclass
class Patient:
    id: int | str
    sex: str  # "M" or "F"
    birth_date: dt.date | None = None
    age: int | None = None  # used when only an age is known (nested JSON, model output)
    mrn: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    phone: str | None = None
    email: str | None = None
    ssn: str | None = None
    insurance_member_id: str | None = None
    encounters: list[Encounter] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    allergies: list[Allergy] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def age_at(self, when: dt.date = REFERENCE_DATE) -> int | None:
        if self.birth_date is None:
            return self.age
        b = self.birth_date
        return when.year - b.year - ((when.month, when.day) < (b.month, b.day))

    @property
    def current_age(self) -> int | None:
        return self.age_at()

    def to_dict(self) -> dict:
        return asdict(self)


NESTED = {
    "encounters": Encounter,
    "conditions": ConditionFact,
    "medications": Medication,
    "allergies": Allergy,
    "observations": Observation,
}
PATIENT_COLUMNS = [f.name for f in fields(Patient) if f.name not in NESTED and f.name != "age"]


def facts(p: Patient) -> dict:
    """The clinical facts of a record, for comparing records across sources and backends."""
    d = p.to_dict()
    d.pop("age", None)
    for key in NESTED:
        d[key] = sorted(d[key], key=lambda r: r["id"])
    return d
