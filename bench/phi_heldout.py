"""The PHI screen on notes its authors never saw: planted identifiers gone, clean notes untouched.

The sets (tests/data/phi_heldout/) were written by helpers who read none of clinitune's code, from the
format in tests/data/phi_heldout/SPEC.md, and committed before any tuning: dev/ is the set tuned against,
final/ was scored once for the claim. Each note becomes one example (the note as the instruction's input)
and goes through the real `clinitune prepare --source jsonl --phi-action redact` (or `--phi-action mask`);
the splits it writes (train, eval, test) are then searched for every planted value.

A planted identifier leaks when, in its note's output, its text survives (case and spacing ignored), its
digits survive for a numeric kind (123-45-6789 written 123456789), or two of its distinctive words
survive for a name or place. A clean note is changed when its output differs from its input at all.

    python bench/phi_heldout.py tests/data/phi_heldout/dev/*.jsonl [--action redact] [--misses 40] [--json out.json]
    python bench/phi_heldout.py --names tests/data/phi_heldout/final/names.jsonl

Prints a Markdown table per kind with Wilson 95 % intervals, the clean-notes line, notes per second through
prepare, and the misses.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from clinitune.data.example import group_of
from clinitune.data.privacy import keys, phi
from clinitune.stats import wilson

INSTRUCTION = "Summarize this clinical note in one sentence."
NUMERIC = {"PHONE", "FAX", "SSN", "MRN", "HEALTH_PLAN", "ACCOUNT", "LICENSE", "DEVICE", "IP", "OTHER_ID", "VEHICLE"}
STOP = set("the and of at on in for with from to dr mr mrs ms st ave road rd apt suite unit county city".split())


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower()).strip()


def words(s: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", norm(s)) if len(w) >= 3 and w not in STOP]


def leaked(value: str, kind: str, out: str) -> str | None:
    """How a planted value survives in the output, or None when it is gone."""
    o = norm(out)
    if norm(value) in o and re.search(r"(?<![a-z0-9])" + re.escape(norm(value)) + r"(?![a-z0-9])", o):
        return "exact"
    digits = re.sub(r"\D", "", value)
    if kind in NUMERIC and len(digits) >= 4 and re.search(r"[^0-9A-Za-z]{0,2}".join(digits), out):
        return "digits"
    toks = words(value)
    if kind in ("NAME", "LOCATION") and len(toks) >= 2:
        kept = [t for t in toks if re.search(rf"\b{re.escape(t)}\b", o)]
        if len(kept) >= 2:
            return "tokens"
    return None


def load(paths: list[Path]) -> list[dict]:
    notes = []
    for p in paths:
        for line in p.read_text().splitlines():
            if line.strip():
                notes.append(json.loads(line))
    return notes


def run_prepare(notes: list[dict], action: str, workdir: Path) -> tuple[dict[str, str], float]:
    """Each note through `clinitune prepare`; returns note id -> the note as written to a split."""
    src = workdir / "notes.jsonl"
    src.write_text(
        "".join(
            json.dumps({"note": n["id"], "instruction": INSTRUCTION, "input": n["text"], "output": "See the note."})
            + "\n"
            for n in notes
        )
    )
    out = workdir / "data"
    key_file = workdir / "data.key"
    cmd = [
        sys.executable,
        "-m",
        "clinitune.cli",
        "prepare",
        "--source",
        "jsonl",
        "--path",
        str(src),
        "--out",
        str(out),
        "--phi-action",
        action,
        "--group-by",
        "note",
        "--key-file",
        str(key_file),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    # prepare stores each group as a keyed hash of --group-by's value: the key file is what lets us map them back
    key = keys.load_or_create(key_file)
    note_of = {keys.keyed_group(group_of(n["id"]), key): n["id"] for n in notes}
    got = {}
    for split in ("train", "eval", "test"):
        f = out / f"{split}.jsonl"
        for line in f.read_text().splitlines() if f.exists() else []:
            ex = json.loads(line)
            got[note_of[ex["group"]]] = ex["input"]
    return got, seconds


def score(notes: list[dict], got: dict[str, str]) -> dict:
    per_kind: Counter = Counter()
    leaks_by_kind: Counter = Counter()
    misses, changed, clean, missing = [], [], 0, []
    for n in notes:
        out = got.get(n["id"])
        if out is None:
            missing.append(n["id"])
            continue
        if not n["phi"]:
            clean += 1
            if out != n["text"]:
                changed.append((n["id"], n["text"], out))
            continue
        for item in n["phi"]:
            per_kind[item["type"]] += 1
            how = leaked(item["value"], item["type"], out)
            if how:
                leaks_by_kind[item["type"]] += 1
                misses.append((n["id"], item["type"], item["value"], how))
    return {
        "per_kind": per_kind,
        "leaks": leaks_by_kind,
        "misses": misses,
        "changed": changed,
        "clean": clean,
        "missing": missing,
    }


def merged(findings: list) -> list:
    """Overlapping findings as one span: several detectors finding one name is one finding, as redaction sees it."""
    out: list = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if out and f.start < out[-1].end:
            out[-1] = type(f)(f.type, out[-1].start, max(out[-1].end, f.end), f.score)
        else:
            out.append(f)
    return out


def score_names(rows: list[dict]) -> dict:
    """Name spans in lines (`{"text", "names"}`): recall counts a planted name that a NAME finding overlaps,
    precision counts NAME findings that overlap a planted name; a finding on a clean line is a false alarm."""
    found = phi.screen_texts([r["text"] for r in rows])
    tp = planted = hits = alarms = 0
    misses, false = [], []
    for r, fs in zip(rows, found):
        spans = [(m.start(), m.end()) for name in set(r["names"]) for m in re.finditer(re.escape(name), r["text"])]
        names = merged([f for f in fs if f.type == "NAME"])
        for name in r["names"]:
            planted += 1
            at = [(a, b) for a, b in spans if r["text"][a:b] == name]
            if any(f.start < b and a < f.end for a, b in at for f in names):
                tp += 1
            else:
                misses.append((r["id"], name))
        for f in names:
            if any(f.start < b and a < f.end for a, b in spans):
                hits += 1
            else:
                alarms += 1
                false.append((r["id"], r["text"][f.start : f.end]))
    return {
        "planted": planted,
        "found": tp,
        "true_findings": hits,
        "false_findings": alarms,
        "misses": misses,
        "false": false,
        "clean_lines": sum(not r["names"] for r in rows),
        "clean_flagged": sum(1 for r, fs in zip(rows, found) if not r["names"] and any(f.type == "NAME" for f in fs)),
    }


def names_table(s: dict) -> str:
    r_lo, r_hi = wilson(s["found"], s["planted"])
    n_find = s["true_findings"] + s["false_findings"]
    p_lo, p_hi = wilson(s["true_findings"], n_find)
    return "\n".join(
        [
            "| measure | k | n | value | 95 % interval |",
            "|---|---|---|---|---|",
            f"| name recall | {s['found']} | {s['planted']} | {s['found'] / s['planted']:.3f} | "
            f"{r_lo:.3f}-{r_hi:.3f} |",
            f"| name precision | {s['true_findings']} | {n_find} | {s['true_findings'] / max(n_find, 1):.3f} | "
            f"{p_lo:.3f}-{p_hi:.3f} |",
            f"| clean lines flagged | {s['clean_flagged']} | {s['clean_lines']} | "
            f"{s['clean_flagged'] / max(s['clean_lines'], 1):.3f} | |",
        ]
    )


def table(s: dict) -> str:
    rows = ["| kind | planted | gone | recall | 95 % interval |", "|---|---|---|---|---|"]
    total = sum(s["per_kind"].values())
    gone_total = total - sum(s["leaks"].values())
    for kind, n in sorted(s["per_kind"].items(), key=lambda kv: -kv[1]):
        gone = n - s["leaks"][kind]
        lo, hi = wilson(gone, n)
        rows.append(f"| {kind} | {n} | {gone} | {gone / n:.3f} | {lo:.3f}-{hi:.3f} |")
    lo, hi = wilson(gone_total, total)
    rows.append(f"| **all** | {total} | {gone_total} | {gone_total / max(total, 1):.3f} | {lo:.3f}-{hi:.3f} |")
    ch, cl = len(s["changed"]), s["clean"]
    lo, hi = wilson(ch, cl)
    rows.append(f"\nClean notes changed: {ch} of {cl} ({ch / max(cl, 1):.3f}, 95 % interval {lo:.3f}-{hi:.3f})")
    if s["missing"]:
        rows.append(f"Notes missing from every split: {len(s['missing'])} ({', '.join(s['missing'][:5])})")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--action", default="redact", choices=("redact", "mask"))
    ap.add_argument("--misses", type=int, default=40)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--names", action="store_true", help="the paths are name-span lines ({text, names})")
    args = ap.parse_args()
    notes = load(args.paths)
    if args.names:
        t0 = time.perf_counter()
        s = score_names(notes)
        print(f"{len(notes)} lines from {', '.join(p.name for p in args.paths)} in {time.perf_counter() - t0:.1f} s\n")
        print(names_table(s))
        for nid, name in s["misses"][: args.misses]:
            print(f"  missed {nid} {name!r}")
        for nid, span in s["false"][: args.misses]:
            print(f"  false alarm {nid} {span!r}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        got, seconds = run_prepare(notes, args.action, Path(tmp))
    s = score(notes, got)
    print(f"{len(notes)} notes from {', '.join(p.name for p in args.paths)}; prepare --phi-action {args.action}\n")
    print(table(s))
    print(
        f"\nprepare took {seconds:.1f} s for {len(notes)} notes ({len(notes) / seconds:.0f} notes/s, start-up included)"
    )
    for nid, kind, value, how in s["misses"][: args.misses]:
        print(f"  leak {nid} {kind} {value!r} ({how})")
    for nid, before, after in s["changed"][: args.misses]:
        diff = [(a, b) for a, b in zip(before.split(), after.split()) if a != b][:4]
        print(f"  changed {nid}: {diff}")
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in s.items()}, indent=1, default=list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
