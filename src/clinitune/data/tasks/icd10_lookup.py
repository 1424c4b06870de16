"""icd10_lookup: the official description of an ICD-10-CM code."""

from __future__ import annotations

import random
import re

from ..example import Example
from ..phrasings import Phrasings, phrased, plain
from .common import norm
from .spec import TaskSpec

NAME = "icd10_lookup"

PHRASINGS = Phrasings(
    seen=plain(
        "What does ICD-10-CM code {code} describe?",
        "Give the official description of ICD-10-CM code {code}.",
        "What condition is coded as {code} in ICD-10-CM?",
        "What is {code} in ICD-10-CM?",
        "Describe ICD-10 code {code}.",
        "Look up {code} in ICD-10-CM.",
        "{code} - what diagnosis is that?",
        "Decode this ICD-10-CM code: {code}",
        "What dose ICD-10 code {code} mean?",
        "I found the code {code} on a claim. What diagnosis does it stand for?",
        "ICD-10-CM {code}: description?",
        "Tell me what {code} means in ICD-10-CM.",
        "Which diagnosis has the ICD-10-CM code {code}?",
        "Translate ICD-10-CM code {code} into its description.",
        "meaning of icd10 {code}?",
        "What is the long description for code {code}?",
    ),
    held_out=plain(
        "What's {code} stand for?",
        "Can you explain which condition the ICD-10-CM code {code} refers to, using the official wording?",
        "ICD code {code} = ?",
        "What is teh descripton of ICD-10 code {code}?",
        "Please identify the diagnosis behind {code}.",
        "pt chart lists {code} - which dx is it?",
    ),
)


def ask(group: str, rng: random.Random, code: str, description: str) -> Example:
    """What `code` describes, asked in one of the seen phrasings; answered with its official description."""
    return phrased(NAME, group, rng, f"{code} is the ICD-10-CM code for {description}.", {"code": code}, PHRASINGS)


def build(rec: dict, group: str, rng: random.Random) -> list[Example]:
    return [
        ask(group, rng, d["code"], d["description"])
        for d in rng.sample(rec["diagnoses"], min(2, len(rec["diagnoses"])))
    ]


def score(pred: str, ex: Example) -> dict:
    m = re.search(r"ICD-10-CM code for (.+)\.$", ex.reply)
    desc = norm(m.group(1) if m else ex.reply)
    return {"description_match": float(desc in norm(pred))}


def fact(ex: Example) -> str:
    """The code looked up (its description comes with it)."""
    return ex.reply.split(" ", 1)[0]


SPEC = TaskSpec(NAME, "description_match", 64, score, {NAME: PHRASINGS}, build, fact=fact)
