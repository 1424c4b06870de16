"""Redaction by surrogates: each identifier the screen finds becomes a fake one of the same kind.

Consistent within a patient (the example's group): one person's name gets the same surrogate in every
example of that patient, name by name, so "Maria Lopez" and "Ms. Lopez" stay one person. Dates move by
one offset per patient (1-364 days back), so the interval between two dates survives. Everything is
derived from a keyed hash of (key, group, value): no table of real-to-fake pairs is written anywhere.
"""

from __future__ import annotations

import datetime as dt
import re

from ..example import Example
from ..records import names
from . import phi_vocab
from .keys import DataKey
from .phi_names import MONTH_NAMES

TITLE_WORDS = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sr", "jr", "rn", "md", "np", "pa"}
# The synthetic database's name lists, less any that is also a drug, weekday or unit ("Virginia" is a drug
# name too): a surrogate only has to look like a name, and must never read as a clinical word.
SURROGATE_FIRST = [n for n in names.FEMALE_FIRST + names.MALE_FIRST if not phi_vocab.is_clinical_word(n)]
SURROGATE_LAST = [n for n in names.LAST if not phi_vocab.is_clinical_word(n)]
AGE_RE = re.compile(r"\d{2,3}|(?i:ninety|one hundred)[\w\s-]*?(?=\s*(?:years?|yrs?|y/?o|yo\b|-year)|$)")


def _name(span: str, key: DataKey, group: str) -> str:
    """Word by word, keeping titles, initials' shape and capitalization."""

    def one(m: re.Match) -> str:
        w = m.group(0)
        if w.lower().rstrip(".") in TITLE_WORDS:
            return w
        if len(w.rstrip(".")) == 1:  # an initial
            return chr(ord("A") + key.number(group, "initial", w.upper()) % 26) + w[1:]
        pool = SURROGATE_LAST if key.number(group, "slot", w.lower()) % 2 else SURROGATE_FIRST
        fake = pool[key.number(group, "name", w.lower()) % len(pool)]
        return fake.upper() if w.isupper() and len(w) > 1 else fake.lower() if w.islower() else fake

    return re.sub(r"[^\W\d_][\w'’-]*\.?", one, span)


def _shape(span: str, key: DataKey, group: str, kind: str) -> str:
    """Same format, other characters: digits for digits, letters for letters, in the value part only."""
    h = key.number(group, kind, span)
    out = []
    for i, c in enumerate(span):
        r = (h >> (i % 200)) & 0xFFFF
        out.append(str(r % 10) if c.isdigit() else chr(ord("A" if c.isupper() else "a") + r % 26) if c.isalpha() else c)
    return "".join(out)


def _labelled(span: str, key: DataKey, group: str, kind: str) -> str:
    """ "MRN: 00123456" keeps its label: only the tokens that carry a digit change."""
    return re.sub(r"[\w@.+-]*\d[\w@.+-]*", lambda m: _shape(m.group(0), key, group, kind), span)


def _email(span: str, key: DataKey, group: str) -> str:
    return f"user{key.number(group, 'email', span.lower()) % 10**6:06d}@example.org"


MON = r"(?P<mon>[A-Za-z]{3,9})"
# (regex, has year) with named groups y, m or mon, d: each group is rewritten in place, keeping its width and style.
DATE_PARTS = [
    re.compile(r"(?<!\d)(?P<y>\d{4})(?P<s>[/.-])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<m>\d{1,2})(?P<s>[/.-])(?P<d>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?P<s>[/.-])(?P<m>\d{1,2})(?P=s)(?P<y>\d{4})(?!\d)"),  # 19/06/1933
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)(?!\d)"),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s-]+" + MON + r"\.?,?[\s-]+(?P<y>\d{4}|\d{2})\b"),
    re.compile(r"\b" + MON + r"\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})\b"),
    re.compile(r"\b" + MON + r"\.?,?\s+(?P<y>\d{4})\b"),
    re.compile(r"\b" + MON + r"\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?\b"),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + MON + r"\b"),
    re.compile(r"(?<![\d/])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\d/])"),
]


def date_offset(key: DataKey, group: str) -> int:
    return 1 + key.number(group, "date-shift", "") % 364


def _month(text: str) -> int | None:
    t = text.lower()
    return next((i + 1 for i, name in enumerate(MONTH_NAMES) if len(t) >= 3 and name.startswith(t)), None)


ORDINAL_WORDS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
ORDINAL_WORD = re.compile(r"(?i)\b(?:(twenty|thirty)-)?(" + "|".join(ORDINAL_WORDS) + r")\b|\b(twentieth|thirtieth)\b")


def _ordinal_number(m: re.Match) -> str:
    """ "third" -> "3rd", "twenty-first" -> "21st": a date in words is shifted like one in digits."""
    tens = {"twenty": 20, "thirty": 30}.get((m.group(1) or "").lower(), 0)
    if m.group(3):
        n = 20 if m.group(3).lower() == "twentieth" else 30
    else:
        n = tens + ORDINAL_WORDS.index(m.group(2).lower()) + 1
    return f"{n}{_suffix(n)}"


def _suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _date(span: str, key: DataKey, group: str) -> str:
    """The date moved back by the patient's offset, written the way it was (a date in words, in digits); a label
    before it is kept."""
    span = ORDINAL_WORD.sub(_ordinal_number, span)
    shifted = _shift(span, key, group)
    return re.sub(r"(\d+)(?:st|nd|rd|th)\b", lambda m: m.group(1) + _suffix(int(m.group(1))), shifted)


def _shift(span: str, key: DataKey, group: str) -> str:
    for rx in DATE_PARTS:
        m = rx.search(span)
        if not m:
            continue
        g = m.groupdict()
        month = _month(g["mon"]) if g.get("mon") else int(g["m"])
        year = int(g["y"]) if g.get("y") else 2000  # no year: shift within a leap year
        if g.get("y") and len(g["y"]) == 2:
            year += 1900 if year > 30 else 2000
        try:
            d = dt.date(year, month or 0, int(g["d"]) if g.get("d") else 15)
        except (ValueError, TypeError):
            continue
        new = d - dt.timedelta(days=date_offset(key, group))
        parts = {
            "y": str(new.year)[-len(g["y"]) :] if g.get("y") else None,
            "m": str(new.month).zfill(len(g["m"] or "")) if g.get("m") else None,
            "d": str(new.day).zfill(len(g["d"])) if g.get("d") else None,
        }
        if g.get("mon"):
            full = MONTH_NAMES[new.month - 1]
            name = full if len(g["mon"]) > 3 else full[:3]
            parts["mon"] = name.upper() if g["mon"].isupper() else name.capitalize() if g["mon"][0].isupper() else name
        out, last = [], 0
        for key in sorted((k for k in parts if parts[k] is not None and m.group(k) is not None), key=m.start):
            out += [span[last : m.start(key)], parts[key]]
            last = m.end(key)
        return "".join(out) + span[last:]
    return _labelled(span, key, group, "DATE")


def _age(span: str) -> str:
    """Safe Harbor folds every age over 89 into one category."""
    return AGE_RE.sub("90+", span, count=1) if AGE_RE.search(span) else "90+"


def surrogate(kind: str, span: str, key: DataKey, group: str) -> str:
    if kind == "NAME":
        return _name(span, key, group)
    if kind == "DATE":
        return _date(span, key, group)
    if kind == "AGE_OVER_89":
        return _age(span)
    if kind == "EMAIL":
        return _email(span, key, group)
    if kind in ("URL", "PHOTO"):
        # No word of the original, not even "https" or "www": a link that says it is a stand-in.
        return f"link-{key.number(group, kind, span) % 10**8:08d}.invalid" if kind == "URL" else "photo.jpg"
    if kind == "LOCATION":
        return _location(span, key, group)
    return _labelled(span, key, group, kind)


STREET_LINE = re.compile(r"^(?P<num>\d{1,6})\s+(?P<name>.+?)(?P<unit>,?\s*(?:Apt\.?|Suite|Unit|#|Lot)\s*\w+)?$", re.I)
CITY_LINE = re.compile(r"^(?P<city>[^\d,]+?)(?P<rest>,?\s+[A-Z]{2}\b.*|,.*)?$")
STREETS = ("Oak", "Maple", "Cedar", "Elm", "Birch", "Walnut", "Hillcrest", "Lakeview", "Ridge", "Meadow", "Orchard")
SUFFIXES = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way", "Blvd")


def _location(span: str, key: DataKey, group: str) -> str:
    """A place: a street line is replaced whole (number, street name and suffix), a city by another city, a ZIP
    or PO box by other digits; nothing of the original's words is kept."""
    h = key.number(group, "place", span)
    street = STREET_LINE.match(span)
    if street and re.search(r"[A-Za-z]{2}", street.group("name")):
        num = _shape(street.group("num"), key, group, "LOCATION").lstrip("0") or "1"
        fake = f"{num} {STREETS[h % len(STREETS)]} {SUFFIXES[(h >> 8) % len(SUFFIXES)]}"
        unit = street.group("unit")
        return fake + (_labelled(unit, key, group, "LOCATION") if unit else "")
    if not re.search(r"[A-Za-z]", span) or re.match(r"(?i)p\.?\s?o\.?\s+box|rr\b|rural|hc\b", span):
        return _labelled(span, key, group, "LOCATION")
    city_line = CITY_LINE.match(span)
    city, state, _ = names.CITIES[h % len(names.CITIES)]
    if city_line and city_line.group("rest"):
        return city + _labelled(city_line.group("rest"), key, group, "LOCATION")
    if re.search(r"(?i)\b(?:county|parish|borough)$", span):
        return f"{SURROGATE_LAST[h % len(SURROGATE_LAST)]} {span.split()[-1]}"
    return city.upper() if span.isupper() else city.lower() if span.islower() else city


def merge_spans(hits) -> list[list]:
    """[start, end, kind] per identifier, sorted: detectors overlap on one identifier, and it is replaced once."""
    # A generic id loses a tie to a specific kind: "02-MAR-2024" is shifted as a date, not reshaped as a code.
    spans = sorted(((h.start, h.end, h.type) for h in hits), key=lambda s: (s[0], -s[1], s[2] == "OTHER_ID"))
    merged: list[list] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, kind])
    return merged


def redact_text(text: str, hits, key: DataKey | None, group: str = "", mask: bool = False) -> str:
    """Replace each hit's span, right to left so earlier offsets stay valid; overlaps merge into the wider span.
    `mask`: a typed placeholder ([NAME], [DATE]) instead of a surrogate, which needs no key."""
    if key is None and not mask:
        raise ValueError("surrogates need the data set's key; masks do not")
    for start, end, kind in reversed(merge_spans(hits)):
        new = f"[{kind}]" if mask else surrogate(kind, text[start:end], key, group)
        text = text[:start] + new + text[end:]
    return text


def redact(ex: Example, hits, key: DataKey, mask: bool = False) -> Example:
    """The example with every hit replaced, in every text it carries; the patient group keys the surrogates."""
    by_where: dict[str, list] = {}
    for h in hits:
        by_where.setdefault(h.where, []).append(h)
    texts = dict(ex.texts())
    return ex.with_texts(
        {w: redact_text(texts[w], hs, key, ex.group, mask) for w, hs in by_where.items() if w in texts}
    )
