"""Recall and precision of the PHI screen on the labelled set (tests/data/phi_labelled.jsonl).

A snippet counts as flagged when the screen finds any identifier in it; recall also requires the
labelled type among the types found. Prints both numbers and the misses, by type.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from clinitune.data.phi import screen, types_of

CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "phi_labelled.jsonl"


def score(rows: list[dict]) -> dict:
    tp = fp = fn = 0
    misses, false_alarms = [], []
    per_type = Counter()
    for r in rows:
        found = types_of(screen(r["text"]))
        if r["phi"]:
            hit = bool(set(r["types"]) & set(found))
            tp += hit
            fn += not hit
            per_type[r["types"][0]] += hit
            if not hit:
                misses.append((r["types"][0], found, r["text"]))
        elif found:
            fp += 1
            false_alarms.append((found, r["text"]))
    return {"snippets": len(rows), "with_phi": tp + fn, "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1),
            "misses": misses, "false_alarms": false_alarms}


def main() -> int:
    rows = [json.loads(line) for line in CASES.read_text().splitlines()]
    s = score(rows)
    print(f"| snippets | with PHI | recall | precision |\n|---|---|---|---|\n| {s['snippets']} | {s['with_phi']} | {s['recall']:.3f} | {s['precision']:.3f} |")
    for kind, found, text in s["misses"]:
        print(f"MISS {kind}: found {found} in {text!r}")
    for found, text in s["false_alarms"]:
        print(f"FALSE ALARM {found}: {text!r}")
    return 0 if s["recall"] >= 0.99 and s["precision"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
