"""icd10_coding: the ICD-10-CM code for a diagnosis, asked of a patient's problems and of the whole code table."""

from __future__ import annotations

import random
import re

from ..example import Example
from ..example import instruction as example
from ..phrasings import Phrasings, phrased, plain
from ..records import catalog as cat
from ..records import icd10
from . import icd10_lookup
from .common import COMMON_NAMES, REFERENCE_PREFIX, condition_name, first_code, person
from .spec import TaskSpec

NAME = "icd10_coding"

PHRASINGS = Phrasings(
    seen=plain(
        "What ICD-10 code represents {desc}?",
        "What is the ICD-10-CM code for {name}?",
        ("Assign the ICD-10-CM code for the diagnosis in this note.", "{Age} {gender} seen today; assessment: {name}."),
        "Which ICD-10-CM code should be used for {desc}?",
        "ICD-10 code for {name}?",
        "Code this diagnosis in ICD-10-CM: {desc}.",
        "Give me the ICD-10-CM code for {name}.",
        "Look up the ICD10 code: {desc}",
        "I'm coding a claim and need the ICD-10-CM code for {desc}. What should I enter?",
        "Whats the ICD-10 cdoe for {name}?",
        ("Code the assessment.", "A/P: {name}. {years}{sx}."),
        "Which code (ICD-10-CM) matches {name}?",
        ("Find the ICD-10-CM code.", "Diagnosis: {desc}"),
        "Return the ICD-10-CM code for this diagnosis: {name}",
        ("Assign an ICD-10-CM code to the following problem-list entry.", "{desc}"),
        "Dx code? {name}",
    ),
    held_out=plain(
        "Need ICD 10 for {name} pls",
        "For billing purposes, please tell me which ICD-10-CM code corresponds to the diagnosis of {desc}.",
        ("Progress note below. What ICD-10-CM code fits the assessment?", "{years} y/o {gender}. Impression: {name}."),
        "Wich ICD-10-CM code is used for {desc}?",
        "{name} - ICD-10-CM code?",
        "Map this diagnosis to its ICD-10-CM code: {desc}.",
    ),
)


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    out = []
    for d in rng.sample(rec["diagnoses"], min(4, len(rec["diagnoses"]))):
        desc = d["description"][0].lower() + d["description"][1:]
        slots = {**person(rec), "desc": desc, "name": condition_name(d["code"], d["description"])}
        answer = f"The ICD-10-CM code for {desc} is {d['code']}."
        out.append(phrased(NAME, group, rng, answer, slots, PHRASINGS))
    return out


def codebook(rng: random.Random) -> list[Example]:
    """The catalog's code table as coding and lookup examples.

    A coder learns the codebook, not only the codes that happened to occur in the training patients:
    without it a test patient's rarer code is one the model never saw. The table is reference data,
    so it goes to train only (split keeps `reference:` groups there) and test stays patient-derived.
    """
    out = []
    for c in sorted(cat.BY_CODE):
        desc = icd10.description(c)
        low = desc[0].lower() + desc[1:]
        # ICD-10-CM puts nonessential modifiers in parentheses: "essential (primary) hypertension" is also
        # written "essential hypertension", and a coder is asked both ways.
        bare = re.sub(r"\s*\([^)]*\)", "", low)
        names = list(dict.fromkeys([low, bare] + ([COMMON_NAMES[c]] if c in COMMON_NAMES else [])))
        for name in names:
            # Asked without a patient: the phrasings that carry a note need age and sex.
            instr, _ = rng.choice([p for p in PHRASINGS.seen if not p[1]])
            out.append(
                example(
                    NAME,
                    f"{REFERENCE_PREFIX}icd10",
                    instr.format(desc=name, name=name),
                    f"The ICD-10-CM code for {low} is {c}.",
                )
            )
        out.append(icd10_lookup.ask(f"{REFERENCE_PREFIX}icd10", rng, c, desc))
    return out


def score(pred: str, ex: Example) -> dict:
    ref, got = first_code(ex.reply), first_code(pred)
    return {
        "exact_match": float(got == ref),
        "category_match": float(bool(got) and got[:3] == (ref or "")[:3]),
        "valid_code_rate": float(bool(got) and icd10.is_valid(got)),
    }


def fact(ex: Example) -> str:
    """The code: a test patient's diagnosis is taught if training coded the same code, in any words."""
    return first_code(ex.reply) or ex.reply


SPEC = TaskSpec(NAME, "exact_match", 40, score, {NAME: PHRASINGS}, build, fact=fact)
