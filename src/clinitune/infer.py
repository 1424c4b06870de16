"""`clinitune infer`: prompts from the command line or a file, screened for PHI, answered by a model.

The backends (transformers or llama.cpp) live in the runtime layer (models/generate.py); this
module holds what `infer` adds: every prompt passes the PHI screen before any model loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import GenerationConfig
from .data.example import parse_prompt
from .data.jsonio import json_lines
from .data.privacy import phi
from .errors import ClinituneError
from .paths import atomic_write_text


def screen_prompt(messages: list[dict], where: str, allow_phi: bool) -> None:
    """A prompt reaches the model only if the PHI screen finds nothing in it, or the user said so."""
    if allow_phi:
        return
    found = phi.screen_texts([m["content"] for m in messages])
    kinds = sorted({f.type for fs in found for f in fs})
    if kinds:
        raise ClinituneError(
            f"{where}: the PHI screen found {', '.join(kinds)}; remove the identifiers, "
            "or pass --allow-phi to send it to the model anyway"
        )


def read_prompts(path: Path, allow_phi: bool = False) -> list[tuple[object, list[dict]]]:
    """(line as given, its messages) for each line of a prompts file, each screened before any model loads."""
    items = []
    for n, item, error in json_lines(path):
        if error:
            raise ClinituneError(f"{path}:{n}: {error}")
        messages = parse_prompt(item, f"{path}:{n}")
        screen_prompt(messages, f"{path}:{n}", allow_phi)
        items.append((item, messages))
    if not items:
        raise ClinituneError(f"{path}: no prompts in the file; give one prompt per line (a string or a chat)")
    return items


def run_file(backend, items: list[tuple[object, list[dict]]], out: Path, gen: GenerationConfig) -> int:
    """Each prompt's line with its `response` added, written atomically to `out`; returns the count."""
    rows = [
        {
            **(item if isinstance(item, dict) else {"prompt": item}),
            "response": backend.chat(messages, gen, stream=False),
        }
        for item, messages in items
    ]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
