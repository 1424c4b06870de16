"""text_to_sql: questions over the clinical database, answered in SQL that is run to check it, at prepare and at eval.

Seven kinds of question, each with its own slots and phrasings; the scorer runs the model's SQL on a
connection SQLite itself confines to reads (`guard`)."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter, defaultdict

from sqlalchemy import text

from ...errors import ClinituneError
from ..example import Example
from ..phrasings import Phrasings, phrased, plain
from ..records import catalog as cat
from ..records.db import connect
from .common import condition_name
from .spec import TaskSpec

NAME = "text_to_sql"
# What a scored query may do, checked by SQLite itself as it compiles the statement: read tables and call
# functions. Writes, ATTACH (which creates a file even on a read-only connection), PRAGMA and the rest are
# refused before they run.
READ_ONLY_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
MAX_VALUE_BYTES = 1_000_000  # zeroblob(999000000) fails at once instead of filling memory
MAX_HEAP_BYTES = 256 * 2**20

# It asks seven kinds of question, each with its own slots: 28 phrasings in all, 7 held out.
PHRASINGS = {
    "count": Phrasings(
        seen=plain(
            "How many patients have {name} (ICD-10-CM {code})?",
            "Count the patients diagnosed with {name} ({code}).",
            "Number of patients with {code}?",
        ),
        held_out=plain("Write SQL: how many distinct patients carry the diagnosis {name}, code {code}?"),
    ),
    "sex": Phrasings(
        seen=plain(
            "How many {word} patients have {name}?",
            "Count {word} patients with ICD-10-CM {code}.",
            "{code}: how many of the patients are {word}?",
        ),
        held_out=plain("Query for the number of {word} patients diagnosed with {name}."),
    ),
    "drugs": Phrasings(
        seen=plain(
            "List the distinct drugs prescribed for {name}.",
            "Which medications are prescribed to treat {code}?",
            "What drugs do we prescribe for {name}? One row per drug.",
        ),
        held_out=plain("Give me every medication that has been ordered for {code}, no duplicates."),
    ),
    "allergy": Phrasings(
        seen=plain(
            "How many patients are allergic to {substance}?",
            "Count the patients with a recorded {substance} allergy.",
            "Number of patients with a {substance} allergy?",
        ),
        held_out=plain("How many ppl have an allergy to {substance} on file?"),
    ),
    "drug": Phrasings(
        seen=plain(
            "How many patients take {drug}?",
            "Count the patients with a {drug} prescription.",
            "Patients on {drug}: how many?",
        ),
        held_out=plain("SQL for the number of distinct patients prescribed {drug}, please."),
    ),
    "enc": Phrasings(
        seen=plain(
            "How many {etype} encounters are recorded?",
            "Count the encounters of type {etype}.",
            "Total number of {etype} visits in the database?",
        ),
        held_out=plain("how many encounters have type {etype}"),
    ),
    "high": Phrasings(
        seen=plain(
            "How many {name} results are flagged high?",
            "Count observations of {name} (LOINC {loinc}) with a high flag.",
            "Number of high {name} observations?",
        ),
        held_out=plain("How often was a {name} result (LOINC {loinc}) marked H?"),
    ),
}


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


def examples(stats: SqlStats, db_url: str, rng: random.Random, limit: int | None = None) -> list[Example]:
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
            out.append(phrased(NAME, f"sql:{key}", rng, sql, slots, PHRASINGS[kind], key=f"{NAME}.{kind}"))
    return out


def guard(conn: sqlite3.Connection) -> sqlite3.Connection:
    """SQLite's own limits on a connection that runs model-written SQL: reads only (an authorizer), no value
    over 1 MB, a heap cap. Time is capped per query by `run_sql`'s progress handler."""
    conn.execute(f"PRAGMA hard_heap_limit = {MAX_HEAP_BYTES}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in READ_ONLY_ACTIONS else sqlite3.SQLITE_DENY)
    return conn


def run_sql(conn: sqlite3.Connection, sql: str, timeout_s: float = 2.0):
    """Run one statement on a `guard`ed connection with a time limit; None when it fails or is not allowed
    (several statements, a write, a value too big, past the deadline)."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1_000)
    try:
        return [tuple(r) for r in conn.execute(sql.strip().rstrip(";").strip())]
    except (sqlite3.Error, sqlite3.Warning, MemoryError, OverflowError):
        return None
    finally:
        conn.set_progress_handler(None, 0)


def score(pred: str, ex: Example, conn: sqlite3.Connection | None) -> dict:
    if conn is None:
        return {}
    sql = pred.strip().strip("`").removeprefix("sql").strip()
    got = run_sql(conn, sql)
    want = run_sql(conn, ex.reply)
    if got is None or want is None:
        return {"execution_accuracy": 0.0}
    norm = lambda rows: sorted((tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in rows), key=repr)  # noqa: E731
    return {"execution_accuracy": float(norm(got) == norm(want))}


SPEC = TaskSpec(
    NAME,
    "execution_accuracy",
    96,
    score,
    {f"{NAME}.{kind}": p for kind, p in PHRASINGS.items()},
    needs_db=True,
)
