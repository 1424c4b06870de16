"""Identifiers named by the words around them: a detector of context rules.

A care-team role or a relative before a name ("RN Priyanka:", "husband (Clement)"), a nickname in quotes, a
field label before a place ("CITY: LAFAYETTE", "Address: Little Snoring, Norfolk"), a place after an address
line or before "neighborhood", a postcode of another country, and an identifier a few words after its label
("plate reported by a bystander as HZP-4471"). Names are kept only where a word is not an ordinary or clinical
word, so "RN Assessment:" stays text.
"""

from __future__ import annotations

import re

from .phi_names import EPONYM_NOUNS, word_class
from .spans import Finding

ROLE = r"(?:RN|NP|LPN|LVN|CNA|PA|MD|DO|RT|PT|OT|SLP|SW|MSW|LCSW|Tech|Nurse|Dr|Doc|Chaplain|Interpreter)"
KIN = (
    r"(?:husband|wife|son|daughter|mother|father|mom|mum|dad|sister|brother|partner|spouse|friend|caregiver|"
    r"guardian|patient|pt|aunt|uncle|niece|nephew|grandson|granddaughter|grandmother|grandfather|grandma|grandpa|"
    r"neighbor|neighbour|fianc[eé]e?|boyfriend|girlfriend|roommate|son-in-law|daughter-in-law|stepson|stepdaughter)"
)
NAME_WORDS = r"[A-Z][A-Za-z'’-]+(?:\s(?:[A-Z]\.?\s)?[A-Z][A-Za-z'’-]+){0,2}\b(?![\d.])"
STAFF = (
    r"(?:phlebotomist|interpreter|chaplain|aide|tech|technician|therapist|pharmacist|coordinator|nurse|resident|"
    r"fellow|attending|intern|scribe|midwife|doula|dietitian|paramedic|medic|emt|sitter|volunteer|navigator|"
    r"counselor|case\s+manager|social\s+worker)"
)
NAME_RULES = [
    re.compile(
        r"\b" + ROLE + r"\.?\s+(?P<v>" + NAME_WORDS + r")(?=\s*[:,.;)]|\s+(?:at|on|in|called|said|reports|"
        r"notified|from|will|is|was|and|to|who|has)\b)"
    ),
    re.compile(r"(?i:\b" + KIN + r"\s*)\((?P<v>" + NAME_WORDS + r")\)"),
    re.compile(r"(?i:\b" + STAFF + r"\s+)(?P<v>" + NAME_WORDS + r")\b"),
    re.compile(r"(?i:\b" + KIN + r"(?:'s)?\s*[:,-]\s*)(?P<v>" + NAME_WORDS + r")(?=\s*[,.;)(\n]|\s+\()"),
]
# A relative's name after the relation, whatever the word ("son Arjun", "daughter Hope").
KIN_NAME = re.compile(r"(?i:\b" + KIN + r"\s+)(?P<v>[A-Z][a-z'’-]+(?:\s[A-Z][a-z'’-]+)?)\b")
# Someone introducing themselves, in a message typed in lower case: "hi this is grace tran", "its mike".
SELF = re.compile(
    r"(?i:\b(?:this\s+is|it'?s|i\s+am|i'm|my\s+name\s+is|(?:her|his|their)\s+name\s+is)\s+)"
    r"(?P<v>[a-z][a-z'’]+(?:[\s-][a-z][a-z'’]+){0,2})(?=\s*[,.;!?)(\n-]|$)"
)
# A name after its label, in the order and case registration systems write it: "PATIENT: AL-HARTHY, OMAR BIN
# SALIM", "Re: Faith OYELARAN", "NAME: WOOD, ROSE". The label decides; the words may be anything.
NAME_LABEL = (
    r"(?i:\b(?:patient(?:'s)?|pt|name|patient\s+name|re|member|insured|subscriber|guarantor|emergency\s+contact|"
    r"nok|next\s+of\s+kin|mother|father|parent|guardian|spouse|attending|pcp|provider|physician|surgeon|"
    r"referring(?:\s+physician)?|ordering(?:\s+provider)?|resident|infant|baby)(?:\s+name)?\s*[:#]\s*)"
)
LABELLED_NAME = re.compile(
    NAME_LABEL + r"(?P<v>(?:Baby[ ](?:Girl|Boy)[ ])?[A-Z][A-Za-z'’.-]+(?:[ -][A-Z][A-Za-z'’.-]*){0,2}"
    r"(?:,[ ]*[A-Z][A-Za-z'’-]+(?:[ ][A-Z][A-Za-z'’-]*\.?){0,3})?)(?=[ ]*(?:[,;|\n(]|$|[ ]{2,}|[ ]+(?:DOB|MRN|SEX|"
    r"AGE|D\.O\.B|Sex|Age|born)\b))"
)
# A nickname in quotes is a name whatever the word ("prefers to be called 'Sunny'").
NICKNAME = re.compile(
    r"(?i:\b(?:called|goes\s+by|known\s+as|nicknamed|nickname|prefers)\s+[\"'“‘])"
    r"(?P<v>[A-Z][a-z-]+(?:\s[A-Z][a-z-]+)?)(?=[\"'”’])"
)
PLACE_WORDS = r"[A-Z][A-Za-z'’.-]+(?:[\s-](?:in|on|of|the|[A-Z][A-Za-z'’.-]+)){0,3}"
PLACE_RULES = [
    re.compile(
        r"(?i:\b(?:city|town|village|hometown|county|residence|municipality|township)\s*[:=]\s*)"
        r"(?P<v>[A-Za-z][A-Za-z .'-]{1,40}?)(?=\s{2,}|\s*[\n,;|]|$|\s+(?:STATE|ST|ZIP|PROVINCE)\b)"
    ),
    re.compile(r"(?i:\baddress\s*[:=]\s*)(?!\d)(?P<v>" + PLACE_WORDS + r")(?=\s*[,\n])"),
    re.compile(
        r"(?:\b(?:Rd|St|Ave|Street|Road|Avenue|Lane|Ln|Dr|Drive|Blvd|Ct|Court|Way|Pl|Hwy|Pike)\.?|"
        r"\b(?:Apt|Unit|Suite|#)\s*\w+),\s+(?P<v>" + PLACE_WORDS + r")(?=\s*[,.;\n]|\s+[A-Z]{2}\b)"
    ),
    re.compile(
        r"\b(?:the\s+)(?P<v>" + PLACE_WORDS + r")\s+(?:neighbo(?:u)?rhood|area|district|projects|reservation|"
        r"pueblo|township|barrio)\b"
    ),
    re.compile(
        r"(?i:\b(?:hamlet|village|town|township|borough|city|suburb|settlement)\s+of\s+)(?P<v>" + PLACE_WORDS + r")"
    ),
    re.compile(
        r"(?i:\b(?:lives?|living|resides?|residing|staying|stays|moved|relocated|visiting|vacationing|"
        r"wintering|drove\s+in|came|transferred)(?:\s+[a-z]+){0,3}\s+(?:in|at|near|from|to)\s+)"
        r"(?P<v>[A-Z][a-z]+(?:[\s-][A-Z][a-z]+){0,2})(?=\s*[,.;)\n]|$|\s+(?:and|with|where|since|for|but|"
        r"until|area|by)\b)"
    ),
]
POSTCODES = [
    re.compile(r"\b(?P<v>[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2})\b"),  # UK
    re.compile(r"\b(?P<v>[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b"),  # Canada
]
# A street line typed in lower case, and the town after it: "its 58 orchard lane, millbrook".
LOWER_STREET = re.compile(
    r"\b\d{1,6}\s+(?:[a-z]+\s+){1,3}(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|court|ct|way|boulevard|blvd|"
    r"place|pl|terrace|circle|trail|parkway|highway|hwy)\b(?:,\s+(?P<v>[a-z]+(?:\s[a-z]+)?)(?=\s*[.,;!\n]|$))?"
)
# Parts of numbers: "last 4 of card 4417", "SSN ends in 4471", a card number in four groups.
NUMBERS = [
    (
        "ACCOUNT",
        re.compile(
            r"(?i:\blast\s+(?:4|four)(?:\s+digits)?(?:\s+(?:of|on)\s+(?:the\s+|my\s+|her\s+|his\s+)?(?:card|ssn|"
            r"social|account|acct|cc|visa|mastercard|amex))?\s*(?:is|are|:|=|-|#)?\s*)(?P<v>\d{4})\b"
        ),
    ),
    ("ACCOUNT", re.compile(r"(?i:\b(?:ends?|ending)\s+(?:in|with)\s+)(?P<v>\d{4})\b")),
    ("ACCOUNT", re.compile(r"(?<![\d-])(?P<v>\d{4}[\s-]\d{4}[\s-]\d{4}[\s-]\d{3,4})(?![\d-])")),
]
# Street lines as registration blocks and hands write them: capitals, ordinal streets ("S 4th St"), or a street
# named without its number ("Kessler Ave", "Maple Terrace").
SUFFIX = (
    r"(?:ST|STREET|AVE|AVENUE|RD|ROAD|BLVD|BOULEVARD|LN|LANE|DR|DRIVE|CT|COURT|WAY|PL|PLACE|TER|TERRACE|PKWY|"
    r"PARKWAY|CIR|CIRCLE|HWY|HIGHWAY|TRL|TRAIL|LOOP|PIKE|ROW)"
)
STREETS = [
    re.compile(
        r"\b\d{1,6}\s+(?:[NSEW]{1,2}\.?\s+)?(?:(?:[A-Z][A-Za-z'-]*|\d{1,3}(?:st|nd|rd|th|ST|ND|RD|TH))\s+){1,3}"
        r"(?i:" + SUFFIX + r")\b\.?(?:,?\s*(?i:apt|unit|suite|ste|#|lot|rm)\.?\s*#?\w+)?"
    ),
    re.compile(
        r"\b(?:[NSEW]{1,2}\s+)?(?:[A-Z][a-z]+\s+){1,2}(?:St|Ave|Rd|Blvd|Ln|Ct|Terrace|Ter|Pkwy|Cir|Hwy|Pl)\b\.?"
        r"(?!\s*[A-Z][a-z])"
    ),
    re.compile(r"\b[NSEW]{1,2}\s+\d{1,3}(?:st|nd|rd|th)\s+(?:St|Ave|Street|Avenue|Rd|Pl|Way)\b"),
]
# A number dialled from another country's plan with its trunk zero: "0161 496 0822", "020 7946 0958".
INTERNATIONAL_PHONE = re.compile(r"(?<![\d.])0\d{2,4}[\s-]\d{3,4}[\s-]\d{3,4}(?![\d.])")
LABELLED_ID = re.compile(
    r"(?i:\b(?:plate|passport|vin|serial|mrn|ssn|member\s+id|policy|account)\b(?:\s+[a-z]+){1,4}\s+"
    r"(?:as|is|was|reads|of|=|:)\s+)(?P<v>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{2,20}[A-Za-z0-9])\b"
)


def _eponym_follows(text: str, end: int) -> bool:
    """ "Sister Mary Joseph nodule": a clinical noun after the words makes them an eponym, not a relative."""
    m = re.match(r"\s*(?:'s|’s)?\s*([A-Za-z]+)", text[end:])
    return bool(m and m.group(1).lower() in EPONYM_NOUNS)


def _named(span: str) -> bool:
    words = re.findall(r"[^\W\d_][\w'’-]*", span)
    return any(word_class(w) in ("name", "both", "eponym") for w in words)


class ContextDetector:
    """Names, places and identifiers that the words around them reveal."""

    name = "context"

    def version(self) -> str:
        return f"{len(NAME_RULES) + len(PLACE_RULES) + len(POSTCODES) + len(NUMBERS) + len(STREETS) + 8} context rules"

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        out = []
        for text in texts:
            found = [
                Finding("NAME", *m.span("v"), 0.85)
                for rx in NAME_RULES
                for m in rx.finditer(text)
                if _named(m.group("v")) and not _eponym_follows(text, m.end("v"))
            ]
            found += [
                Finding("LOCATION", *m.span("v"), 0.8) for rx in PLACE_RULES + POSTCODES for m in rx.finditer(text)
            ]
            found += [Finding("OTHER_ID", *m.span("v"), 0.8) for m in LABELLED_ID.finditer(text)]
            found += [Finding("NAME", *m.span("v"), 0.9) for m in NICKNAME.finditer(text)]
            found += [
                Finding("NAME", *m.span("v"), 0.9)
                for m in LABELLED_NAME.finditer(text)
                if "," in m.group("v") or _named(m.group("v"))  # "WOOD, ROSE"; not "Patient: Stable Overnight"
            ]
            found += [Finding(kind, *m.span("v"), 0.85) for kind, rx in NUMBERS for m in rx.finditer(text)]
            found += [Finding("LOCATION", *m.span(), 0.8) for rx in STREETS for m in rx.finditer(text)]
            found += [
                Finding("NAME", *m.span("v"), 0.85)
                for m in KIN_NAME.finditer(text)
                if not _eponym_follows(text, m.end("v"))
            ]
            found += [Finding("NAME", *m.span("v"), 0.8) for m in SELF.finditer(text) if _named(m.group("v"))]
            found += [Finding("PHONE", *m.span(), 0.8) for m in INTERNATIONAL_PHONE.finditer(text)]
            for m in LOWER_STREET.finditer(text):
                found.append(Finding("LOCATION", m.start(), m.start("v") - 2 if m.group("v") else m.end(), 0.8))
                if m.group("v"):
                    found.append(Finding("LOCATION", *m.span("v"), 0.75))
            out.append(found)
        return out
