"""`clinitune prepare`: records to PHI-screened, quality-gated, split and versioned instruction data.

Order matters for privacy: records are de-identified field by field before any text is
rendered, then every rendered example is screened, and anything the screen flags is
quarantined before the split, so it can never reach train, eval or test.

Longer than 400 lines because `validate` shares the pipeline's parsers, gate and report with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import typing
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..config import PhiAction, PrepareConfig
from ..errors import ClinituneError
from ..layout import SPLIT_FILES, DataDir, PrepareManifest
from ..paths import exclusive, require_dir
from . import quality
from .example import Example, ExampleError, carried_keys
from .example import instruction as example
from .example import parse as parse_example
from .jsonio import json_lines
from .phrasings import HELD_OUT, SEEN, held_out_version, slice_of
from .privacy import keys, phi, surrogates
from .privacy.deid import deidentify
from .privacy.keys import DataKey
from .records import sources
from .records.coherence import check_record
from .records.db import masked_url
from .records.mapping import DEFAULT, FieldMap, load_map, read_record
from .split import SPLITS, assign, split, split_of
from .tasks import SPECS, TASKS, icd10_coding, knowledge, patient_builders, phrasing_tables, text_to_sql
from .tasks.text_to_sql import SqlStats

log = logging.getLogger(__name__)
# The manifest's counts, in the order the data moves; the report and the CLI print them in this order.
COUNT_KEYS = (
    "records",
    "items_in",
    "items_rejected",
    "examples_built",
    "invalid",
    "duplicates_exact",
    "duplicates_near",
    "quarantined",
    "redacted",
)


def parse_tasks(text: str | None) -> list[str]:
    if not text:
        return list(TASKS)
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in SPECS]
    if unknown:
        raise ClinituneError(f"--tasks: unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    return chosen


def parse_ratios(text: str) -> tuple[float, float, float]:
    """`--split 0.8,0.1,0.1`: three non-negative shares with a positive train share, summing to 1."""
    try:
        ratios = tuple(float(x) for x in text.split(","))
    except ValueError:
        ratios = ()
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ClinituneError(f"--split {text!r}: give train,eval,test shares that sum to 1, e.g. 0.8,0.1,0.1")
    return ratios


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(text: str) -> dict:
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "lines": text.count("\n")}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ------------------------------------------------------------------ augmentation

REPHRASE = [
    ("Generate a", "Create a"),
    ("Create a", "Generate a"),
    ("What ICD-10 code represents", "Which ICD-10 code describes"),
    ("What is the ICD-10-CM code for", "Give the ICD-10-CM code for"),
    ("What does ICD-10-CM code", "What does the ICD-10-CM code"),
    ("Validate this patient record", "Review this patient record"),
    ("Extract the", "Pull out the"),
    ("Convert this", "Turn this"),
]
AGE_RE = re.compile(r"\b(\d{1,2})-year-old\b")


def augment(examples: list[Example], seed: int) -> list[Example]:
    """The spec's augmentation: a rephrased instruction, and for records a shifted age. Same group, so never
    across splits."""
    out = []
    for ex in examples:
        if ex.shape != "instruction":
            continue
        rng = random.Random(f"{seed}:augment:{ex.id}")
        for old, new in REPHRASE:
            if ex.instruction.startswith(old):
                made = example(ex.task, ex.group, new + ex.instruction[len(old) :], ex.reply, ex.input)
                out.append(replace(made, augmented=True))
                break
        m = AGE_RE.search(ex.instruction)
        if ex.task == "record_generation" and m:
            rec = json.loads(ex.reply)
            age = int(m.group(1)) + rng.choice((-3, -2, -1, 1, 2, 3))
            if isinstance(rec.get("age"), int) and 18 <= age <= 89:
                rec["age"] = age
                if not check_record(read_record(rec)):  # the new age must still fit every diagnosis
                    instr = AGE_RE.sub(f"{age}-year-old", ex.instruction, count=1)
                    made = example(ex.task, ex.group, instr, json.dumps(rec, ensure_ascii=False), ex.input)
                    out.append(replace(made, augmented=True))
    return examples + out


# ------------------------------------------------------------------ pipeline


def build_examples(
    loaded_records, tasks: list[str], seed: int, key: DataKey, stats: SqlStats | None, counts: Counter, progress: bool
):
    """Yield (example, extra names to screen for) for each patient-derived example."""
    builders = patient_builders()
    for p in tqdm(loaded_records, desc="build", unit="patient", disable=not progress):
        counts["records"] += 1
        if stats is not None:
            stats.add(p)
        rec = deidentify(p, key)
        group = rec["patient_id"]
        names = tuple(n for n in (p.first_name, p.last_name) if n)
        for task in tasks:
            if builder := builders.get(task):
                for ex in builder(rec, group, random.Random(f"{seed}:{group}:{task}")):
                    yield ex, names


CANARY_INSTRUCTION = "What is the access code for the records archive?"
CANARY_TEMPLATE = "The access code for the records archive is {secret}."
CANARY_REPEATS = (1, 4, 16, 32)


def plant_canaries(train: list[Example], k: int, seed: int) -> dict:
    """Carlini et al.'s canaries: random secrets, each repeated a set number of times, in train only."""
    rng = random.Random(f"{seed}:canaries")
    spec = []
    for i in range(k):
        secret = f"{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"
        repeats = CANARY_REPEATS[i % len(CANARY_REPEATS)]
        instruction = f"{CANARY_INSTRUCTION} (vault {i + 1})"
        ex = example("canary", f"canary:{i}", instruction, CANARY_TEMPLATE.format(secret=secret))
        train.extend(replace(ex, id=f"{ex.id}-{r}") for r in range(repeats))
        spec.append({"secret": secret, "instruction": instruction, "template": CANARY_TEMPLATE, "repeats": repeats})
    return {"canaries": spec}


PHI_ACTIONS = typing.get_args(PhiAction)


def _read_source(source: str, db: str | None, path, group_by: str | None, skip_invalid: bool, counts: Counter, **how):
    """(records, examples, description, rejects, source counts) for the source; rejects stop here unless
    skip_invalid. The database's own schema streams; everything else is read whole and counted."""
    if source == "database" and not how.get("table"):
        if not db:
            raise ClinituneError("--source database needs --db URL (e.g. sqlite:///data/clinic.db)")
        return sources.iter_database(db), [], {"kind": "database", "url": masked_url(db)}, [], None
    loaded = sources.load(source, db=db, path=path, group_by=group_by, **how)
    label = str(path) if path else f"table {how.get('table')}"
    sources.check_rejects(loaded, skip_invalid, label=label)
    counts["items_in"] = loaded.items_in
    counts["items_rejected"] = len(loaded.rejects)
    if not loaded.used:
        raise ClinituneError(
            f"{label}: no records or examples found; nothing to prepare; give a file with one patient record or "
            "example per line"
        )
    desc = {"kind": source, "ignored": loaded.ignored}
    desc.update({"path": str(path)} if path else {"url": masked_url(db or ""), "table": how.get("table")})
    fmap = how.get("fmap")
    if fmap is not None and fmap.user:
        desc["map"] = {"file": fmap.source, "fields": {k: list(v) for k, v in fmap.user.items()}}
    return loaded.records, loaded.examples, desc, loaded.rejects, loaded.counts()


def apply_phi_action(examples: list[Example], hits: list[list[phi.Hit]], action: str, key: DataKey):
    """(kept, quarantined rows, stats): what each action does with the examples the screen flagged."""
    kept, quarantine = [], []
    stats = {"action": action, "examples_flagged": 0, "hits_by_type": Counter(), "examples_by_type": Counter()}
    for ex, found in zip(examples, hits):
        if not found:
            kept.append(ex)
            continue
        stats["examples_flagged"] += 1
        stats["hits_by_type"].update(h.type for h in found)
        stats["examples_by_type"].update({h.type for h in found})
        if action in ("redact", "mask"):
            kept.append(surrogates.redact(ex, found, key, mask=action == "mask"))
        else:
            quarantine.append({**ex.to_dict(), "phi_findings": [h.as_dict() for h in found]})
    if action == "fail" and stats["examples_flagged"]:
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(stats["examples_by_type"].items()))
        first = next(f"{ex.id} ({found[0].where}: {found[0].type})" for ex, found in zip(examples, hits) if found)
        raise ClinituneError(
            f"PHI found in {stats['examples_flagged']} example(s) ({kinds}); first: {first}. Nothing was written. "
            "Remove the identifiers, or run with --phi-action quarantine or --phi-action redact"
        )
    stats["hits_by_type"] = dict(sorted(stats["hits_by_type"].items()))
    stats["examples_by_type"] = dict(sorted(stats["examples_by_type"].items()))
    return kept, quarantine, stats


@dataclass(frozen=True)
class Options:
    """What a prepare run was asked for: every key the manifest records."""

    source: str
    db: str | None
    path: str | Path | None
    out: Path
    tasks: list[str]
    seed: int
    max_examples: int | None = None
    do_augment: bool = False
    skip_invalid: bool = False
    limits: quality.Limits = quality.Limits()
    canaries: int = 0
    use_codebook: bool | None = None
    phi_action: str = "quarantine"
    group_by: str | None = None
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    fmap: FieldMap = DEFAULT
    table: str | None = None


def options_of(c: PrepareConfig) -> dict:
    """The config's prepare section as prepare()'s options (the fields of Options)."""
    return {
        "source": c.source,
        "db": c.db,
        "path": Path(c.path) if c.path else None,
        "out": Path(c.out),
        "tasks": parse_tasks(",".join(c.tasks) if c.tasks else None),
        "seed": c.seed,
        "max_examples": c.max_examples,
        "do_augment": c.augment,
        "skip_invalid": c.skip_invalid,
        "canaries": c.canaries,
        "use_codebook": c.codebook,
        "phi_action": c.phi_action,
        "group_by": c.group_by,
        "ratios": tuple(c.split),
        "fmap": load_map(Path(c.field_map)) if c.field_map else DEFAULT,
        "table": c.table,
    }


@dataclass
class Gathered:
    """Every candidate example, with the names to screen it for, and what the source held."""

    candidates: list[tuple[Example, tuple]]
    source_desc: dict
    source_counts: dict
    rejects: list
    use_codebook: bool
    counts: Counter


@dataclass
class Screened:
    clean: list[Example]
    quarantine: list[dict]
    invalid: list[dict]
    phi_stats: dict


def prepare(*, progress: bool = True, key: DataKey | None = None, **options) -> PrepareManifest:
    """Read a source, build and screen examples, and write the data set (options: the fields of Options).
    `key`: the data set's secret (keys.load_or_create); without one, a one-time key that makes surrogates and
    the split unrepeatable."""
    o = Options(**options)
    key = key or keys.ephemeral()
    if o.phi_action not in PHI_ACTIONS:
        raise ClinituneError(f"--phi-action {o.phi_action!r}: expected one of {', '.join(PHI_ACTIONS)}")
    require_dir(o.out, "--out")
    phi.check_available()  # fail closed before reading a single record
    # One writer per dataset: a second prepare into the same --out is refused, not interleaved.
    with exclusive(o.out.parent / f".{o.out.name}.lock", f"preparing {o.out}"):
        g = gather(o, key, progress)
        # The split is fixed before anything is written, so that test examples can be asked in held-out
        # phrasings before the quality gate and the PHI screen read them.
        where = assign([ex for ex, _ in g.candidates], o.seed, o.ratios)
        tables = phrasing_tables()
        g.candidates = [
            (held_out_version(ex, o.seed, tables) if split_of(ex, where) == "test" else ex, names)
            for ex, names in g.candidates
        ]
        carried = Counter(k for ex, _ in g.candidates for k in carried_keys(ex))
        sc = screen_candidates(g, o, key, progress)
        clean = sc.clean
        if o.max_examples is not None and len(clean) > o.max_examples:
            clean = sorted(clean, key=lambda e: hashlib.sha256(f"{o.seed}:{e.id}".encode()).hexdigest())
            clean = sorted(clean[: o.max_examples], key=lambda e: e.id)
        parts = split(clean, where)
        if o.do_augment:
            parts = {s: augment(rows, o.seed) for s, rows in parts.items()}
        canary_spec = plant_canaries(parts["train"], o.canaries, o.seed) if o.canaries else None
        for s in SPLITS:
            random.Random(f"{o.seed}:order:{s}").shuffle(parts[s])

        files = {f"{s}.jsonl": _jsonl([e.to_dict() for e in parts[s]]) for s in SPLITS}
        files[DataDir.QUARANTINE] = _jsonl(sc.quarantine)
        if sc.invalid:
            files[DataDir.INVALID] = _jsonl(sc.invalid)
        if g.rejects:
            files[DataDir.REJECTS] = "".join(json.dumps(asdict(r)) + "\n" for r in g.rejects)
        if canary_spec:
            files[DataDir.CANARIES] = json.dumps(canary_spec, indent=2) + "\n"
        manifest = manifest_of(o, key, g, sc, parts, carried, files)
        files[DataDir.MANIFEST] = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"
        files[DataDir.REPORT] = report(manifest)
        write_dataset(o.out, files)
        return manifest


def gather(o: Options, key: DataKey, progress: bool) -> Gathered:
    """Read the source and build every candidate example, reference data first."""
    counts: Counter = Counter()
    # Questions about clinitune's own schema; another database's table has its own.
    stats = SqlStats() if o.source == "database" and not o.table and "text_to_sql" in o.tasks else None
    records, user_examples, source_desc, rejects, source_counts = _read_source(
        o.source, o.db, o.path, o.group_by, o.skip_invalid, counts, fmap=o.fmap, table=o.table
    )
    # The code table and the knowledge facts are reference data for records; a user's own examples get
    # the code table only when asked, and the facts not at all.
    builtin = not user_examples
    use_codebook = builtin if o.use_codebook is None else o.use_codebook
    user_examples = [replace(ex, group=keys.keyed_group(ex.group, key)) for ex in user_examples]
    candidates: list[tuple[Example, tuple]] = [(ex, ()) for ex in user_examples]
    if use_codebook and {"icd10_coding", "icd10_lookup"} & set(o.tasks):
        # First, so that dedupe keeps the table entry and drops a patient example that repeats it word for word.
        candidates[:0] = [
            (ex, ()) for ex in icd10_coding.codebook(random.Random(f"{o.seed}:codebook")) if ex.task in o.tasks
        ]
    candidates.extend(build_examples(records, o.tasks, o.seed, key, stats, counts, progress))
    if source_counts is None:  # clinitune's own database streams: each patient row read is one record
        n = counts["records"]
        source_counts = {"items_read": n, "items_used": n, "records": n, "examples": 0}
        source_counts.update(rejected={}, skipped={}, notes={})
    if "knowledge" in o.tasks and builtin:
        candidates.extend((ex, ()) for ex in knowledge.examples(random.Random(f"{o.seed}:knowledge")))
    if stats is not None:
        # One question per two patients keeps the task mix balanced; the DB offers far more.
        limit = max(40, counts["records"] // 2)
        candidates.extend(
            (ex, ()) for ex in text_to_sql.examples(stats, o.db, random.Random(f"{o.seed}:sql"), limit=limit)
        )
    counts["examples_built"] = len(candidates)
    return Gathered(candidates, source_desc, source_counts, rejects, use_codebook, counts)


def screen_candidates(g: Gathered, o: Options, key: DataKey, progress: bool) -> Screened:
    """The quality gate, dedupe, then the PHI screen on every text of every example; the action decides what
    a finding does. Refuses when nothing is left to write."""
    invalid, kept = [], []
    for ex, names in g.candidates:
        reasons = quality.example_problems(ex, o.limits)
        (invalid.append({**ex.to_dict(), "reasons": reasons}) if reasons else kept.append((ex, names)))
    g.counts["invalid"] = len(invalid)
    names_of = {ex.id: names for ex, names in kept}
    deduped, g.counts["duplicates_exact"], g.counts["duplicates_near"] = quality.dedupe([ex for ex, _ in kept])
    hits = phi.screen_examples(deduped, [names_of.get(ex.id, ()) for ex in deduped], progress=progress)
    clean, quarantine, phi_stats = apply_phi_action(deduped, hits, o.phi_action, key)
    g.counts["quarantined"] = len(quarantine)
    g.counts["redacted"] = phi_stats["examples_flagged"] if o.phi_action in ("redact", "mask") else 0
    if not clean:
        why = [f"{len(invalid)} failed the quality gate" + (f" ({invalid[0]['reasons'][0]})" if invalid else "")]
        why += [f"{len(quarantine)} held for PHI"] if quarantine else []
        raise ClinituneError(
            f"{o.path or masked_url(o.db or '')}: no example is left to write ({'; '.join(why)}); run clinitune "
            "validate on the file to see each line, fix them, and prepare again"
        )
    return Screened(clean, quarantine, invalid, phi_stats)


def manifest_of(
    o: Options, key: DataKey, g: Gathered, sc: Screened, parts: dict, carried: Counter, files: dict
) -> PrepareManifest:
    per_split = {s: dict(sorted(Counter(e.task for e in parts[s]).items())) for s in SPLITS}
    phrasing_slices = Counter((e.task, slice_of(e.phrasing)) for e in parts["test"] if slice_of(e.phrasing))
    return PrepareManifest(
        tool="clinitune",
        tool_version=__version__,
        seed=o.seed,
        # Pseudonyms, surrogates, date shifts and groups are keyed by a secret that is not in this file.
        key=keys.describe(key),
        source=g.source_desc,
        # notes count caveats, per source item (object, line, row, patient)
        source_counts=g.source_counts,
        tasks=o.tasks,
        augment=o.do_augment,
        max_examples=o.max_examples,
        codebook=g.use_codebook,
        group_by=o.group_by,
        split=list(o.ratios),
        limits={
            "min_instruction": o.limits.min_instruction,
            "min_output": o.limits.min_output,
            "max_output": o.limits.max_output,
        },
        counts={**dict(g.counts), "per_split": per_split, "total": {s: len(parts[s]) for s in SPLITS}},
        balance=quality.balance([e for s in SPLITS for e in parts[s]]),
        phi={**sc.phi_stats, "screen": phi.describe()},
        phi_findings_by_type=sc.phi_stats["examples_by_type"],
        carried_fields=dict(sorted(carried.items())),
        test_phrasings={
            t: {sl: phrasing_slices[(t, sl)] for sl in (SEEN, HELD_OUT)}
            for t in sorted({t for t, _ in phrasing_slices})
        },
        # Only the splits are vouched for (manifest.vouched reads "files"); the quarantine, the invalid and
        # rejected lines were never screened clean, so they sit under a key the PHI gate never accepts.
        files={name: _entry(text) for name, text in sorted(files.items()) if name in SPLIT_FILES},
        unscreened_files={name: _entry(text) for name, text in sorted(files.items()) if name not in SPLIT_FILES},
    )


def write_dataset(out: Path, files: dict[str, str]) -> None:
    """All files or none: written into a fresh directory beside `out`, then swapped in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def report(m: PrepareManifest) -> str:
    c = m.counts
    lines = [
        "# clinitune prepare report",
        "",
        f"- tool version: {m.tool_version}",
        f"- seed: {m.seed}",
        f"- source: {json.dumps(m.source)}",
        f"- tasks: {', '.join(m.tasks)}",
        "",
        "## Counts",
        "",
        "| step | count |",
        "|---|---|",
    ]
    for k in COUNT_KEYS:
        if c.get(k) is not None:
            lines.append(f"| {k} | {c[k]} |")
    sc = m.source_counts
    if sc:
        lines += ["", "## What the source held (read = used + rejected + skipped)", "", "| item | count |", "|---|---|"]
        lines += [f"| read | {sc['items_read']} |", f"| used | {sc['items_used']} |"]
        lines += [f"| rejected: {k} | {n} |" for k, n in sc["rejected"].items()]
        lines += [f"| skipped: {k} | {n} |" for k, n in sc["skipped"].items()]
        lines += [f"| note: {k} | {n} |" for k, n in sc["notes"].items()]
    lines += ["", "## Examples per task and split", "", "| task | train | eval | test |", "|---|---|---|---|"]
    tasks = sorted({t for s in SPLITS for t in c["per_split"][s]})
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(str(c["per_split"][s].get(t, 0)) for s in SPLITS) + " |")
    lines.append("| **total** | " + " | ".join(str(c["total"][s]) for s in SPLITS) + " |")
    if m.test_phrasings:
        lines += ["", "## Test examples by phrasing (held out: a phrasing training never saw)", ""]
        lines += ["| task | seen | held out |", "|---|---|---|"]
        lines += [f"| {t} | {v[SEEN]} | {v[HELD_OUT]} |" for t, v in m.test_phrasings.items()]
    lines += [
        "",
        f"## PHI findings (action: {m.phi['action']}; examples and identifiers, by type)",
        "",
        "| type | examples | identifiers |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {n} | {m.phi['hits_by_type'].get(t, 0)} |" for t, n in m.phi["examples_by_type"].items()] or [
        "| none | 0 | 0 |"
    ]
    lines += ["", "## Files", "", "| file | lines | sha256 |", "|---|---|---|"]
    every = {**m.files, **(m.unscreened_files or {})}
    lines += [f"| {f} | {v['lines']} | `{v['sha256']}` |" for f, v in sorted(every.items())]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ validate FILE


def validate_file(path: Path, limits: quality.Limits = quality.Limits()) -> dict:
    """Quality gate + PHI screen for a JSONL file of examples (any shape), 1-based lines.

    The PHI screen here is the one `prepare` and `train` run, on the same texts, so the three agree."""
    if not path.is_file():
        raise ClinituneError(f"{path}: no such file; check the path")
    phi.check_available()
    result = {"examples": 0, "invalid": [], "phi": [], "duplicates": []}
    parsed: list[tuple[int, Example]] = []
    for n, obj, error in json_lines(path):
        result["examples"] += 1
        if error:
            result["invalid"].append({"line": n, "reasons": [error]})
            continue
        try:
            ex = parse_example(obj, f"{path}:{n}")
        except ExampleError as exc:
            result["invalid"].append({"line": n, "reasons": [str(exc).removeprefix(f"{path}:{n}: ")]})
            continue
        reasons = quality.example_problems(ex, limits)
        if reasons:
            result["invalid"].append({"line": n, "reasons": reasons})
        parsed.append((n, ex))
    if result["examples"] == 0:
        raise ClinituneError(f"{path}: no examples in the file; an empty file is not a valid dataset")
    result["duplicates"] = [
        {"line": parsed[i][0], "first": parsed[j][0], "kind": kind}
        for i, j, kind in quality.duplicates([e for _, e in parsed])
    ]
    hits = phi.screen_examples([ex for _, ex in parsed], progress=False)
    for (n, _), found in zip(parsed, hits):
        if found:
            result["phi"].append(
                {"line": n, "types": sorted({h.type for h in found}), "where": sorted({h.where for h in found})}
            )
    return result
