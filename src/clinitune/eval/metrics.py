"""Per-task healthcare metrics on one (prediction, reference example) pair.

Each scorer returns a dict of metric -> value in [0, 1]; the evaluator averages them per task.
Each task's primary metric, the one that decides "better", is in its spec (data/tasks.py SPECS).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

import jsonschema
from fhir.resources.R4B.bundle import Bundle

from ..data.example import Example
from ..data.privacy.deid import record_schema
from ..data.records import icd10
from ..data.records.coherence import check_record
from ..data.records.mapping import read_record
from ..data.tasks import CUSTOM, SPECS, spec_of

CODE_RE = re.compile(r"\b([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?)\b")
# What a scored query may do, checked by SQLite itself as it compiles the statement: read tables and call
# functions. Writes, ATTACH (which creates a file even on a read-only connection), PRAGMA and the rest are
# refused before they run.
READ_ONLY_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
MAX_VALUE_BYTES = 1_000_000  # zeroblob(999000000) fails at once instead of filling memory
MAX_HEAP_BYTES = 256 * 2**20


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


def _norm(s: str) -> str:
    return re.sub(r"[\W_]+", " ", s.lower()).strip()


def _f1(pred: set, ref: set) -> dict:
    if not pred and not ref:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    tp = len(pred & ref)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(ref) if ref else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def score_record_generation(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    out = {
        "json_valid": float(isinstance(obj, dict)),
        "schema_valid": 0.0,
        "plausible": 0.0,
        "attributes_honoured": 0.0,
    }
    if not isinstance(obj, dict):
        return out
    try:
        jsonschema.validate(obj, record_schema())
        out["schema_valid"] = 1.0
    except jsonschema.ValidationError:
        pass
    try:
        out["plausible"] = float(not check_record(read_record(obj)))
    except (ValueError, TypeError, AttributeError, KeyError):
        pass
    ref = parse_json(ex.reply) or {}
    want_code = (ref.get("diagnoses") or [{}])[0].get("code")
    codes = {str(d.get("code")) for d in obj.get("diagnoses") or [] if isinstance(d, dict)}
    out["attributes_honoured"] = float(
        obj.get("age") == ref.get("age") and obj.get("gender") == ref.get("gender") and want_code in codes
    )
    return out


def score_icd10_coding(pred: str, ex: Example) -> dict:
    ref, got = first_code(ex.reply), first_code(pred)
    return {
        "exact_match": float(got == ref),
        "category_match": float(bool(got) and got[:3] == (ref or "")[:3]),
        "valid_code_rate": float(bool(got) and icd10.is_valid(got)),
    }


def score_icd10_lookup(pred: str, ex: Example) -> dict:
    m = re.search(r"ICD-10-CM code for (.+)\.$", ex.reply)
    desc = _norm(m.group(1) if m else ex.reply)
    return {"description_match": float(desc in _norm(pred))}


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


def score_text_to_sql(pred: str, ex: Example, conn: sqlite3.Connection | None) -> dict:
    if conn is None:
        return {}
    sql = pred.strip().strip("`").removeprefix("sql").strip()
    got = run_sql(conn, sql)
    want = run_sql(conn, ex.reply)
    if got is None or want is None:
        return {"execution_accuracy": 0.0}
    norm = lambda rows: sorted((tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in rows), key=repr)  # noqa: E731
    return {"execution_accuracy": float(norm(got) == norm(want))}


def _extraction_items(obj) -> set:
    if not isinstance(obj, dict):
        return set()
    items = {("dx", str(d.get("code", "")).upper()) for d in obj.get("diagnoses") or [] if isinstance(d, dict)}
    items |= {
        ("med", _norm(str(m.get("name", ""))), _norm(str(m.get("dose", ""))))
        for m in obj.get("medications") or []
        if isinstance(m, dict)
    }
    vitals = obj.get("vitals") if isinstance(obj.get("vitals"), dict) else {}
    items |= {("vital", k, str(v)) for k, v in vitals.items()}
    return items


def score_extraction(pred: str, ex: Example) -> dict:
    return _f1(_extraction_items(parse_json(pred)), _extraction_items(parse_json(ex.reply)))


def _issues(obj) -> set:
    if not isinstance(obj, dict):
        return set()
    return {(str(e.get("rule")), str(e.get("field"))) for e in obj.get("errors") or [] if isinstance(e, dict)}


def score_validation(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    if not isinstance(obj, dict):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return _f1(_issues(obj), _issues(parse_json(ex.reply)))


def _dicts(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _fhir_fields(obj) -> set:
    out = set()
    for e in _dicts(obj.get("entry")) if isinstance(obj, dict) else []:
        r = e.get("resource") if isinstance(e.get("resource"), dict) else {}
        if r.get("resourceType") == "Patient":
            out.add(("Patient", str(r.get("gender"))))
        elif r.get("resourceType") == "Condition":
            code = r.get("code") if isinstance(r.get("code"), dict) else {}
            for c in _dicts(code.get("coding")):
                out.add(("Condition", str(c.get("code")), str(r.get("onsetDateTime"))))
    return out


def score_fhir_conversion(pred: str, ex: Example) -> dict:
    obj = parse_json(pred)
    valid = 0.0
    if isinstance(obj, dict):
        try:
            Bundle.model_validate(obj)
            valid = 1.0
        except Exception:  # pydantic raises ValidationError, and others on odd shapes
            valid = 0.0
    f = _f1(_fhir_fields(obj), _fhir_fields(parse_json(ex.reply)))
    return {"fhir_valid": valid, "field_f1": f["f1"]}


def score_knowledge(pred: str, ex: Example) -> dict:
    p, r = _norm(pred).split(), _norm(ex.reply).split()
    common = sum(min(p.count(w), r.count(w)) for w in set(p))
    if not p or not r or not common:
        return {"token_f1": 0.0}
    prec, rec = common / len(p), common / len(r)
    return {"token_f1": 2 * prec * rec / (prec + rec)}


# One scorer per registered task (data/tasks.py SPECS); text_to_sql's also takes the database connection.
SCORERS = {
    "record_generation": score_record_generation,
    "icd10_coding": score_icd10_coding,
    "icd10_lookup": score_icd10_lookup,
    "text_to_sql": score_text_to_sql,
    "extraction": score_extraction,
    "validation": score_validation,
    "fhir_conversion": score_fhir_conversion,
    "knowledge": score_knowledge,
    CUSTOM.name: score_knowledge,
}
if missing := sorted(set(SPECS) - set(SCORERS)):
    raise RuntimeError(f"eval/metrics.py: no scorer for task {', '.join(missing)}; add it to SCORERS")


def primary(task: str) -> str:
    return spec_of(task).metric


def score(task: str, pred: str, ex: Example, sql_conn=None) -> dict:
    """Scores for one output. A model's JSON can have any shape; one that trips a scorer scores 0."""
    try:
        if task == "text_to_sql":
            return score_text_to_sql(pred, ex, sql_conn)
        return SCORERS.get(task, score_knowledge)(pred, ex)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError):
        return {primary(task): 0.0}
