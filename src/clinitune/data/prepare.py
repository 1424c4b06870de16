"""`clinitune prepare`: records to PHI-screened, quality-gated, split and versioned instruction data.

Order matters for privacy: records are de-identified field by field before any text is
rendered, then every rendered example is screened, and anything the screen flags is
quarantined before the split, so it can never reach train, eval or test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..errors import ClinituneError
from ..paths import atomic_write_text
from . import phi, quality, sources
from .deid import deidentify
from .split import SPLITS, split
from .tasks import PATIENT_TASKS, TASKS, SqlStats, codebook, example, knowledge, text_to_sql

log = logging.getLogger(__name__)


def parse_tasks(text: str | None) -> list[str]:
    if not text:
        return list(TASKS)
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise ClinituneError(f"--tasks: unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    return chosen


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ------------------------------------------------------------------ augmentation

REPHRASE = [("Generate a", "Create a"), ("Create a", "Generate a"), ("What ICD-10 code represents", "Which ICD-10 code describes"),
            ("What is the ICD-10-CM code for", "Give the ICD-10-CM code for"), ("What does ICD-10-CM code", "What does the ICD-10-CM code"),
            ("Validate this patient record", "Review this patient record"), ("Extract the", "Pull out the"), ("Convert this", "Turn this")]
AGE_RE = re.compile(r"\b(\d{1,2})-year-old\b")


def augment(examples: list[dict], seed: int) -> list[dict]:
    """The seed's augmentation: a rephrased instruction, and for records a shifted age. Same group, so never across splits."""
    from .coherence import check_record
    from .sources import _nested_patient

    out = []
    for ex in examples:
        rng = random.Random(f"{seed}:augment:{ex['id']}")
        for old, new in REPHRASE:
            if ex["instruction"].startswith(old):
                out.append({**example(ex["task"], ex["group"], new + ex["instruction"][len(old):], ex["output"], ex["input"]), "augmented": True})
                break
        m = AGE_RE.search(ex["instruction"])
        if ex["task"] == "record_generation" and m:
            rec = json.loads(ex["output"])
            age = int(m.group(1)) + rng.choice((-3, -2, -1, 1, 2, 3))
            if isinstance(rec.get("age"), int) and 18 <= age <= 89:
                rec["age"] = age
                if not check_record(_nested_patient(rec)):  # the new age must still fit every diagnosis
                    instr = AGE_RE.sub(f"{age}-year-old", ex["instruction"], count=1)
                    out.append({**example(ex["task"], ex["group"], instr, json.dumps(rec, ensure_ascii=False), ex["input"]), "augmented": True})
    return examples + out


# ------------------------------------------------------------------ pipeline


def build_examples(loaded_records, tasks: list[str], seed: int, stats: SqlStats | None, counts: Counter, progress: bool):
    """Yield (example, extra names to screen for) for each patient-derived example."""
    salt = f"clinitune:{seed}"
    for p in tqdm(loaded_records, desc="build", unit="patient", disable=not progress):
        counts["records"] += 1
        if stats is not None:
            stats.add(p)
        rec = deidentify(p, salt)
        group = rec["patient_id"]
        names = tuple(n for n in (p.first_name, p.last_name) if n)
        for task in tasks:
            builder = PATIENT_TASKS.get(task)
            if builder:
                for ex in builder(rec, group, random.Random(f"{seed}:{group}:{task}")):
                    yield ex, names


CANARY_INSTRUCTION = "What is the access code for the records archive?"
CANARY_TEMPLATE = "The access code for the records archive is {secret}."
CANARY_REPEATS = (1, 4, 16, 32)


def plant_canaries(train: list[dict], k: int, seed: int) -> dict:
    """Carlini et al.'s canaries: random secrets, each repeated a set number of times, in train only."""
    rng = random.Random(f"{seed}:canaries")
    spec = []
    for i in range(k):
        secret = f"{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"
        repeats = CANARY_REPEATS[i % len(CANARY_REPEATS)]
        instruction = f"{CANARY_INSTRUCTION} (vault {i + 1})"
        ex = example("canary", f"canary:{i}", instruction, CANARY_TEMPLATE.format(secret=secret))
        train.extend({**ex, "id": f"{ex['id']}-{r}"} for r in range(repeats))
        spec.append({"secret": secret, "instruction": instruction, "template": CANARY_TEMPLATE, "repeats": repeats})
    return {"canaries": spec}


def prepare(*, source: str, db: str | None, path: str | Path | None, out: Path, tasks: list[str], seed: int,
            max_examples: int | None = None, do_augment: bool = False, skip_invalid: bool = False,
            progress: bool = True, limits: quality.Limits = quality.Limits(), canaries: int = 0,
            use_codebook: bool = True) -> dict:
    phi.check_available()  # fail closed before reading a single record
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts: Counter = Counter()
    stats = SqlStats() if source == "database" and "text_to_sql" in tasks else None

    candidates: list[tuple[dict, tuple]] = []
    if source == "database":
        if not db:
            raise ClinituneError("--source database needs --db URL (e.g. sqlite:///data/clinic.db)")
        records = sources.iter_database(db)
        source_desc = {"kind": "database", "url": _masked(db)}
        loaded = None
    else:
        loaded = sources.load(source, path=path)
        sources.check_rejects(loaded, skip_invalid, out / "rejects.jsonl", label=str(path))
        records = loaded.records
        source_desc = {"kind": source, "path": str(path), "ignored": loaded.ignored}
        counts["items_in"] = loaded.items_in
        counts["items_rejected"] = len(loaded.rejects)
        for ex in loaded.examples:
            ex = {**ex}
            task = ex.get("task") or "custom"
            made = example(task, "", ex.get("instruction") or "", ex.get("output") or "", ex.get("input") or "")
            made["group"] = ex.get("group") or f"item:{made['id']}"
            if "messages" in ex:
                made = {**made, "messages": ex["messages"]}
            candidates.append((made, ()))
    if use_codebook and {"icd10_coding", "icd10_lookup"} & set(tasks):
        # First, so that dedupe keeps the table entry and drops a patient example that repeats it word for word.
        candidates.extend((ex, ()) for ex in codebook(random.Random(f"{seed}:codebook")) if ex["task"] in tasks)
    candidates.extend(build_examples(records, tasks, seed, stats, counts, progress))
    if "knowledge" in tasks:
        candidates.extend((ex, ()) for ex in knowledge(random.Random(f"{seed}:knowledge")))
    if stats is not None:
        # One question per two patients keeps the task mix balanced; the DB offers far more.
        candidates.extend((ex, ()) for ex in text_to_sql(stats, db, random.Random(f"{seed}:sql"), limit=max(40, counts["records"] // 2)))
    counts["examples_built"] = len(candidates)

    # quality gate
    invalid, kept = [], []
    for ex, names in candidates:
        reasons = quality.example_problems(ex, limits)
        (invalid.append({**ex, "reasons": reasons}) if reasons else kept.append((ex, names)))
    counts["invalid"] = len(invalid)
    names_of = {ex["id"]: names for ex, names in kept}
    deduped, counts["duplicates_exact"], counts["duplicates_near"] = quality.dedupe([ex for ex, _ in kept])

    # PHI screen on every example: a finding quarantines it.
    clean, quarantine, by_type = [], [], Counter()
    for ex in tqdm(deduped, desc="phi screen", unit="example", disable=not progress):
        findings = []
        for fieldname in ("instruction", "input", "output"):
            for f in phi.screen(ex.get(fieldname) or "", names_of.get(ex["id"], ())):
                findings.append({"field": fieldname, "type": f.type, "start": f.start, "end": f.end})
        if findings:
            by_type.update({f["type"] for f in findings})
            quarantine.append({**ex, "phi_findings": findings})
        else:
            clean.append(ex)
    counts["quarantined"] = len(quarantine)

    if max_examples is not None and len(clean) > max_examples:
        clean = sorted(clean, key=lambda e: hashlib.sha256(f"{seed}:{e['id']}".encode()).hexdigest())[:max_examples]
        clean.sort(key=lambda e: e["id"])
    parts = split(clean, seed)
    if do_augment:
        parts = {s: augment(rows, seed) for s, rows in parts.items()}
    canary_spec = plant_canaries(parts["train"], canaries, seed) if canaries else None
    for s in SPLITS:
        random.Random(f"{seed}:order:{s}").shuffle(parts[s])

    files = {f"{s}.jsonl": _jsonl(parts[s]) for s in SPLITS}
    files["quarantine.jsonl"] = _jsonl(quarantine)
    if invalid:
        files["invalid.jsonl"] = _jsonl(invalid)
    if canary_spec:
        files["canaries.json"] = json.dumps(canary_spec, indent=2) + "\n"
    for name, text in files.items():
        atomic_write_text(out / name, text)
    per_split = {s: dict(sorted(Counter(e["task"] for e in parts[s]).items())) for s in SPLITS}
    manifest = {
        "tool": "clinitune", "tool_version": __version__, "seed": seed, "source": source_desc, "tasks": tasks,
        "augment": do_augment, "max_examples": max_examples, "codebook": use_codebook,
        "limits": {"min_instruction": limits.min_instruction, "min_output": limits.min_output, "max_output": limits.max_output},
        "counts": {**dict(counts), "per_split": per_split, "total": {s: len(parts[s]) for s in SPLITS}},
        "balance": quality.balance([e for s in SPLITS for e in parts[s]]),
        "phi_findings_by_type": dict(sorted(by_type.items())),
        "files": {name: {"sha256": _sha256(out / name), "lines": text.count("\n")} for name, text in sorted(files.items())},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    atomic_write_text(out / "report.md", report(manifest))
    return manifest


def _masked(url: str) -> str:
    from .db import _masked as mask

    return mask(url)


def report(m: dict) -> str:
    c = m["counts"]
    lines = ["# clinitune prepare report", "", f"- tool version: {m['tool_version']}", f"- seed: {m['seed']}",
             f"- source: {json.dumps(m['source'])}", f"- tasks: {', '.join(m['tasks'])}", "",
             "## Counts", "", "| step | count |", "|---|---|"]
    for k in ("records", "items_in", "items_rejected", "examples_built", "invalid", "duplicates_exact", "duplicates_near", "quarantined"):
        if c.get(k) is not None:
            lines.append(f"| {k} | {c[k]} |")
    lines += ["", "## Examples per task and split", "", "| task | train | eval | test |", "|---|---|---|---|"]
    tasks = sorted({t for s in SPLITS for t in c["per_split"][s]})
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(str(c["per_split"][s].get(t, 0)) for s in SPLITS) + " |")
    lines.append("| **total** | " + " | ".join(str(c["total"][s]) for s in SPLITS) + " |")
    lines += ["", "## PHI findings (quarantined examples, by type)", "", "| type | examples |", "|---|---|"]
    lines += [f"| {t} | {n} |" for t, n in m["phi_findings_by_type"].items()] or ["| none | 0 |"]
    lines += ["", "## Files", "", "| file | lines | sha256 |", "|---|---|---|"]
    lines += [f"| {f} | {v['lines']} | `{v['sha256']}` |" for f, v in m["files"].items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ validate FILE


def validate_file(path: Path, limits: quality.Limits = quality.Limits()) -> dict:
    """Quality gate + PHI screen for an instruction or chat JSONL file, 1-based lines."""
    if not path.is_file():
        raise ClinituneError(f"{path}: no such file")
    phi.check_available()
    result = {"examples": 0, "invalid": [], "phi": []}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            result["examples"] += 1
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as exc:
                result["invalid"].append({"line": line_no, "reasons": [f"invalid JSON ({exc.msg} at column {exc.colno})"]})
                continue
            reasons = quality.example_problems(ex, limits)
            if reasons:
                result["invalid"].append({"line": line_no, "reasons": reasons})
            if isinstance(ex, dict):
                texts = [m.get("content", "") for m in ex.get("messages", []) if isinstance(m, dict)] if "messages" in ex else \
                    [str(ex.get(k) or "") for k in ("instruction", "input", "output")]
                types = sorted({f.type for t in texts for f in phi.screen(t)})
                if types:
                    result["phi"].append({"line": line_no, "types": types})
    return result
