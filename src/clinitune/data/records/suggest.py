"""`clinitune prepare --suggest-map FILE`: a starting field map written from a file's own keys."""

from __future__ import annotations

import difflib
from itertools import islice
from pathlib import Path

from ...errors import ClinituneError
from ..jsonio import decode, json_lines, utf8_text
from .mapping import ITEM_FIELDS, LISTS, PATIENT_FIELDS, TABLE_FIELDS, WHAT, get, leaves
from .sources import csv_rows


def _shape(objs: list) -> tuple[set[str], dict[str, set[str]]]:
    """(dotted scalar paths, {list path: keys of its items}) over some records."""
    scalars: set[str] = set()
    lists: dict[str, set[str]] = {}
    for obj in objs:
        if not isinstance(obj, dict):
            continue
        for leaf in leaves(obj):
            value = get(obj, leaf)
            if isinstance(value, list) and (not value or any(isinstance(v, dict) for v in value)):
                lists.setdefault(leaf, set()).update(k for v in value if isinstance(v, dict) for k in v)
            else:
                scalars.add(leaf)
    return scalars, lists


def _guess(key: str, names: tuple[str, ...], have: set[str]) -> tuple[str | None, bool]:
    """(the path for `key`, whether it is a known spelling) or a close match to check by eye."""
    hit = next((n for n in names if n in have), None)
    if hit:
        return hit, True
    wanted = {n.rpartition(".")[2].lower() for n in (key, *names)}

    def score(h: str) -> float:
        leaf = h.rpartition(".")[2].lower()
        return max(difflib.SequenceMatcher(None, leaf, w).ratio() for w in wanted)

    best = max(sorted(have), key=score, default=None)
    return (best, False) if best is not None and score(best) >= 0.7 else (None, False)


def suggest_map(path: Path, objs: list | None = None, header: list[str] | None = None) -> str:
    """A starting --map file for a JSON/JSONL file's records (`objs`) or a CSV's columns (`header`): known
    spellings filled in, close matches marked to check, every field nothing matched left as a comment."""
    lines = [f"# clinitune field map for {path}", "# field: path (dotted into nested JSON; a column name for CSV)", ""]
    placed: set[str] = set()

    def line(key: str, hit: str | None, known: bool) -> None:
        if hit is None:
            what = WHAT.get(key, key.replace(".", " ").replace("_", " "))
            lines.append(f"# {key}: ?  # not found; name the field that holds the {what}")
        else:
            placed.add(hit)
            lines.append(f"{key}: {hit}" + ("" if known else "  # a guess: check it"))

    if header is not None:
        have = set(header)
        for key in (*PATIENT_FIELDS, *TABLE_FIELDS):
            line(key, *_guess(key, PATIENT_FIELDS.get(key) or TABLE_FIELDS[key], have - placed))
        rest = [c for c in header if c not in placed]
    else:
        scalars, lists = _shape(objs or [])
        for key, names in PATIENT_FIELDS.items():
            line(key, *_guess(key, names, scalars - placed))
        rest = sorted(s for s in scalars if s not in placed)
        for lst, names in LISTS.items():
            hit, known = _guess(lst, names, set(lists))
            line(lst, hit, known)
            for f, aliases in ITEM_FIELDS[lst].items() if hit else ():
                taken = {k.rpartition("[].")[2] for k in placed if k.startswith(f"{hit}[].")}
                item_hit, item_known = _guess(f, aliases, lists[hit] - taken)
                line(f"{lst}.{f}", item_hit, item_known)
                placed.add(f"{hit}[].{item_hit}")
            rest += [f"{hit}[].{k}" for k in sorted(lists.get(hit, ())) if f"{hit}[].{k}" not in placed] if hit else []
        rest += [lst for lst in lists if lst not in placed]
    lines += ["", "# read by no field (identifiers stay unread on purpose):"] + [f"#   {r}" for r in rest]
    return "\n".join(lines) + "\n"


def suggest_for(path: Path, sample: int = 500) -> str:
    """The starting map for a CSV, JSON or JSONL file, from its header or its first `sample` records."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header, _ = csv_rows(path)
        return suggest_map(path, header=header)
    if path.suffix.lower() == ".jsonl":
        objs = [obj for _, obj, error in islice(json_lines(path), sample) if not error]
    else:
        data, error = decode(utf8_text(path))
        if error:
            raise ClinituneError(f"{path}: {error}")
        objs = (data if isinstance(data, list) else [data])[:sample]
    if not any(isinstance(o, dict) for o in objs):
        raise ClinituneError(f"{path}: no JSON object to read keys from; --suggest-map takes a CSV, JSON or JSONL file")
    return suggest_map(path, objs=objs)
