"""The PHI screen: HIPAA Safe Harbor's 18 identifier types, found in free text.

Engine: Presidio's analyzer with its pattern recognizers on an offline NLP engine (a blank spaCy
tokenizer, no model download), plus our own recognizers for what Presidio lacks or finds too
noisily in clinical text (MRNs, member ids, fax, ZIP, dates finer than a year, ages over 89,
vehicle and device ids, names). Results carry types and spans only; callers never log the text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import ClinituneError
from . import names

# Safe Harbor's 18 types, as clinitune names them.
SAFE_HARBOR_TYPES = ("NAME", "LOCATION", "DATE", "AGE_OVER_89", "PHONE", "FAX", "EMAIL", "SSN", "MRN", "HEALTH_PLAN",
                     "ACCOUNT", "LICENSE", "VEHICLE", "DEVICE", "URL", "IP", "BIOMETRIC", "PHOTO", "OTHER_ID")
PRESIDIO_TO_OURS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "US_SSN": "SSN", "URL": "URL", "IP_ADDRESS": "IP",
                    "MEDICAL_LICENSE": "LICENSE", "CREDIT_CARD": "ACCOUNT", "IBAN_CODE": "ACCOUNT"}
PRESIDIO_ENTITIES = list(PRESIDIO_TO_OURS)

MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
STATES = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR "
          "PA RI SC SD TN TX UT VT VA WA WV WI WY DC").split()
STATE_RE = "(?:" + "|".join(STATES) + ")"
STREET_SUFFIX = r"(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Ln|Lane|Dr|Drive|Ct|Court|Way|Pl|Place|Terrace|Ter|Pkwy|Parkway|Cir|Circle|Hwy|Highway|Sq|Square)"
# First names that are also ordinary words: matched only as part of a full name, never alone.
COMMON_WORD_NAMES = {"Mark", "Frank", "Grace", "Joy", "Will", "Bill", "Gene", "Dawn", "Hope", "Faith", "Rose", "May", "June",
                     "Summer", "Penny", "Art", "Ray", "Jack", "Chase", "Hunter", "Carter", "Mason", "Miles", "Sandy", "Amber",
                     "Jean", "Ann", "Guy", "Victoria", "Madison", "Jordan", "Logan", "Joe", "Harper", "Austin", "Christian",
                     "Diana", "Billy", "Bobby", "Willie", "Terry", "Henry", "Albert", "Wayne", "Roy", "Randy", "Eugene"}
TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?"

# (type, pattern, score). Case-sensitive unless the pattern says (?i).
PATTERNS: list[tuple[str, str, float]] = [
    ("MRN", r"(?i)\b(?:MRN|medical\s+record(?:\s+(?:number|no\.?|#))?)\s*[:#-]?\s*[A-Z]{0,3}\d[\dA-Z-]{4,14}\b", 0.9),
    ("MRN", r"\bMRN\d{5,12}\b", 0.9),
    ("HEALTH_PLAN", r"(?i)\b(?:member|subscriber|policy|beneficiary|insurance|health\s+plan|medicaid|medicare|group)\s*(?:id|number|no\.?|#)\s*[:#-]?\s*[A-Z]{0,4}-?\d[A-Z0-9-]{4,16}\b", 0.9),
    ("HEALTH_PLAN", r"\b(?:XGH|BCB|UHC|AET|CGN)\d{8,10}\b", 0.9),
    ("HEALTH_PLAN", r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]{2}\d{2}\b", 0.8),
    ("ACCOUNT", r"(?i)\b(?:account|acct|billing)\b\s*(?:number|no\.?|#)?\s*[:#-]?\s*[A-Z]{0,3}\d[\d-]{4,18}\b", 0.9),
    ("FAX", r"(?i)\bfax(?:\s+(?:to|at))?\s*(?:number|no\.?|#)?\s*[:#-]?\s*(?:\+?1[\s.-]*)?\(?\d{3}\)?[\s.-]*\d{3}[\s.-]*\d{4}\b", 0.95),
    ("PHONE", r"(?<![\d/])(?:\+?1[\s.-]?)?\(\d{3}\)\s?\d{3}[\s.-]\d{4}\b", 0.85),
    ("PHONE", r"(?<![\d/.])(?:\+?1[\s.-])?[2-9]\d{2}[\s.-]\d{3}[\s.-]\d{4}\b(?![.]\d)", 0.8),
    ("PHONE", r"(?i)\b(?:phone|tel|telephone|cell|mobile|pager|call)\b\s*[:#-]?\s*\+?\d[\d\s().-]{8,16}\d\b", 0.85),
    ("SSN", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", 0.9),
    ("SSN", r"(?i)\b(?:SSN|social\s+security(?:\s+(?:number|no\.?|#))?)\s*[:#-]?\s*\d{3}[\s-]?\d{2}[\s-]?\d{4}\b", 0.95),
    ("LOCATION", r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}" + STREET_SUFFIX + r"\b\.?(?:,?\s*(?:Apt|Suite|Unit|#)\s*\w+)?", 0.85),
    ("LOCATION", r"\b(?:P\.?\s?O\.?\s+Box|PO\s+Box)\s+\d+\b", 0.9),
    ("LOCATION", r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s" + STATE_RE + r"\b(?:\s+\d{5}(?:-\d{4})?)?", 0.7),
    ("LOCATION", r"\b" + STATE_RE + r"\s+\d{5}(?:-\d{4})?\b", 0.9),
    ("LOCATION", r"(?i)\b(?:zip(?:\s*code)?|postal\s+code|zipcode)\s*[:#-]?\s*\d{5}(?:-\d{4})?\b", 0.95),
    ("LOCATION", r"\b\d{5}-\d{4}\b", 0.85),
    ("DATE", r"(?<![\d/.])(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])[/.-](?:19|20)?\d{2}(?![\d/])", 0.9),
    ("DATE", r"(?<![\d-])(?:19|20)\d{2}[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])(?:[T ]\d{2}:\d{2}(?::\d{2})?)?(?!\d)", 0.95),
    ("DATE", r"\b" + MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+(?:19|20)\d{2})?\b", 0.85),
    ("DATE", r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + MONTHS + r"\.?,?\s+(?:19|20)\d{2}\b", 0.9),
    ("DATE", r"\b" + MONTHS + r"\.?,?\s+(?:19|20)\d{2}\b", 0.8),
    ("DATE", r"\b\d{1,2}-" + MONTHS + r"-(?:19|20)?\d{2}\b", 0.9),
    ("DATE", r"(?i)\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|born(?:\s+on)?|admitted(?:\s+on)?|discharged(?:\s+on)?|DOS|date\s+of\s+service|seen\s+on|died(?:\s+on)?|deceased)\s*[:#-]?\s*(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])\b", 0.9),
    ("AGE_OVER_89", r"(?i)\b(?:9\d|1[0-2]\d)(?:\s*|-)(?:years?|yrs?|y/?o|year-old|yo)\b", 0.9),
    ("AGE_OVER_89", r"(?i)\b(?:age|aged)\s*[:=]?\s*(?:9\d|1[0-2]\d)\b", 0.9),
    ("AGE_OVER_89", r"(?i)\b(?:nonagenarian|centenarian)\b", 0.7),
    ("VEHICLE", r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b", 0.85),
    ("VEHICLE", r"(?i)\b(?:license\s+plate|plate(?:\s+(?:number|no\.?|#))?|VIN)(?![A-Za-z])\s*[:#-]?\s*(?=[A-Z0-9 -]{0,9}\d)[A-Z0-9]{2,4}[-\s]?[A-Z0-9]{2,5}\b", 0.9),
    ("DEVICE", r"(?i)\b(?:serial(?:\s+(?:number|no\.?|#))?|S/N|SN|device\s+(?:id|identifier)|UDI|IMEI|lot(?:\s+(?:number|no\.?|#)))(?![a-z])\s*[:#-]?\s*(?=[A-Z0-9()./:-]*\d)\(?[A-Z0-9][A-Z0-9()./:-]{5,}\b", 0.9),
    ("DEVICE", r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b", 0.9),
    ("DEVICE", r"\(01\)\d{14}", 0.9),
    ("LICENSE", r"(?i)\b(?:license|licence|DEA|NPI|certificate|cert|registration)\b\s*(?:number|no\.?|#)?\s*[:#-]?\s*[A-Z]{0,2}\d{5,10}\b", 0.9),
    ("LICENSE", r"\b[A-Z][A-Z9]\d{7}\b", 0.6),
    ("URL", r"(?i)\b(?:https?://|www\.)[^\s<>\"']+", 0.9),
    ("IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", 0.9),
    ("IP", r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b", 0.9),
    ("BIOMETRIC", r"(?i)\b(?:fingerprint|finger\s*print|retina(?:l)?\s+scan|iris\s+scan|voice\s*print|face\s*print|palm\s*print|biometric)\s*(?:id|template|hash|record|scan)?\s*[:#-]?\s*(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,}\b", 0.9),
    ("PHOTO", r"(?i)\b[\w-]+\.(?:jpe?g|png|heic|bmp|tiff?|gif)\b", 0.8),
    ("PHOTO", r"(?i)\b(?:full[-\s]face|facial)\s+(?:photo(?:graph)?|image|picture)\b", 0.7),
    ("OTHER_ID", r"(?i)\b(?:patient\s+id|pt\s+id|case\s+(?:number|no\.?|#|id)|record\s+(?:number|no\.?|#|id)|accession\s+(?:number|no\.?|#)|encounter\s+(?:number|no\.?|#|id)|visit\s+(?:number|no\.?|#|id)|claim\s+(?:number|no\.?|#|id)|employee\s+(?:id|number|#))\s*[:#-]?\s*(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b", 0.9),
    ("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 0.95),
]


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int
    score: float


def _name_patterns() -> list[tuple[str, str, float]]:
    first = sorted(set(names.FEMALE_FIRST + names.MALE_FIRST), key=len, reverse=True)
    last = sorted(set(names.LAST), key=len, reverse=True)
    first_re = "(?:" + "|".join(first) + ")"
    last_re = "(?:" + "|".join(last) + ")"
    solo = "(?:" + "|".join(n for n in first if n not in COMMON_WORD_NAMES) + ")"
    cap = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
    return [
        ("NAME", rf"\b{first_re}\s+(?:[A-Z]\.\s+)?{cap}\b", 0.85),
        ("NAME", rf"\b{cap}\s+{last_re}\b(?!\s*(?:syndrome|disease|sign|test|scale|score))", 0.6),
        ("NAME", rf"\b{TITLES}\s+{cap}(?:\s+{cap})?\b", 0.9),
        ("NAME", rf"\b{last_re},\s+{cap}\b", 0.85),
        ("NAME", rf"(?i:\b(?:name|patient|pt|signed|attending|provider|physician|nurse|contact|mother|father|son|daughter|wife|husband|spouse)\s*[:=-]\s*){cap}(?:\s+{cap})?", 0.9),
        ("NAME", rf"\b{solo}\b", 0.7),
    ]


class _BlankSpacyEngine:
    """Presidio NlpEngine on spaCy's blank English tokenizer: tokens and lemmas, no NER model to download."""

    def __new__(cls):
        import spacy
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

        class Engine(NlpEngine):
            def __init__(self):
                self.nlp = spacy.blank("en")

            def load(self):
                pass

            def is_loaded(self):
                return True

            def get_supported_languages(self):
                return ["en"]

            def get_supported_entities(self):
                return []

            def process_text(self, text, language):
                doc = self.nlp(text)
                return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[t.idx for t in doc],
                                    lemmas=[t.text.lower() for t in doc], nlp_engine=self, language=language)

            def process_batch(self, texts, language, batch_size=1, n_process=1, **kwargs):
                for t in texts:
                    yield t, self.process_text(t, language)

            def is_stopword(self, word, language):
                return self.nlp.vocab[word].is_stop

            def is_punct(self, word, language):
                return self.nlp.vocab[word].is_punct

        return Engine()


@functools.lru_cache(maxsize=1)
def _analyzer():
    """Build the analyzer once per process. Fails closed: any problem is an error, never a silent pass."""
    try:
        import tldextract

        # Presidio's email recognizer calls tldextract, which would fetch the public suffix list
        # from the network; the snapshot bundled with tldextract is enough and keeps us offline.
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                              IpRecognizer, MedicalLicenseRecognizer, PhoneRecognizer,
                                                              UrlRecognizer, UsSsnRecognizer)
    except ImportError as exc:
        raise ClinituneError(f"the PHI screen needs presidio-analyzer ({exc}); install it with pip install presidio-analyzer") from None
    engine = _BlankSpacyEngine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in (EmailRecognizer(), PhoneRecognizer(supported_regions=("US",)), UsSsnRecognizer(), UrlRecognizer(),
                IpRecognizer(), MedicalLicenseRecognizer(), CreditCardRecognizer(), IbanRecognizer()):
        registry.add_recognizer(rec)
    grouped: dict[str, list] = {}
    for kind, regex, score in PATTERNS + _name_patterns():
        grouped.setdefault(kind, []).append(Pattern(f"{kind}_{len(grouped.get(kind, []))}", regex, score))
    for kind, pats in grouped.items():
        # Presidio's default flags include IGNORECASE; names and months must be capitalized to count.
        registry.add_recognizer(PatternRecognizer(supported_entity=f"CT_{kind}", patterns=pats, supported_language="en",
                                                  global_regex_flags=re.DOTALL | re.MULTILINE))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


# Terminology and standards hosts: URLs that name code systems, never people.
ALLOWED_URL_HOSTS = ("hl7.org", "loinc.org", "snomed.info", "unitsofmeasure.org", "json-schema.org", "cms.gov", "cdc.gov",
                     "who.int", "nlm.nih.gov", "clinitune.local")
WEB_TLDS = re.compile(r"(?i)(?:^(?:https?://|www\.)|\.(?:com|org|net|edu|gov|io|me|info|biz|us|health|app|dev|co\.uk)(?:[/:?#]|$))")


def _real_url(span: str) -> bool:
    """Presidio's URL recognizer also fires on `c.pa` or `p.id` in SQL; keep web addresses only, minus terminology hosts."""
    return len(span) >= 6 and bool(WEB_TLDS.search(span)) and not any(h in span for h in ALLOWED_URL_HOSTS)


ENTITIES = PRESIDIO_ENTITIES + [f"CT_{t}" for t in SAFE_HARBOR_TYPES]
THRESHOLD = 0.5


def screen(text: str, extra_names: tuple[str, ...] = ()) -> list[Finding]:
    """Every identifier found in `text`, as types and spans. `extra_names`: the source record's own names."""
    if not text:
        return []
    results = _analyzer().analyze(text, language="en", entities=ENTITIES, score_threshold=THRESHOLD)
    found = [Finding(PRESIDIO_TO_OURS.get(r.entity_type, r.entity_type.removeprefix("CT_")), r.start, r.end, round(r.score, 2))
             for r in results]
    found = [f for f in found if f.type != "URL" or _real_url(text[f.start:f.end])]
    for name in {n for n in extra_names if n and len(n) > 1}:
        for m in re.finditer(rf"\b{re.escape(name)}\b", text):
            found.append(Finding("NAME", m.start(), m.end(), 1.0))
    return sorted(set(found), key=lambda f: (f.start, f.end, f.type))


def types_of(findings: list[Finding]) -> list[str]:
    return sorted({f.type for f in findings})


def check_available() -> None:
    """Raise unless the screen can run; `prepare` calls this first so it fails closed."""
    if screen("Call 617-555-0143") == []:
        raise ClinituneError("the PHI screen ran but found nothing in a known phone number; refusing to continue")
