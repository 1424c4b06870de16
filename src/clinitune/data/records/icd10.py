"""ICD-10-CM, the code table the tasks, the synthesizer, the metrics and the PHI vocabulary read.

simple_icd_10_cm parses its whole table when it is imported (about 4 s on a 2-core CPU). Every process that
imports clinitune without needing a code (each training rank, each CLI call) would pay for it, so the table is
imported on first use, here and nowhere else.
"""

from __future__ import annotations

import functools
import importlib


@functools.cache
def table():
    return importlib.import_module("simple_icd_10_cm")


def description(code: str) -> str:
    return table().get_description(code)


def is_valid(code: str) -> bool:
    return table().is_valid_item(code)


def is_leaf(code: str) -> bool:
    return table().is_leaf(code)


def all_codes() -> list[str]:
    """Every chapter, block, category and code, without dots."""
    return table().get_all_codes(with_dots=False)
