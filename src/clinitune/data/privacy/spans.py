"""What a PHI detector returns, and the one protocol every detector follows.

A detector takes a batch of texts and returns, per text, typed spans with scores; it has a name and a version
for the manifest. The screen (phi.py) unions the detectors in detectors.REGISTRY, so adding one is one
module with a class like those below and one registry line.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol


@dataclass(frozen=True)
class Finding:
    type: str  # one of phi.SAFE_HARBOR_TYPES
    start: int
    end: int
    score: float


class Detector(Protocol):
    name: str

    def version(self) -> str:
        """What the manifest records: the package or model version that produced the spans."""
        ...

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        """Per text, every span this detector finds; callers never log the text."""
        ...


def package_version(pkg: str) -> str:
    """An installed package's version for a detector's `version()`, or "missing"."""
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "missing"
