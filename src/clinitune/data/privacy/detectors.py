"""The PHI screen's detectors, in one registry: each follows spans.Detector, and the screen unions them all.

Adding a detector is one module with a class that has `name`, `version()` and `detect(texts)`, and one line
here. The order is the order of the manifest's `screen.detectors`.
"""

from __future__ import annotations

from . import context, patterns, phi_model, phi_names
from .spans import Detector

REGISTRY: dict[str, type] = {
    "presidio": patterns.PresidioDetector,
    "patterns": patterns.PatternDetector,
    "name_rules": phi_names.NameRulesDetector,
    "context": context.ContextDetector,
    "spacy_ner": phi_names.SpacyNerDetector,
    "learned": phi_model.LearnedDetector,
}


def build(names: tuple[str, ...] | None = None) -> list[Detector]:
    """The registered detectors (all of them unless `names` picks some), constructed once per screen."""
    return [REGISTRY[n]() for n in (names or tuple(REGISTRY))]
