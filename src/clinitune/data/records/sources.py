"""Read what users have: a SQL database, CSV, JSON/JSONL, FHIR R4 bundles.

Every source yields patient records (`Patient`) or ready instruction examples (dicts with
instruction/input/output or chat messages). Bad items become `Reject`s naming the file and the
line, row or bundle entry; nothing is dropped silently.

Longer than 400 lines because it holds one reader per source format (database, CSV, JSON, JSONL,
FHIR) and the CSV and FHIR exporters that mirror them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import Date, Float, Integer, select
from tqdm import tqdm

from ...errors import ClinituneError
from ...paths import atomic_write_text
from ..example import Example, ExampleError, shape_of
from ..example import parse as parse_example
from ..jsonio import MAX_LINE_CHARS, decode, json_lines, utf8_text
from . import schema
from .db import engine_for, require_schema
from .fhir import MODELED, FhirError, resources_to_patient, to_bundle
from .patient import NESTED, Allergy, ConditionFact, Medication, Observation, Patient
from .synth import patient_rows

log = logging.getLogger(__name__)

KINDS = ("database", "csv", "jsonl", "json", "fhir")
CHUNK = 500
TABLES = {"patients": schema.patients, **schema.FACT_TABLES}


@dataclass
class Reject:
    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.reason}"


@dataclass
class Loaded:
    records: list[Patient] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # valid input outside the model, e.g. FHIR Claim

    @property
    def items_in(self) -> int:
        return len(self.records) + len(self.examples) + len(self.rejects)


# ------------------------------------------------------------------ database


def _row_to_fact(table: str, row: dict):
    cls = NESTED[table]
    return cls(**{k: v for k, v in row.items() if k != "patient_id"})


def iter_database(url: str, chunk: int = CHUNK) -> Iterator[Patient]:
    """Stream patients with their facts, `chunk` patients at a time, in id order, read-only. The database is
    opened and checked on the call, so a bad URL or file is one line before any progress bar starts."""
    engine = engine_for(url, readonly=True)
    require_schema(engine, url)
    return _stream_patients(engine, chunk)


def _stream_patients(engine, chunk: int) -> Iterator[Patient]:
    try:
        with engine.connect() as conn:
            last = None
            while True:
                q = select(schema.patients).order_by(schema.patients.c.id).limit(chunk)
                if last is not None:
                    q = q.where(schema.patients.c.id > last)
                rows = [dict(r._mapping) for r in conn.execute(q)]
                if not rows:
                    return
                ids = [r["id"] for r in rows]
                patients = {r["id"]: Patient(**r) for r in rows}
                for name, table in schema.FACT_TABLES.items():
                    q = select(table).where(table.c.patient_id.in_(ids)).order_by(table.c.patient_id, table.c.id)
                    for r in conn.execute(q):
                        m = dict(r._mapping)
                        getattr(patients[m["patient_id"]], name).append(_row_to_fact(name, m))
                yield from patients.values()
                last = ids[-1]
    finally:
        engine.dispose()


# ------------------------------------------------------------------ csv


def _parse_cell(col, text: str):
    if text == "":
        return None
    if isinstance(col.type, Date):
        return dt.date.fromisoformat(text)
    if isinstance(col.type, Integer):
        return int(text)
    if isinstance(col.type, Float):
        return float(text)
    return text


def csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file; a file that is not UTF-8 or not CSV is a one-line error naming its line."""
    csv.field_size_limit(MAX_LINE_CHARS)
    reader = csv.DictReader(io.StringIO(utf8_text(path), newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ClinituneError(
            f"{path}:{max(reader.line_num, 1)}: not readable as CSV ({exc}); check that it is a CSV file"
        ) from None
    return list(reader.fieldnames or []), rows


def _read_flat_csv(directory: Path, out: Loaded) -> None:
    """Our flat export: one CSV per table, keyed by patient_id."""
    if not any((directory / f"{name}.csv").is_file() for name in TABLES):
        raise ClinituneError(
            f"{directory}: no flat CSV export here (one file per table: {', '.join(f'{t}.csv' for t in TABLES)}); "
            "give an instruction CSV file, or a directory written by clinitune synth --export csv"
        )
    patients: dict[int, Patient] = {}
    for name, table in TABLES.items():
        path = directory / f"{name}.csv"
        if not path.is_file():
            out.rejects.append(
                Reject(
                    str(path),
                    "file",
                    "missing; the flat export has one CSV per table: " + ", ".join(f"{t}.csv" for t in TABLES),
                )
            )
            continue
        header, rows = csv_rows(path)
        missing = [c for c in table.c.keys() if c not in header]
        if missing:
            out.rejects.append(
                Reject(
                    str(path),
                    "header",
                    f"missing column(s) {', '.join(missing)}; expected {', '.join(table.c.keys())}",
                )
            )
            continue
        for line, row in enumerate(rows, 2):
            try:
                values = {k: _parse_cell(table.c[k], row[k]) for k in table.c.keys()}
            except ValueError as exc:
                out.rejects.append(Reject(str(path), f"line {line}", f"bad value: {exc}"))
                continue
            if name == "patients":
                patients[values["id"]] = Patient(**values)
            elif values["patient_id"] not in patients:
                out.rejects.append(
                    Reject(str(path), f"line {line}", f"patient_id {values['patient_id']} is not in patients.csv")
                )
            else:
                getattr(patients[values["patient_id"]], name).append(_row_to_fact(name, values))
    out.records.extend(patients[k] for k in sorted(patients))


def _read_instruction_csv(path: Path, out: Loaded, group_by: str | None = None) -> None:
    cols, rows = csv_rows(path)
    missing = [c for c in ("instruction", "output") if c not in cols]
    if missing:
        out.rejects.append(
            Reject(
                str(path),
                "header",
                f"missing column(s) {', '.join(missing)}; an instruction CSV has instruction,output or "
                f"instruction,input,output",
            )
        )
        return
    for line, row in enumerate(rows, 2):
        _add_object({k: v or "" for k, v in row.items() if k is not None}, str(path), f"line {line}", out, group_by)


def read_csv(path: Path, out: Loaded, group_by: str | None = None) -> None:
    if path.is_dir():
        _read_flat_csv(path, out)
    elif path.name in {f"{t}.csv" for t in TABLES}:
        _read_flat_csv(path.parent, out)
    else:
        _read_instruction_csv(path, out, group_by)


# ------------------------------------------------------------------ json / jsonl


def nested_patient(obj: dict) -> Patient:
    """The spec's nested patient JSON: demographics + diagnoses, medications, allergies, lab_results."""
    demo = obj.get("demographics") or {}
    gender = str(demo.get("gender") or obj.get("gender") or "").lower()
    sex = {"male": "M", "m": "M", "female": "F", "f": "F"}.get(gender)
    if sex is None:
        raise ValueError(f"demographics.gender: {demo.get('gender')!r}; expected male or female")
    age = demo.get("age", obj.get("age"))
    if age == "90+":  # Safe Harbor's top age category
        age = 90
    if age is not None and (not isinstance(age, int) or not 0 <= age <= 120):
        raise ValueError(f"demographics.age: {age!r}; expected an integer 0-120")
    birth = demo.get("birth_date") or demo.get("date_of_birth")
    p = Patient(
        id=obj.get("patient_id", ""),
        sex=sex,
        age=age,
        birth_date=dt.date.fromisoformat(birth) if birth else None,
        zip=demo.get("zip_code"),
    )
    for i, d in enumerate(obj.get("diagnoses") or [], 1):
        if not isinstance(d, dict) or not d.get("code"):
            raise ValueError(f"diagnoses[{i - 1}]: expected an object with a code")
        onset = d.get("onset_date")
        p.conditions.append(
            ConditionFact(
                i, str(d["code"]).upper(), d.get("description", ""), dt.date.fromisoformat(onset) if onset else None
            )
        )
    for i, m in enumerate(obj.get("medications") or [], 1):
        m = {"name": m} if isinstance(m, str) else m
        drug = m.get("name") or m.get("drug")
        if not drug:
            raise ValueError(f"medications[{i - 1}]: no name")
        p.medications.append(
            Medication(
                i, str(drug).lower(), str(m.get("dose", "")), str(m.get("frequency", "")), m.get("route", "oral")
            )
        )
    for i, a in enumerate(obj.get("allergies") or [], 1):
        a = {"substance": a} if isinstance(a, str) else a
        p.allergies.append(
            Allergy(
                i,
                a.get("substance") or a.get("name", ""),
                a.get("category", "medication"),
                a.get("reaction", ""),
                a.get("severity", "mild"),
            )
        )
    for i, lab in enumerate(obj.get("lab_results") or [], 1):
        name = lab.get("test") or lab.get("name") or lab.get("code")
        if name is None or not isinstance(lab.get("value"), (int, float)):
            raise ValueError(f"lab_results[{i - 1}]: expected a test name and a numeric value")
        p.observations.append(
            Observation(
                i,
                str(lab.get("code", name)),
                str(name),
                float(lab["value"]),
                str(lab.get("unit", "")),
                lab.get("ref_low"),
                lab.get("ref_high"),
                lab.get("flag"),
            )
        )
    return p


def _add_object(obj, file: str, where: str, out: Loaded, group_by: str | None = None) -> None:
    if isinstance(obj, dict) and shape_of(obj) is not None:
        try:
            out.examples.append(parse_example(obj, f"{file}:{where}", group_by))
        except ExampleError as exc:
            out.rejects.append(Reject(file, where, str(exc).removeprefix(f"{file}:{where}: ")))
    elif isinstance(obj, dict) and ("demographics" in obj or "patient_id" in obj):
        try:
            out.records.append(nested_patient(obj))
        except (ValueError, TypeError, AttributeError) as exc:
            out.rejects.append(Reject(file, where, str(exc)))
    elif not isinstance(obj, dict):
        out.rejects.append(Reject(file, where, f"expected a JSON object, got {type(obj).__name__}"))
    else:
        out.rejects.append(
            Reject(
                file,
                where,
                "unrecognized object: expected an example (instruction/output, prompt/completion, "
                "messages or text) or a patient with demographics",
            )
        )


def read_jsonl(path: Path, out: Loaded, group_by: str | None = None) -> None:
    for n, obj, error in json_lines(path):
        if error:
            out.rejects.append(Reject(str(path), f"line {n}", error))
        else:
            _add_object(obj, str(path), f"line {n}", out, group_by)


def read_json(path: Path, out: Loaded, group_by: str | None = None) -> None:
    data, error = decode(utf8_text(path))
    if error:
        out.rejects.append(Reject(str(path), "file", error))
        return
    items = data if isinstance(data, list) else [data]
    for i, obj in enumerate(items):
        _add_object(obj, str(path), f"item {i}", out, group_by)


# ------------------------------------------------------------------ fhir


def _is_fhir_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
        return True
    except (KeyError, ValueError, AttributeError, ImportError):
        return False


def read_fhir_bundle(path: Path, out: Loaded) -> None:
    bundle, error = decode(utf8_text(path))
    if error:
        out.rejects.append(Reject(str(path), "file", error))
        return
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        out.rejects.append(
            Reject(
                str(path),
                "top level",
                f"expected a FHIR Bundle, got resourceType "
                f"{bundle.get('resourceType') if isinstance(bundle, dict) else type(bundle).__name__!r}",
            )
        )
        return
    by_patient: dict[str, list[dict]] = {}
    order: list[str] = []
    bad_entries = False
    for i, entry in enumerate(bundle.get("entry") or []):
        r = (entry or {}).get("resource") or {}
        kind = r.get("resourceType")
        if kind not in MODELED:
            if kind and _is_fhir_type(kind):
                out.ignored[kind] = out.ignored.get(kind, 0) + 1
            else:
                out.rejects.append(
                    Reject(str(path), f"entry {i}", f"unknown resourceType {kind!r}; not a FHIR R4 resource")
                )
                bad_entries = True
            continue
        if kind == "Patient":
            key = f"Patient/{r.get('id')}"
            by_patient.setdefault(key, []).insert(0, r)
            order.append(key)
        else:
            subj = (r.get("subject") or r.get("patient") or {}).get("reference", "")
            key = subj if subj.startswith("Patient/") else subj.replace("urn:uuid:", "Patient/")
            by_patient.setdefault(key, []).append({**r, "_entry": i})
    for key in order:
        resources = by_patient.get(key, [])
        try:
            out.records.append(resources_to_patient([{k: v for k, v in r.items() if k != "_entry"} for r in resources]))
        except (FhirError, KeyError, TypeError, ValueError) as exc:
            entry = next((r.get("_entry") for r in resources if "_entry" in r), 0)
            out.rejects.append(Reject(str(path), f"patient {key} (near entry {entry})", str(exc)))
    orphans = [k for k in by_patient if k not in order]
    if orphans and not bad_entries:
        out.rejects.append(
            Reject(str(path), "bundle", f"resources refer to patients not in the bundle: {', '.join(orphans[:3])}")
        )


def read_fhir(path: Path, out: Loaded, group_by: str | None = None) -> None:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        out.rejects.append(Reject(str(path), "dir", "no *.json bundles found"))
    for f in files:
        read_fhir_bundle(f, out)


READERS = {"csv": read_csv, "jsonl": read_jsonl, "json": read_json, "fhir": read_fhir}


def load(source: str, *, db: str | None = None, path: str | Path | None = None, group_by: str | None = None) -> Loaded:
    """Read a whole source; rejects are collected, never raised, so the caller can report them all."""
    if source not in KINDS:
        raise ClinituneError(f"--source {source!r}: expected one of {', '.join(KINDS)}")
    out = Loaded()
    if source == "database":
        if not db:
            raise ClinituneError("--source database needs --db URL (e.g. sqlite:///data/clinic.db)")
        out.records.extend(iter_database(db))
        return out
    if path is None:
        raise ClinituneError(f"--source {source} needs --path FILE_OR_DIR")
    p = Path(path)
    if not p.exists():
        raise ClinituneError(f"{p}: no such file or directory; check the path")
    READERS[source](p, out, group_by)
    return out


def check_rejects(loaded: Loaded, skip_invalid: bool, label: str = "input") -> None:
    """Stop with every problem listed, unless skip_invalid (prepare then writes them to rejects.jsonl)."""
    if len(loaded.rejects) == 1 and not skip_invalid:
        raise ClinituneError(f"{loaded.rejects[0]}; fix it, or pass --skip-invalid to write it to a rejects file")
    if loaded.rejects and not skip_invalid:
        shown = "\n  ".join(str(r) for r in loaded.rejects[:50])
        more = f"\n  ... and {len(loaded.rejects) - 50} more" if len(loaded.rejects) > 50 else ""
        raise ClinituneError(
            f"{len(loaded.rejects)} invalid item(s) in {label}:\n  {shown}{more}\n"
            "Fix them, or pass --skip-invalid to continue and write them to a rejects file."
        )


# ------------------------------------------------------------------ export


def _csv_value(v):
    return "" if v is None else v.isoformat() if isinstance(v, dt.date) else v


def export(url: str, fmt: str, out_dir: Path, progress: bool = True) -> int:
    """Write the database at `url` as our flat CSV (one file per table) or one FHIR bundle per patient."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    if fmt == "fhir":
        for p in tqdm(iter_database(url), desc="export fhir", unit="patient", disable=not progress):
            atomic_write_text(out_dir / f"patient-{p.id}.json", json.dumps(to_bundle(p), indent=1))
            n += 1
        return n
    if fmt != "csv":
        raise ClinituneError(f"--export {fmt!r}: expected csv or fhir")
    tmp = {t: out_dir / f".{t}.csv.tmp" for t in TABLES}
    files = {t: open(path, "w", newline="", encoding="utf-8") for t, path in tmp.items()}
    try:
        writers = {t: csv.DictWriter(files[t], fieldnames=list(TABLES[t].c.keys())) for t in TABLES}
        for w in writers.values():
            w.writeheader()
        for p in tqdm(iter_database(url), desc="export csv", unit="patient", disable=not progress):
            for t, rows in patient_rows(p).items():
                writers[t].writerows({k: _csv_value(v) for k, v in r.items()} for r in rows)
            n += 1
    finally:
        for f in files.values():
            f.close()
    for t, path in tmp.items():
        path.replace(out_dir / f"{t}.csv")
    return n
