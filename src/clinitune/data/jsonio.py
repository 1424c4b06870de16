"""Reading untrusted input files within limits. Every reader of JSON and JSONL input goes through here (and
the CSV reader through `utf8_text`), so each refuses the same bad file with the same one line (file, line,
the fix), and none holds an over-long line or an over-deep document in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import ClinituneError

MAX_LINE_CHARS = 1_000_000  # one JSONL line: far past any example; the NLP models' own limit per text
MAX_DEPTH = 64  # JSON nesting: a FHIR resource nests about 8 deep


def depth(value) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is not None:
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in children)
    return deepest


def decode(text: str) -> tuple[object, str | None]:
    """(value, None) or (None, why not): one JSON document held to the input limits, so every reader
    refuses the same nesting with the same words."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); is it truncated?"
    except RecursionError:
        return None, f"JSON nested too deeply (the limit is {MAX_DEPTH} levels); flatten the record"
    if depth(value) > MAX_DEPTH:
        return None, f"JSON nested {depth(value)} levels deep (the limit is {MAX_DEPTH}); flatten the record"
    return value, None


def bounded_lines(f, limit: int) -> Iterator[str | None]:
    """Each line of a text file, or None for a line longer than `limit` characters, which is read past in
    blocks and never held whole (a 2 GB line costs no memory)."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith("\n") and len(line) == limit + 1:
            yield line
            continue
        while line and not line.endswith("\n"):
            line = f.readline(1 << 20)
        yield None


def utf8_text(path) -> str:
    """A whole input file as text; a missing, unreadable or non-UTF-8 file is a one-line error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClinituneError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ClinituneError(f"{path}: is a directory; expected a file") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise ClinituneError(f"{path}:{line}: not UTF-8 text; re-save the file as UTF-8") from None


def json_lines(path) -> Iterator[tuple[int, object, str | None]]:
    """(line number, value, None), or (line number, None, why it is not JSON), for each non-blank line.
    Every JSONL reader goes through here, so each says the same thing about the same bad line."""
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise ClinituneError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ClinituneError(f"{path}: is a directory; expected a JSONL file") from None
    with f:
        n = 0
        try:
            for n, line in enumerate(bounded_lines(f, MAX_LINE_CHARS), 1):
                if line is None:
                    yield (
                        n,
                        None,
                        (
                            f"line longer than {MAX_LINE_CHARS:,} characters; one example is far shorter: is this "
                            "file JSONL (one example per line)?"
                        ),
                    )
                    continue
                if not line.strip():
                    continue
                value, error = decode(line)
                yield n, value, error
        except UnicodeDecodeError:
            raise ClinituneError(f"{path}:{n + 1}: not UTF-8 text; re-save the file as UTF-8") from None
