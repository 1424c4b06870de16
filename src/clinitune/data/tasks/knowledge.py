"""knowledge: the packaged clinical facts (resources/knowledge.jsonl), asked in their own words and others."""

from __future__ import annotations

import json
import random
from importlib import resources

from ..example import Example
from ..phrasings import Phrasings, phrased, plain
from .common import REFERENCE_PREFIX, token_f1
from .spec import TaskSpec

NAME = "knowledge"

PHRASINGS = Phrasings(
    seen=plain(
        "{q}",
        "Question: {q}",
        "{q} Answer briefly.",
        "Q: {q}",
        "{q} Please explain.",
        "Quick question: {q}",
        "{q} Keep it short.",
        "I was wondering: {q}",
        "Clinical question: {q}",
        "{q} One or two sentences, please.",
        "Help me with this: {q}",
        "{q} Be precise.",
        "Answer the following medical question. {q}",
        "{q} (for a clinician)",
        "Can you answer this? {q}",
        "Medical knowledge check: {q}",
    ),
    held_out=plain(
        "q: {q}",
        "{q} thx",
        "My attending asked me this and I'm not sure: {q}",
        "Qustion: {q}",
        "{q} Give a concise answer.",
        "Reply briefly. {q}",
    ),
)


def knowledge_items() -> list[dict]:
    text = resources.files("clinitune.resources").joinpath("knowledge.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def examples(rng: random.Random) -> list[Example]:
    """Each fact's own question teaches (train only); its paraphrases are split like patients.

    The knowledge file is the user's reference corpus, as the code table is: what fine-tuning should
    show is that the model recalls a supplied fact when asked in other words. A fact held out whole
    would measure only what the base model already knew.
    """
    out = []
    for i, item in enumerate(knowledge_items()):
        out.append(
            phrased(NAME, f"{REFERENCE_PREFIX}knowledge", rng, item["answer"], {"q": item["question"]}, PHRASINGS)
        )
        out += [
            phrased(NAME, f"knowledge:{i}", rng, item["answer"], {"q": q}, PHRASINGS)
            for q in item.get("paraphrases", ())
        ]
    return out


SPEC = TaskSpec(NAME, "token_f1", 96, token_f1, {NAME: PHRASINGS})
