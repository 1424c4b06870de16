"""The clinical database schema (SQLAlchemy Core), identical on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData()


def _fk(table: str) -> Column:
    return Column(f"{table[:-1]}_id", Integer, ForeignKey(f"{table}.id"), index=True)


patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("mrn", String(16), unique=True, nullable=False),
    Column("first_name", String(64), nullable=False),
    Column("last_name", String(64), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("address", String(128)),
    Column("city", String(64)),
    Column("state", String(2)),
    Column("zip", String(10)),
    Column("phone", String(32)),
    Column("email", String(128)),
    Column("ssn", String(11)),
    Column("insurance_member_id", String(32)),
)
encounters = Table(
    "encounters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    _fk("patients"),
    Column("date", Date, nullable=False),
    Column("type", String(32), nullable=False),
)
conditions = Table(
    "conditions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    _fk("patients"),
    Column("encounter_id", Integer, ForeignKey("encounters.id")),
    Column("code", String(16), nullable=False),
    Column("description", String(256), nullable=False),
    Column("onset_date", Date),
    Column("status", String(16), nullable=False),
    Column("system", String(32), nullable=False),
)
medications = Table(
    "medications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    _fk("patients"),
    Column("encounter_id", Integer, ForeignKey("encounters.id")),
    Column("condition_id", Integer, ForeignKey("conditions.id")),
    Column("drug", String(128), nullable=False),
    Column("dose", String(64), nullable=False),
    Column("frequency", String(64), nullable=False),
    Column("route", String(32), nullable=False),
    Column("start_date", Date),
)
allergies = Table(
    "allergies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    _fk("patients"),
    Column("substance", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("reaction", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
)
observations = Table(
    "observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    _fk("patients"),
    Column("encounter_id", Integer, ForeignKey("encounters.id")),
    Column("date", Date),
    Column("code", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("ref_low", Float),
    Column("ref_high", Float),
    Column("flag", String(1)),
    Column("category", String(16), nullable=False),
)
FACT_TABLES = {
    "encounters": encounters,
    "conditions": conditions,
    "medications": medications,
    "allergies": allergies,
    "observations": observations,
}
