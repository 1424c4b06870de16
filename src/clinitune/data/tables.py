"""Any table to instruction pairs: what a clinic's own table (dental visits, appointments, claims) teaches when
none of its columns is a clinical field clinitune maps.

Each row gives two examples over its columns: a question about one column answered from the row
(`table_qa`), and the row as JSON with typed values (`table_json`). Values are typed (whole numbers,
decimals, yes/no, dates). Identifiers never reach a text: id-like columns and direct identifiers are left
out and counted, dates keep only their year and ages over 89 read "90+" (HIPAA Safe Harbor), and prepare
still runs the PHI screen on every text, free-text columns above all. The rows of one patient share a group,
so they never straddle train and test.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from .example import Example, group_of, instruction
from .records.mapping import PATIENT_FIELDS, Notes, RecordError, parse_date

TASKS = ("table_qa", "table_json")
# Direct identifiers by column name: ids and keys, names of people, contact details, account numbers.
IDENTIFIER = re.compile(
    r"(^|_)(id|uuid|guid|mrn|ssn|npi|key|number_id)$|^(first|last|middle|full|given|family|patient|provider|"
    r"doctor|physician|nurse|contact|guardian)?_?name$|phone|fax|e_?mail|address|street|city|zip|postal|ssn|mrn|"
    r"account|licen[cs]e|plate|url|^ip|serial|insurance_(member|policy)",
    re.I,
)
BOOLS = {"yes": True, "no": False, "true": True, "false": False, "y": True, "n": False}
QUESTIONS = (
    "What is the {what} in this {noun} record?",
    "From the {noun} below, give the {what}.",
    "{What}? (from the {noun} record below)",
    "Read this {noun} record and state the {what}.",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int, float, bool, date, text

    @property
    def key(self) -> str:
        """The JSON key: a date column keeps only its year, and says so."""
        if self.kind != "date":
            return self.name
        return re.sub(r"date$", "year", self.name) if self.name.endswith("date") else f"{self.name}_year"

    @property
    def words(self) -> str:
        return self.key.replace("_", " ").strip()


def _is_date(text: str) -> bool:
    try:
        return parse_date(text, "") is not None
    except RecordError:
        return False


def _kind(values: list[str]) -> str:
    checks = (
        ("bool", lambda v: v.lower() in BOOLS),
        ("int", lambda v: re.fullmatch(r"[-+]?\d+", v) is not None),
        ("float", lambda v: re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", v) is not None),
        ("date", _is_date),
    )
    return next((kind for kind, ok in checks if values and all(ok(v) for v in values)), "text")


def _typed(col: Column, text: str):
    if col.kind == "bool":
        return BOOLS[text.lower()]
    if col.kind == "int":
        value = int(text)
        return "90+" if re.search(r"(^|_)age", col.name, re.I) and value > 89 else value
    if col.kind == "float":
        return float(text)
    if col.kind == "date":
        return parse_date(text, col.name).year
    return text.strip()


def _show(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _cell(row: dict, name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def id_like(name: str, values: list[str], kind: str = "text") -> bool:
    """A direct identifier by name, or a text column of codes that are each unique to their row (V000123)."""
    if IDENTIFIER.search(name):
        return True
    return (
        kind == "text"
        and len(values) >= 5
        and len(set(values)) == len(values)
        and all(re.fullmatch(r"\S*\d\S*", v) for v in values)
    )


def patient_column(header: list[str], group_by: str | None) -> str | None:
    if group_by:
        return group_by
    # A bare "id" is the row's own id in most tables, not its patient's.
    return next((c for c in PATIENT_FIELDS["patient_id"] if c in header and c != "id" and "." not in c), None)


def table_examples(
    rows: list[dict], header: list[str], noun: str, group_by: str | None, notes: Notes, seed: int = 0
) -> tuple[list[tuple[int, list[Example]]], list[int]]:
    """([(row index, its examples)], [indexes of rows with nothing but identifiers]) for a table's rows."""
    by_patient = patient_column(header, group_by)
    columns = []
    for name in header:
        values = [_cell(r, name) for r in rows]
        values = [v for v in values if v]
        kind = _kind(values)
        if name == by_patient or id_like(name, values, kind):
            notes.add(
                f"{name}: the patient column, a hashed group only"
                if name == by_patient
                else f"left out as an identifier: {name}"
            )
            continue
        columns.append(Column(name, kind))
    built, empty = [], []
    for i, row in enumerate(rows):
        record = {}
        for col in columns:
            text = _cell(row, col.name)
            if text:
                record[col.key] = _typed(col, text)
        if not record:
            empty.append(i)
            continue
        pid = _cell(row, by_patient) if by_patient else ""
        group = group_of(pid) if pid else group_of(f"{noun}:{i}:{json.dumps(record, sort_keys=True)}")
        rng = random.Random(f"{seed}:{group}:{i}")
        lines = "\n".join(f"- {k.replace('_', ' ')}: {_show(v)}" for k, v in record.items())
        text = f"{noun.capitalize()} record:\n{lines}"
        key = rng.choice(sorted(record))
        what = key.replace("_", " ")
        question = rng.choice(QUESTIONS).format(what=what, What=what.capitalize(), noun=noun)
        built.append(
            (
                i,
                [
                    # A sentence, not the bare value: the quality gate's minimum length holds for every task.
                    instruction("table_qa", group, question, f"The {what} is {_show(record[key])}.", text),
                    instruction(
                        "table_json",
                        group,
                        f"Give this {noun} record as JSON with typed values.",
                        json.dumps(record, ensure_ascii=False),
                        text,
                    ),
                ],
            )
        )
    return built, empty


def noun_of(name: str) -> str:
    """A file's stem as the noun its rows are asked about: dental_visits -> "dental visit"."""
    words = re.sub(r"[_\-.]+", " ", name).strip().lower()
    return words[:-1] if words.endswith("s") and not words.endswith("ss") else words or "table"
