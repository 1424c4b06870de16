"""Read what users have: a SQL database, CSV, JSON/JSONL, FHIR R4 bundles.

Every source yields patient records (`Patient`) or ready instruction examples (dicts with
instruction/input/output or chat messages). Bad items become `Reject`s naming the file and the
line, row or bundle entry; nothing is dropped silently.

Every reader counts what it read: items read = used + rejected + skipped (`Loaded.counts`).

Longer than 400 lines because it holds one reader per source format (clinitune's database, any other
database table, CSV as instructions, records or a plain table, JSON, JSONL, FHIR) and the CSV and FHIR
exporters that mirror them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
import typing
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import Date, Float, Integer, MetaData, Table, inspect, select
from tqdm import tqdm

from ...config import SourceKind
from ...errors import ClinituneError
from ...paths import atomic_write_text
from ..example import Example, ExampleError, shape_of
from ..example import parse as parse_example
from ..jsonio import MAX_LINE_CHARS, decode, json_lines, utf8_text
from ..tables import noun_of, table_examples
from . import schema
from .db import engine_for, masked_url, require_schema
from .fhir import MODELED, FhirError, resources_to_patient, to_bundle
from .mapping import DEFAULT, FieldMap, Notes, looks_like_record, read_record, table_is_records
from .patient import NESTED, Patient
from .synth import patient_rows

log = logging.getLogger(__name__)

KINDS = typing.get_args(SourceKind)
INSTRUCTION_COLUMNS = {"instruction", "output", "prompt", "completion", "response", "question", "answer"}
CHUNK = 500
TABLES = {"patients": schema.patients, **schema.FACT_TABLES}


@dataclass
class Reject:
    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.reason}"

    @property
    def kind(self) -> str:
        """The reason without its positions and values, so that the same problem counts as one."""
        text = re.sub(r"\[\d+\]", "[]", self.reason.split(";")[0])
        return re.sub(r"'[^']*'|\"[^\"]*\"|\b\d+(\.\d+)?\b", "…", re.sub(r"\(its keys:[^)]*\)", "", text)).strip()


@dataclass
class Loaded:
    records: list[Patient] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # valid input outside the model, e.g. FHIR Claim
    notes: Notes = field(default_factory=Notes)  # what was read with a caveat (a gender read as unknown, ...)
    items: int = 0  # what the source holds: JSON objects, JSONL lines, CSV rows, FHIR patients
    used: int = 0  # items that became a record or examples
    skipped: Counter = field(default_factory=Counter)  # items left out on purpose, by reason

    @property
    def items_in(self) -> int:
        return self.items

    def counts(self) -> dict:
        """Items read = used + rejected (by reason) + skipped (by reason): the sum is checked, not assumed."""
        rejected = Counter(r.kind for r in self.rejects)
        if self.items != self.used + len(self.rejects) + sum(self.skipped.values()):
            raise AssertionError(f"source counts do not add up: {self.items} read, {self.used} used, {rejected}")
        return {
            "items_read": self.items,
            "items_used": self.used,
            "records": len(self.records),
            "examples": len(self.examples),
            "rejected": dict(sorted(rejected.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "notes": self.notes.as_dict(),
        }


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
            out.items += 1
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
            out.items += 1
            out.rejects.append(
                Reject(
                    str(path),
                    "header",
                    f"missing column(s) {', '.join(missing)}; expected {', '.join(table.c.keys())}",
                )
            )
            continue
        for line, row in enumerate(rows, 2):
            out.items += 1
            try:
                values = {k: _parse_cell(table.c[k], row[k]) for k in table.c.keys()}
            except ValueError as exc:
                out.rejects.append(Reject(str(path), f"line {line}", f"bad value: {exc}"))
                continue
            if name == "patients":
                patients[values["id"]] = Patient(**values)
                out.used += 1
            elif values["patient_id"] not in patients:
                out.rejects.append(
                    Reject(str(path), f"line {line}", f"patient_id {values['patient_id']} is not in patients.csv")
                )
            else:
                getattr(patients[values["patient_id"]], name).append(_row_to_fact(name, values))
                out.used += 1
    out.records.extend(patients[k] for k in sorted(patients))


def _read_records_table(rows: list[dict], file: str, out: Loaded, fmap: FieldMap, first_line: int = 2) -> None:
    """A records CSV or table: each row holds one patient's fields and at most one fact of each kind; the rows of
    one patient (by its id column) make one record."""
    patients: dict[str, Patient] = {}
    for n, row in enumerate(rows, first_line):
        out.items += 1
        where = f"line {n}"
        try:
            p = read_record(row, where, fmap, out.notes, table=True)
        except (ValueError, TypeError) as exc:
            out.rejects.append(Reject(file, where, str(exc).removeprefix(f"{where}: ")))
            continue
        out.used += 1
        if p.id not in patients:
            patients[p.id] = p
            continue
        kept = patients[p.id]
        if (p.sex, p.age, p.birth_date) != (kept.sex, kept.age, kept.birth_date):
            out.notes.add("demographics differ between rows of one patient; the first row's kept")
        for name in NESTED:
            have = {tuple(asdict(f).values())[1:] for f in getattr(kept, name)}
            for f in getattr(p, name):
                if tuple(asdict(f).values())[1:] not in have:
                    getattr(kept, name).append(replace(f, id=len(getattr(kept, name)) + 1))
    out.records.extend(patients.values())


def _read_generic_table(rows: list[dict], header: list[str], file: str, out: Loaded, group_by: str | None) -> None:
    out.notes.add("read as a plain table (question/answer pairs); for patient records pass --map")
    built, empty = table_examples(rows, header, noun_of(Path(file).stem), group_by, out.notes)
    out.items += len(rows)
    out.used += len(built)
    out.examples.extend(ex for _, exs in built for ex in exs)
    if empty:
        out.skipped["row with no value outside its identifier columns"] += len(empty)


def read_csv(path: Path, out: Loaded, group_by: str | None = None, fmap: FieldMap = DEFAULT) -> None:
    """An instruction CSV (instruction,input,output), a records CSV (by its columns, or with --map), our flat
    export (a directory of one CSV per table), or any other table, which becomes question/answer pairs."""
    if path.is_dir():
        _read_flat_csv(path, out)
        return
    if path.name in {f"{t}.csv" for t in TABLES}:
        _read_flat_csv(path.parent, out)
        return
    header, rows = csv_rows(path)
    if group_by and group_by not in header:
        raise ClinituneError(f"{path}: --group-by {group_by}: no such column; the columns are {', '.join(header)}")
    if "instruction" in header and "output" in header:
        for line, row in enumerate(rows, 2):
            obj = {k: v or "" for k, v in row.items() if k is not None}
            _add_object(obj, str(path), f"line {line}", out, group_by, fmap)
    elif INSTRUCTION_COLUMNS & set(header):
        # Meant as instruction pairs under other names: made into table questions, they would teach nonsense.
        missing = [c for c in ("instruction", "output") if c not in header]
        out.items += 1
        out.rejects.append(
            Reject(
                str(path),
                "header",
                f"missing column(s) {', '.join(missing)}; an instruction CSV has instruction,output or "
                "instruction,input,output: rename its columns",
            )
        )
    elif table_is_records(header, fmap):
        _read_records_table(rows, str(path), out, fmap)
    else:
        _read_generic_table(rows, header, str(path), out, group_by)


# ------------------------------------------------------------------ json / jsonl


def _add_object(obj, file: str, where: str, out: Loaded, group_by: str | None, fmap: FieldMap) -> None:
    out.items += 1
    if isinstance(obj, dict) and shape_of(obj) is not None:
        try:
            out.examples.append(parse_example(obj, f"{file}:{where}", group_by))
            out.used += 1
        except ExampleError as exc:
            out.rejects.append(Reject(file, where, str(exc).removeprefix(f"{file}:{where}: ")))
    elif isinstance(obj, dict) and (fmap.user or looks_like_record(obj)):
        try:
            out.records.append(read_record(obj, where, fmap, out.notes))
            out.used += 1
        except (ValueError, TypeError, AttributeError) as exc:
            out.rejects.append(Reject(file, where, str(exc).removeprefix(f"{where}: ")))
    elif not isinstance(obj, dict):
        out.rejects.append(Reject(file, where, f"expected a JSON object, got {type(obj).__name__}"))
    else:
        keys = ", ".join(map(str, list(obj)[:8])) or "none"
        out.rejects.append(
            Reject(
                file,
                where,
                f"unrecognized object (keys: {keys}): expected an example (instruction/output, prompt/completion, "
                "messages or text) or a patient record; if it is a record, write a mapping with clinitune prepare "
                f"--suggest-map {file} and pass --map",
            )
        )


def read_jsonl(path: Path, out: Loaded, group_by: str | None = None, fmap: FieldMap = DEFAULT) -> None:
    for n, obj, error in json_lines(path):
        if error:
            out.items += 1
            out.rejects.append(Reject(str(path), f"line {n}", error))
        else:
            _add_object(obj, str(path), f"line {n}", out, group_by, fmap)


def read_json(path: Path, out: Loaded, group_by: str | None = None, fmap: FieldMap = DEFAULT) -> None:
    data, error = decode(utf8_text(path))
    if error:
        out.items += 1
        out.rejects.append(Reject(str(path), "file", error))
        return
    items = data if isinstance(data, list) else [data]
    for i, obj in enumerate(items):
        _add_object(obj, str(path), f"item {i}", out, group_by, fmap)


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
        out.items += 1
        out.rejects.append(Reject(str(path), "file", error))
        return
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        out.items += 1
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
                out.items += 1
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
        out.items += 1
        try:
            out.records.append(resources_to_patient([{k: v for k, v in r.items() if k != "_entry"} for r in resources]))
            out.used += 1
        except (FhirError, KeyError, TypeError, ValueError) as exc:
            entry = next((r.get("_entry") for r in resources if "_entry" in r), 0)
            out.rejects.append(Reject(str(path), f"patient {key} (near entry {entry})", str(exc)))
    orphans = [k for k in by_patient if k not in order]
    if orphans and not bad_entries:
        out.items += 1
        out.rejects.append(
            Reject(str(path), "bundle", f"resources refer to patients not in the bundle: {', '.join(orphans[:3])}")
        )


def read_fhir(path: Path, out: Loaded, group_by: str | None = None, fmap: FieldMap = DEFAULT) -> None:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        out.items += 1
        out.rejects.append(Reject(str(path), "dir", "no *.json bundles found"))
    for f in files:
        read_fhir_bundle(f, out)


READERS = {"csv": read_csv, "jsonl": read_jsonl, "json": read_json, "fhir": read_fhir}


def read_table(url: str, name: str, out: Loaded, group_by: str | None, fmap: FieldMap) -> None:
    """A table of any database: records with a map (or by its columns), else question/answer pairs."""
    engine = engine_for(url, readonly=True)
    try:
        names = inspect(engine).get_table_names()
        if name not in names:
            raise ClinituneError(f"--table {name}: no such table in {masked_url(url)}; its tables: {', '.join(names)}")
        table = Table(name, MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = [{k: v for k, v in r._mapping.items()} for r in conn.execute(select(table))]
    finally:
        engine.dispose()
    header = list(table.c.keys())
    label = f"table {name}"
    if group_by and group_by not in header:
        raise ClinituneError(f"{label}: --group-by {group_by}: no such column; the columns are {', '.join(header)}")
    if table_is_records(header, fmap):
        _read_records_table(rows, label, out, fmap, first_line=1)
    else:
        _read_generic_table(rows, header, name, out, group_by)


def load(
    source: str,
    *,
    db: str | None = None,
    path: str | Path | None = None,
    group_by: str | None = None,
    fmap: FieldMap = DEFAULT,
    table: str | None = None,
) -> Loaded:
    """Read a whole source; rejects are collected, never raised, so the caller can report them all."""
    if source not in KINDS:
        raise ClinituneError(f"--source {source!r}: expected one of {', '.join(KINDS)}")
    out = Loaded()
    if source == "database":
        if not db:
            raise ClinituneError("--source database needs --db URL (e.g. sqlite:///data/clinic.db)")
        if table:
            read_table(db, table, out, group_by, fmap)
            return out
        for p in iter_database(db):
            out.items += 1
            out.used += 1
            out.records.append(p)
        return out
    if table:
        raise ClinituneError("--table is for --source database; a file source is one table already")
    if path is None:
        raise ClinituneError(f"--source {source} needs --path FILE_OR_DIR")
    p = Path(path)
    if not p.exists():
        raise ClinituneError(f"{p}: no such file or directory; check the path")
    READERS[source](p, out, group_by, fmap)
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
