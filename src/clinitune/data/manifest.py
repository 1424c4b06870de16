"""Which data files a `prepare` manifest vouches for, and the PHI gate for files it does not.

`prepare` screens every text before it writes a split and records each file's sha256 in manifest.json.
A data file whose hash matches the manifest beside it was screened; any other file (a user's own JSONL
handed straight to `train`) is screened where it enters, with the same screen `validate` runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ClinituneError
from ..layout import SPLIT_FILES, DataDir
from ..paths import sha256_file
from .example import read_jsonl
from .privacy import phi


def listed_sha256(path: Path) -> str | None:
    """The sha256 the manifest.json beside `path` records for it, if one does."""
    m = DataDir(path.parent).manifest
    if not m.is_file():
        return None
    try:
        entry = json.loads(m.read_text(encoding="utf-8")).get("files", {}).get(path.name)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return entry.get("sha256") if isinstance(entry, dict) else None


def vouched(path: Path, label: str = "data.train") -> bool:
    """True when the manifest.json beside `path` lists it with this exact content. A file the manifest lists
    with other content is refused: the directory mixes two datasets (an interrupted or overlapping write)."""
    if path.name not in SPLIT_FILES:
        return False  # quarantine.jsonl and the rest were never screened clean, whatever a manifest says
    listed = listed_sha256(path)
    if listed is None:
        return False
    if listed != sha256_file(path):
        raise ClinituneError(
            f"{label} {path}: differs from the {path.name} its manifest ({DataDir(path.parent).manifest}) lists, "
            "so the directory mixes two datasets; run clinitune prepare again into it, or move the file elsewhere"
        )
    return True


@dataclass
class GateResult:
    path: str
    status: (
        str  # "manifest" (prepare screened it), "clean" (screened here, nothing found), "overridden" (found, allowed)
    )
    flagged_lines: list[int] = field(default_factory=list)
    hits_by_type: dict[str, int] = field(default_factory=dict)


_SCREENED: dict[tuple[str, str], GateResult] = {}  # (path, sha256): screened once per process (CLI, then the loop)


def phi_gate(path: str | Path, allow_phi: bool, label: str = "data.train") -> GateResult:
    """Screen a data file unless a manifest vouches for it; refuse on a hit unless `allow_phi`."""
    p = Path(path)
    if vouched(p, label):
        return GateResult(str(p), "manifest")
    key = (str(p.resolve()), sha256_file(p))
    if key not in _SCREENED:
        _SCREENED[key] = _screen_file(p)
    result = GateResult(**asdict(_SCREENED[key]))
    if not result.flagged_lines:
        return result
    if allow_phi:
        result.status = "overridden"
        return result
    n = result.flagged_lines[0]
    kinds = ", ".join(f"{t} {k}" for t, k in result.hits_by_type.items())
    raise ClinituneError(
        f"{label} {p}: the PHI screen flags {len(result.flagged_lines)} example(s) ({kinds}); first at {p}:{n}. "
        f"No manifest from clinitune prepare vouches for this file. "
        f"Run clinitune prepare --source jsonl --path {p} to quarantine or redact them, "
        "or pass --allow-phi (data.allow_phi: true) to train on it anyway; the run records that."
    )


def _screen_file(p: Path) -> GateResult:
    phi.check_available()
    rows = list(read_jsonl(p))
    hits = phi.screen_examples([ex for _, ex in rows])
    flagged = [(n, found) for (n, _), found in zip(rows, hits) if found]
    by_type: dict[str, int] = {}
    for _, found in flagged:
        for t in {h.type for h in found}:
            by_type[t] = by_type.get(t, 0) + 1
    result = GateResult(str(p), "clean", [n for n, _ in flagged], dict(sorted(by_type.items())))
    return result
