"""The PHI screen: HIPAA Safe Harbor's 18 identifier types, found in free text.

The screen is the union of the detectors in detectors.REGISTRY (Presidio's validated recognizers, clinitune's
patterns and context rules, the name rules, spaCy's NER and the learned model the project trains), plus the
screen's own logic: a name inside an address or id is that identifier; a house number before a name is a
street; the record's own names are found wherever they appear; and a span made only of clinical words (a
drug, a weekday, a unit, an eponym) is never a person or a place. Results carry types and spans only;
callers never log the text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from tqdm import tqdm

from ...errors import ClinituneError
from ..example import Example
from . import detectors, phi_vocab, surrogates
from .keys import DataKey
from .patterns import STREET_AFTER_NAME, THRESHOLD
from .phi_names import EPONYM_NOUNS, MONTH_NAMES, TITLES, cued, is_abbreviation, word_class
from .spans import Finding

# Safe Harbor's 18 types, as clinitune names them.
SAFE_HARBOR_TYPES = (
    "NAME",
    "LOCATION",
    "DATE",
    "AGE_OVER_89",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN",
    "ACCOUNT",
    "LICENSE",
    "VEHICLE",
    "DEVICE",
    "URL",
    "IP",
    "BIOMETRIC",
    "PHOTO",
    "OTHER_ID",
)
WINDOW, OVERLAP = 100_000, 1_000  # characters: the NLP models refuse texts past 1M; no identifier is 1,000 long


def screen_texts(
    texts: list[str],
    extra_names: list[tuple[str, ...]] | None = None,
    use_ner: bool = True,
    only: tuple[str, ...] | None = None,
) -> list[list[Finding]]:
    """Every identifier in each text, as types and spans; names from cues, word shape and (batched) NER.
    `extra_names`: per text, the source record's own names, found wherever they appear. A long text is
    screened in overlapping windows, so no length is too long to screen. `only`: these registered detectors
    (for comparing them); the screen itself always runs them all."""
    extra_names = extra_names or [()] * len(texts)
    keys = list(zip(texts, map(tuple, extra_names)))
    unique = list(dict.fromkeys(keys))
    if len(unique) < len(keys):  # prepare's examples repeat their instructions: each distinct text is screened once
        found = dict(zip(unique, screen_texts([t for t, _ in unique], [n for _, n in unique], use_ner, only)))
        return [list(found[k]) for k in keys]
    if all(len(t) <= WINDOW for t in texts):
        return _screen(texts, extra_names, use_ner, only)
    pieces = [
        (i, start)
        for i, t in enumerate(texts)
        for start in (range(0, max(len(t) - OVERLAP, 1), WINDOW - OVERLAP) if len(t) > WINDOW else [0])
    ]
    found = _screen([texts[i][s : s + WINDOW] for i, s in pieces], [extra_names[i] for i, _ in pieces], use_ner, only)
    out: list[set[Finding]] = [set() for _ in texts]
    for (i, s), fs in zip(pieces, found):
        out[i].update(Finding(f.type, f.start + s, f.end + s, f.score) for f in fs)
    return [sorted(fs, key=lambda f: (f.start, f.end, f.type)) for fs in out]


@functools.lru_cache(maxsize=4)
def _detectors(names: tuple[str, ...]) -> list:
    return detectors.build(names)


MODEL_DETECTORS = ("spacy_ner", "learned")
# Detectors trained or written for notes and messages: on JSON and SQL (records, FHIR bundles, queries) they read
# keys, codes and pseudonyms as names and places, so structured text gets the other four.
PROSE_ONLY = ("learned", "context")
STRUCTURED = re.compile(r"[{\[]\s*\"[^\"\n]{1,80}\"\s*[:,\]}]|^\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE)\b", re.I | re.M)


def structured(text: str) -> bool:
    """Whether a text holds JSON or SQL."""
    return bool(STRUCTURED.search(text))


def _screen(
    texts: list[str], extra_names: list[tuple[str, ...]], use_ner: bool, only: tuple[str, ...] | None
) -> list[list[Finding]]:
    names = tuple(n for n in detectors.REGISTRY if (use_ner or n not in MODEL_DETECTORS) and (not only or n in only))
    prose = ["" if structured(t) else t for t in texts]
    per_detector = {d.name: d.detect(prose if d.name in PROSE_ONLY else texts) for d in _detectors(names)}
    return [
        combine(text, {name: found[i] for name, found in per_detector.items()}, own)
        for i, (text, own) in enumerate(zip(texts, extra_names))
    ]


# A name the rules find by word shape alone (no title, label or kinship cue) is kept only where a model agrees,
# or where two of its words are in no dictionary ("Siobhán Ní Bhriain"): one unknown word alone also fits brand
# names, eponymous scores and abbreviations ("Mepilex", "Tyrer-Cuzick", "Fluzone High-Dose").
WEAK_NAME = 0.8  # rule_spans scores shape-only names 0.7-0.75, cued ones 0.8 and up


def two_unknown_words(text: str, f: Finding) -> bool:
    words = re.findall(r"[^\W\d_][\w'’-]*", text[f.start : f.end])
    return sum(word_class(w) == "name" for w in words) >= 2


def combine(text: str, by_detector: dict[str, list[Finding]], own_names: tuple[str, ...] = ()) -> list[Finding]:
    """The screen's logic over every detector's findings in one text."""
    if not text:
        return []
    models = [f for name in MODEL_DETECTORS for f in by_detector.get(name, []) if f.type == "NAME"]
    alone = not any(name in by_detector for name in MODEL_DETECTORS)  # without models, the rules stand alone
    taken = [(f.start, f.end) for fs in by_detector.values() for f in fs if f.type not in ("NAME", "LOCATION")]
    kept = []
    for source, findings in by_detector.items():
        for f in findings:
            if f.type in ("NAME", "LOCATION") and clinical_span(text, f.start, f.end):
                continue  # "Eliquis", "Mondays and Fridays", "Wells": clinical words are never a person or a place
            if f.type == "NAME" and any(a <= f.start and f.end <= b for a, b in taken):
                continue  # a name inside an address, date or id already found is that identifier, not a person
            if source == "name_rules" and f.score < WEAK_NAME and not alone and not two_unknown_words(text, f):
                if not any(m.start < f.end and f.start < m.end for m in models):
                    continue
            # In text typed all in lower case a model's name after "thanks," or "this is" stands on its cue.
            relaxed = f.type == "NAME" and text.islower() and cued(text, f.start)
            if source in MODEL_DETECTORS and not shaped_like(text, f) and not relaxed:
                continue
            kept.append(f)
    # "313 Kristin Well": a house number, a name and a street word is an address even where the street
    # word alone is too ordinary to count ("the 18 Safe Harbor identifiers").
    for m in STREET_AFTER_NAME.finditer(text):
        if any(f.type == "NAME" and m.start() < f.start < m.end() for f in kept):
            kept.append(Finding("LOCATION", m.start(), m.end(), 0.8))
    for name in {n for n in own_names if n and len(n) > 1}:
        for m in re.finditer(rf"\b{re.escape(name)}\b", text):
            kept.append(Finding("NAME", m.start(), m.end(), 1.0))
    return sorted(set(kept), key=lambda f: (f.start, f.end, f.type))


LEARNED_DATE = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(?:the\s+)?\d|"
    r"\d(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)|\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}|"
    r"\b(?:19|20)\d{2}\b|\b\d{1,2}(?:st|nd|rd|th)\b|\b(?:first|second|third|[a-z]+th)\s+of\b|\d{8}"
)
ICD10 = re.compile(r"[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?")
LEARNED_AGE = re.compile(r"(?i)\b(?:9\d|1[0-2]\d)(?!\d)|ninety|hundred|nonagenarian|centenarian")


def shaped_like(text: str, f: Finding) -> bool:
    """Whether a learned span has the shape of its kind. The model generalises from synthetic notes and, on words it
    never saw, sometimes calls a clinical word a name or a score a date; a name or place needs a word no
    dictionary lists as ordinary or clinical, a date a month, a year or a full numeric date, an age over 89 a
    number over 89, an id four digits."""
    span = text[f.start : f.end]
    if f.type == "DATE":
        return bool(LEARNED_DATE.search(span))
    if f.type == "AGE_OVER_89":  # "90+" and "90-or-older" are Safe Harbor's own category; "91.0" is a value
        # The model may stop short of the category's mark: "aged 90" in "aged 90+" is the category too.
        after = text[f.end : f.end + 12]
        category = re.search(r"\+|or[ -]older", span) or re.match(r"\s*(?:\+|or[ -]older)", after)
        return bool(LEARNED_AGE.search(span)) and not category and not re.search(r"\d\.\d", span)
    if f.type == "OTHER_ID":  # an id has four digits or more; "I10" and "E11.9" are ICD-10-CM codes
        return len(re.sub(r"\D", "", span)) >= 4 and not ICD10.fullmatch(span.strip(".,;:()"))
    if f.type in ("NAME", "LOCATION"):
        caps = sum(c.isupper() for c in text) > 0.7 * max(1, sum(c.isalpha() for c in text))
        lower = text.islower()
        words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", span) if len(w) > 1 and not any(c.isdigit() for c in w)]
        words = [w for w in words if caps or not is_abbreviation(w)]  # "HFrEF", "NYHA": abbreviations, not names
        # Outside lower-case messages, a name or place is capitalized: "cdoe" (a typo) is not one.
        words = [w for w in words if lower or w[0].isupper()]
        if f.type == "LOCATION" and any(w.lower() in MONTH_NAMES for w in words):
            return False
        classes = [word_class(w) for w in words]
        if any(c in ("name", "both") for c in classes) or (len(words) > 1 and "eponym" in classes):
            return True
        return False
    return True


def clinical_span(text: str, start: int, end: int) -> bool:
    """Every word of the span is a drug, weekday, unit, abbreviation or eponym noun, and no title precedes it
    ("Mr. Wells" is a person; "Wells score" and "Keppra" are not)."""
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'’-]*", text[start:end]) if len(w) > 1]  # "Ampicillin R"
    if not words:
        return False
    title = re.search(r"([A-Za-z]+)\.?\s*$", text[max(0, start - 12) : start])
    if title and title.group(1).lower() in TITLES:
        return False
    return all(phi_vocab.is_clinical_word(w) or w.lower() in EPONYM_NOUNS for w in words)


def screen(text: str, extra_names: tuple[str, ...] = ()) -> list[Finding]:
    """Every identifier found in one text."""
    return screen_texts([text], [extra_names])[0]


@dataclass(frozen=True)
class Hit:
    """A finding in one text of an example: `where` names the text the way Example.texts() does."""

    where: str
    type: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict:
        return {"field": self.where, "type": self.type, "start": self.start, "end": self.end}


SCREEN_BATCH = 2048  # examples per call: repeated texts within a call are screened once


def screen_examples(
    examples: list[Example], extra_names: list[tuple[str, ...]] | None = None, progress: bool = False
) -> list[list[Hit]]:
    """Every text of every example (each message of each role, the system prompt, carried fields), screened."""
    extra_names = extra_names or [()] * len(examples)
    out: list[list[Hit]] = []
    bar = tqdm(total=len(examples), desc="phi screen", unit="example", disable=not progress)
    for s in range(0, len(examples), SCREEN_BATCH):
        chunk = examples[s : s + SCREEN_BATCH]
        items = [(k, where, text) for k, ex in enumerate(chunk) for where, text in ex.texts()]
        found = screen_texts([t for _, _, t in items], [extra_names[s + k] for k, _, _ in items])
        hits: list[list[Hit]] = [[] for _ in chunk]
        for (k, where, _), fs in zip(items, found):
            hits[k].extend(Hit(where, f.type, f.start, f.end, f.score) for f in fs)
        out.extend(hits)
        bar.update(len(chunk))
    bar.close()
    return out


def describe() -> dict:
    """What screened the data, for the manifest: each detector and its version."""
    return {
        "detectors": {d.name: d.version() for d in _detectors(tuple(detectors.REGISTRY))},
        "threshold": THRESHOLD,
    }


def types_of(findings: list[Finding]) -> list[str]:
    return sorted({f.type for f in findings})


def check_available() -> None:
    """Raise unless the screen can run; `prepare` calls this first so it fails closed."""
    if screen("Call 617-555-0143") == []:
        raise ClinituneError("the PHI screen ran but found nothing in a known phone number; refusing to continue")


def deidentify(text: str, key: DataKey | None, mask: bool = False, group: str = "") -> str:
    """One text with every identifier the screen finds replaced: a surrogate keyed by `key` (the same key and
    group give the same surrogates), or with `mask` a typed placeholder."""
    return surrogates.redact_text(text, screen(text), key, group, mask)
