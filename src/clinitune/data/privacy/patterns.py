"""Identifier patterns: Presidio's validated recognizers and clinitune's own compiled regexes, two detectors.

Presidio (email, phone, SSN, card, IBAN, IP, URL, license) runs on an offline NLP engine (a blank spaCy
tokenizer, no model download). Our patterns cover what Presidio lacks or finds too noisily in clinical text
(MRNs, member ids, fax, addresses, dates finer than a year, ages over 89, driver's licenses, vehicle and
device ids), plus context rules: a place after "resides in" or before "County", and an identifier of any
shape after its label ("passport no.", "member ID", "accession").

Longer than 400 lines because most of it is the pattern table, one identifier kind after another,
each with the reason for its shape; splitting it would separate a pattern from its neighbours.
"""

from __future__ import annotations

import functools
import re

from ...errors import ClinituneError
from .spans import Finding, package_version

PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "SSN",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "MEDICAL_LICENSE": "LICENSE",
    "CREDIT_CARD": "ACCOUNT",
    "IBAN_CODE": "ACCOUNT",
}
PRESIDIO_ENTITIES = list(PRESIDIO_TO_OURS)

MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
# Month names as notes write them: Title case or ALL CAPS (lower-case "may" and "mar" are ordinary words).
MONTHS_ANY = "(?:" + MONTHS + "|" + MONTHS.upper().replace("(?:", "(?:").replace("?|", "?|") + ")"
ORDINAL_WORDS = (
    r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|"
    r"fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|thirty-first|"
    r"twenty-(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth))"
)
STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR "
    "PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI FM MH PW AA AE AP"
).split()
STATE_RE = "(?:" + "|".join(STATES) + ")"
# ", MD" and ", PA" after a name are credentials (physician, physician assistant), so those two need a ZIP to count.
STATE_NO_CREDENTIAL_RE = "(?:" + "|".join(s for s in STATES if s not in ("MD", "PA")) + ")"
STREET_SUFFIX = (
    r"(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Ln|Lane|Dr|Drive|Ct|Court|Way|Pl|Place|Terrace|Ter|Pkwy|Parkway|"
    r"Cir|Circle|Hwy|Highway|Sq|Square)"
)
# The rest of USPS's street suffixes (Publication 28, appendix C1) are also ordinary words ("the 18 Safe Harbor
# identifiers"), so they count only where an address ends: punctuation, a unit, or the end of the text.
MORE_SUFFIX = (
    r"(?:Ways|Circles|Squares|Aly|Alley|Anx|Annex|Arc|Arcade|Bch|Beach|Bend|Blf|Bluff|Bluffs|"
    r"Btm|Bottom|Br|Branch|Brg|Bridge|Brk|Brook|Brooks|Bg|Burg|Burgs|Byp|Bypass|Cp|Camp|Cyn|Canyon|Cpe|Cape|Cswy|Causeway|"
    r"Ctr|Center|Centers|Clf|Cliff|Cliffs|Clb|Club|Cmn|Common|Commons|Cor|Corner|Corners|Crse|Course|Courts|Cv|Cove|Coves|"
    r"Crk|Creek|Cres|Crescent|Crst|Crest|Xing|Crossing|Xrd|Crossroad|Crossroads|Curv|Curve|Dl|Dale|Dm|Dam|Dv|Divide|"
    r"Drives|Est|Estate|Estates|Expy|Expressway|Ext|Extension|Extensions|Fall|Falls|Fry|Ferry|Fld|Field|Fields|Flt|Flat|"
    r"Flats|Frd|Ford|Fords|Frst|Forest|Frg|Forge|Forges|Frk|Fork|Forks|Ft|Fort|Fwy|Freeway|Gdn|Garden|Gardens|Gtwy|Gateway|"
    r"Gln|Glen|Glens|Grn|Green|Greens|Grv|Grove|Groves|Hbr|Harbor|Harbors|Hvn|Haven|Hts|Heights|Hl|Hill|Hills|Holw|Hollow|"
    r"Inlt|Inlet|Is|Island|Islands|Isle|Jct|Junction|Junctions|Ky|Key|Keys|Knl|Knoll|Knolls|Lk|Lake|Lakes|Land|Lndg|Landing|"
    r"Lgt|Light|Lights|Lf|Loaf|Lck|Lock|Locks|Ldg|Lodge|Loop|Mall|Mnr|Manor|Manors|Mdw|Meadow|Meadows|Mews|Ml|Mill|Mills|"
    r"Msn|Mission|Mtwy|Motorway|Mt|Mount|Mtn|Mountain|Mountains|Nck|Neck|Orch|Orchard|Oval|Opas|Overpass|Park|Parks|"
    r"Parkways|Pass|Psge|Passage|Path|Pike|Pne|Pine|Pines|Pln|Plain|Plains|Plz|Plaza|Pt|Point|Points|Prt|Port|Ports|Pr|"
    r"Prairie|Radl|Radial|Ramp|Rnch|Ranch|Rpd|Rapid|Rapids|Rst|Rest|Rdg|Ridge|Ridges|Riv|River|Roads|Rte|Route|Row|Rue|"
    r"Run|Shl|Shoal|Shoals|Shr|Shore|Shores|Skwy|Skyway|Spg|Spring|Springs|Spur|Spurs|Sta|Station|Stra|Stravenue|Strm|"
    r"Stream|Streets|Smt|Summit|Trce|Trace|Trak|Track|Trfy|Trafficway|Trl|Trail|Trlr|Trailer|Tunl|Tunnel|Tpke|Turnpike|"
    r"Upas|Underpass|Un|Union|Unions|Vly|Valley|Valleys|Via|Viaduct|Vw|View|Views|Vlg|Village|Villages|Vl|Ville|Vis|Vista|"
    r"Walk|Walks|Wall|Wl|Well|Wells|Throughway|Trwy|Thruway)"
)
# (type, pattern, score). Case-sensitive unless the pattern says (?i).
PATTERNS: list[tuple[str, str, float]] = [
    (
        "MRN",
        r"(?i)\b(?:MRN|medical\s+record|chart|hospital\s+(?:number|no\.?|#|id)|unit\s+(?:number|no\.?)|patient\s+(?:number|no\.?))(?:\s+(?:number|no\.?|#|id))?\s*[:#-]?\s*#?\s*[A-Z]{0,3}-?\d[\dA-Z-]{4,14}\b",
        0.9,
    ),
    ("MRN", r"\bMRN\d{5,12}\b", 0.9),
    (
        "HEALTH_PLAN",
        r"(?i)\b(?:member|subscriber|policy|beneficiary|insurance|health\s+plan|medicaid|medicare|group)\s*(?:id|number|no\.?|#)\s*[:#-]?\s*[A-Z]{0,4}-?\d[A-Z0-9-]{4,16}\b",
        0.9,
    ),
    ("HEALTH_PLAN", r"\b(?:XGH|BCB|UHC|AET|CGN)\d{8,10}\b", 0.9),
    (
        "HEALTH_PLAN",
        r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]{2}\d{2}\b",
        0.8,
    ),
    ("ACCOUNT", r"(?i)\b(?:account|acct|billing)\b\s*(?:number|no\.?|#)?\s*[:#-]?\s*[A-Z]{0,3}\d[\d-]{4,18}\b", 0.9),
    (
        "FAX",
        r"(?i)\bfax(?:\s+(?:to|at))?\s*(?:number|no\.?|#)?\s*[:#-]?\s*(?:\+?1[\s.-]*)?\(?\d{3}\)?[\s.-]*\d{3}[\s.-]*\d{4}\b",
        0.95,
    ),
    ("PHONE", r"(?<![\d/])(?:\+?1[\s.-]?)?\(\d{3}\)\s?\d{3}[\s.-]?\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?!\d)", 0.85),
    (
        "PHONE",
        r"(?<![\d/.])(?:\+?1[\s.-])?[2-9]\d{2}[\s.-]\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![.]?\d)",
        0.8,
    ),
    ("PHONE", r"(?<![\d/.])(?:001-|\+1-)?[2-9]\d{2}\.\d{3}\.\d{4}(?:x\d{1,5})?(?!\d)", 0.8),
    (
        "PHONE",
        r"(?i)\b(?:phone|tel|telephone|cell|mobile|pager|call|contact|reach(?:ed)?\s+at|number|whatsapp)\b\s*[:#-]?\s*\+?\d[\d\s().-]{8,16}\d\b",
        0.85,
    ),
    ("PHONE", r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,5}){2,4}\b", 0.85),
    ("SSN", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", 0.9),
    (
        "SSN",
        r"(?i)\b(?:SSN|S\.S\.N\.?|SS#|soc(?:ial)?\.?\s+sec(?:urity)?\.?(?:\s+(?:number|no\.?|#))?)\s*[:#-]?\s*\d{3}[\s.-]?\d{2}[\s.-]?\d{4}\b",
        0.95,
    ),
    ("SSN", r"(?<![\d-])\d{3}\s\d{2}\s\d{4}(?![\d-])", 0.6),
    (
        "LOCATION",
        r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}"
        + STREET_SUFFIX
        + r"\b\.?(?:,?\s*(?:Apt|Suite|Unit|#)\s*\w+)?",
        0.85,
    ),
    (
        "LOCATION",
        r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}"
        + MORE_SUFFIX
        + r"\b\.?(?:,?\s*(?:Apt\.?|Suite|Unit|#)\s*\w+|(?=\s*(?:[,.;)\n]|$)))",
        0.85,
    ),
    ("LOCATION", r"\b(?:P\.?\s?O\.?\s+Box|PO\s+Box)\s+\d+\b", 0.9),
    ("LOCATION", r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s" + STATE_NO_CREDENTIAL_RE + r"\b(?:\s+\d{5}(?:-\d{4})?)?", 0.7),
    ("LOCATION", r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s" + STATE_RE + r"\s+\d{5}(?:-\d{4})?\b", 0.8),
    ("LOCATION", r"\b" + STATE_RE + r"\s+\d{5}(?:-\d{4})?\b", 0.9),
    ("LOCATION", r"(?i)\b(?:zip(?:\s*code)?|postal\s+code|zipcode)\s*[:#-]?\s*\d{5}(?:-\d{4})?\b", 0.95),
    ("LOCATION", r"\b\d{5}-\d{4}\b", 0.85),
    # One separator throughout: "11.5-14.5" is a reference range, not a date.
    ("DATE", r"(?<![\d/.])(?:0?[1-9]|1[0-2])([/.-])(?:0?[1-9]|[12]\d|3[01])\1(?:19|20)?\d{2}(?![\d/])", 0.9),
    (
        "DATE",
        r"(?<![\d-])(?:19|20)\d{2}[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])(?:[T "
        r"]\d{2}:\d{2}(?::\d{2})?)?(?!\d)",
        0.95,
    ),
    ("DATE", r"\b" + MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+(?:19|20)\d{2})?\b", 0.85),
    ("DATE", r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + MONTHS + r"\.?,?\s+(?:19|20)\d{2}\b", 0.9),
    ("DATE", r"\b" + MONTHS + r"\.?,?\s+(?:19|20)\d{2}\b", 0.8),
    ("DATE", r"\b\d{1,2}-" + MONTHS + r"-(?:19|20)?\d{2}\b", 0.9),
    ("DATE", r"(?<![\d.-])(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d|\.\d)", 0.8),
    (
        "DATE",
        r"(?i)\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|born(?:\s+on)?|admitted(?:\s+on)?|discharged(?:\s+on)?|DOS|date\s+of\s+service|seen\s+on|died(?:\s+on)?|deceased)\s*[:#-]?\s*(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])\b",
        0.9,
    ),
    # Dates as other countries and other hands write them: day first, capitals, ordinals in words, no year.
    ("DATE", r"(?<![\d/.])(?:1[3-9]|2\d|3[01])[/.-](?:0?[1-9]|1[0-2])[/.-](?:19|20)\d{2}(?![\d/])", 0.9),
    ("DATE", r"(?<![\d/.])(?:0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01])\.(?:19|20)\d{2}(?![\d/])", 0.9),
    ("DATE", r"(?<![\d/.])(?:19|20)\d{2}[/.](?:0?[1-9]|1[0-2])[/.](?:0?[1-9]|[12]\d|3[01])(?![\d/])", 0.9),
    ("DATE", r"\b" + MONTHS_ANY + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{2}\b", 0.9),
    ("DATE", r"\b\d{1,2}[-\s]?" + MONTHS_ANY + r"[-\s]?(?:19|20)?\d{2}\b", 0.85),
    ("DATE", r"\b\d{1,2}(?:st|nd|rd|th)\s+(?:of\s+)?" + MONTHS_ANY + r"\b(?:,?\s+(?:19|20)\d{2})?", 0.85),
    ("DATE", r"\b\d{1,2}\s+" + MONTHS + r"\b(?:,?\s+(?:19|20)\d{2})?", 0.8),
    (
        "DATE",
        r"(?i)\b(?:the\s+)?(?:"
        + ORDINAL_WORDS
        + r"|\d{1,2}(?:st|nd|rd|th))\s+(?:day\s+)?of\s+"
        + MONTHS
        + r"\b(?:,?\s+(?:19|20)\d{2})?",
        0.85,
    ),
    ("DATE", r"(?i)\b" + MONTHS + r"\s+(?:the\s+)?" + ORDINAL_WORDS + r"\b(?:,?\s+(?:19|20)\d{2})?", 0.85),
    ("DATE", r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])", 0.75),
    (
        "DATE",
        r"(?i:\b(?:on|since|from|until|till|by|dated?|through|thru|after|before|seen|admitted|discharged|due|"
        r"starting|effective|DOS|DOB)\s*:?\s+)(?P<v>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![\d/])",
        0.8,
    ),
    (
        "DATE",
        r"(?i)\b(?:the\s+)(?:\d{1,2}(?:st|nd|rd|th))\b(?!\s+(?:of\s+)?(?:percentile|grade|cranial|day|week|"
        r"dose|time|visit|cycle|rib|toe|finger|digit|ICS|intercostal|floor|line|degree|trimester|edition|revision|"
        r"century|amendment|percentile|place|step|item|question|character|position))",
        0.7,
    ),
    ("AGE_OVER_89", r"(?i)\b(?:9\d|1[0-2]\d)(?:\s*|-)(?:years?|yrs?|y/?o|y\.o\.?|year-old|yo)(?![a-z])", 0.9),
    ("AGE_OVER_89", r"\b(?:9\d|1[0-2]\d)\s?(?:F|M|yo[FM]|y[FM])\b", 0.85),
    (
        "AGE_OVER_89",
        r"(?i:\b(?:she|he|they|patient|pt|who|mom|mum|dad|mother|father|grandma|grandpa)(?:'s|\s+is|\s+was|\s+turned|"
        r"\s+turns|\s+just\s+turned|\s+is\s+now|\s+will\s+be)\s+)(?P<v>9\d|1[01]\d)\b(?!\s*(?:%|mg|mcg|mm|cm|kg|lbs?|"
        r"bpm|percent|degrees|°|/|\.\d|beats|breaths|minutes|min|lb|pounds))",
        0.85,
    ),
    (
        "AGE_OVER_89",
        r"(?i),\s+(?P<v>ninety(?:-(?:one|two|three|four|five|six|seven|eight|nine))?|one\s+hundred(?:\s+and\s+\w+)?)"
        r"(?=\s*[,.;)])",
        0.85,
    ),
    # "90+" and "90 or older" are Safe Harbor's own category for every age over 89: the allowed output, not a leak.
    ("AGE_OVER_89", r"(?i)\b(?:age|aged)\s*[:=]?\s*(?:9\d|1[0-2]\d)\b(?!\s*\+|\s*or\s+older|-or-older)", 0.9),
    ("AGE_OVER_89", r"(?i)\b(?:nonagenarian|centenarian|supercentenarian)\b", 0.7),
    (
        "AGE_OVER_89",
        r"(?i)\b(?:ninety|one\s+hundred(?:\s+and)?)(?:[\s-]+(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))?[\s-]+(?:years?|yrs?)(?:[\s-]+old)?\b",
        0.9,
    ),
    (
        "AGE_OVER_89",
        r"(?i)\b(?:he|she|they|patient|pt|who|resident|veteran|woman|man|lady|gentleman)\s+(?:is|was|turned|turns|just\s+turned|is\s+now)\s+(?:9\d|1[01]\d)\b(?!\s*(?:%|mg|mcg|mm|cm|kg|lbs?|bpm|percent|degrees|°|/|\.\d|beats|breaths))",
        0.85,
    ),
    ("AGE_OVER_89", r"(?i)\bage(?:d)?\s+(?:ninety|one\s+hundred)(?:[\s-]+\w+)?\b", 0.85),
    ("VEHICLE", r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b", 0.85),
    (
        "VEHICLE",
        r"(?i)\b(?:license\s+plate|plate(?:\s+(?:number|no\.?|#))?|VIN)(?![A-Za-z])\s*[:#-]?\s*(?=[A-Z0-9 "
        r"-]{0,9}\d)[A-Z0-9]{2,4}[-\s]?[A-Z0-9]{2,5}\b",
        0.9,
    ),
    (
        "DEVICE",
        r"(?i)\b(?:serial(?:\s+(?:number|no\.?|#))?|S/N|SN|device\s+(?:id|identifier)|UDI|IMEI|lot(?:\s+(?:number|no\.?|#)))(?![a-z])\s*[:#-]?\s*(?=[A-Z0-9()./:-]*\d)\(?[A-Z0-9][A-Z0-9()./:-]{5,}\b",
        0.9,
    ),
    ("DEVICE", r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b", 0.9),
    ("DEVICE", r"\(01\)\d{14}", 0.9),
    (
        "LICENSE",
        r"(?i)\b(?:license|licence|DEA|NPI|certificate|cert|registration)\b\s*(?:number|no\.?|#)?\s*[:#-]?\s*[A-Z]{0,2}\d{5,10}\b",
        0.9,
    ),
    ("LICENSE", r"\b[A-Z][A-Z9]\d{7}\b", 0.6),
    # Driver's licenses: every state's format follows a label; the value is 1-4 groups of letters, digits and *.
    (
        "LICENSE",
        r"(?i)\b(?:driver'?s?'?\s+licen[sc]e|driving\s+licen[sc]e|driver\s+lic\.?|(?-i:DL)|D\.L\.|DLN|CDL|state\s+id|ID\s+card|licen[sc]e)"
        r"(?:\s+(?:number|no\.?|#|num))?\s*[:#-]?\s*#?\s*(?=[A-Z0-9*]*\d)(?-i:[A-Z0-9*]{1,13}(?:[\s-][A-Z0-9*]{1,6}){0,4})\b",
        0.9,
    ),
    ("URL", r"(?i)\b(?:https?://|www\.)[^\s<>\"']+", 0.9),
    ("IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", 0.9),
    ("IP", r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b", 0.9),
    (
        "BIOMETRIC",
        r"(?i)\b(?:fingerprint|finger\s*print|retina(?:l)?\s+scan|iris\s+scan|voice\s*print|face\s*print|palm\s*print|biometric)\s*(?:id|template|hash|record|scan)?\s*[:#-]?\s*(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,}\b",
        0.9,
    ),
    ("PHOTO", r"(?i)\b[\w-]+\.(?:jpe?g|png|heic|bmp|tiff?|gif)\b", 0.8),
    ("PHOTO", r"(?i)\b(?:full[-\s]face|facial)\s+(?:photo(?:graph)?|image|picture)\b", 0.7),
    (
        "OTHER_ID",
        r"(?i)\b(?:patient\s+id|pt\s+id|case\s+(?:number|no\.?|#|id)|record\s+(?:number|no\.?|#|id)|accession\s+(?:number|no\.?|#)|encounter\s+(?:number|no\.?|#|id)|visit\s+(?:number|no\.?|#|id)|claim\s+(?:number|no\.?|#|id)|employee\s+(?:id|number|#))\s*[:#-]?\s*(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b",
        0.9,
    ),
    ("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 0.95),
    # Context rules (the rest are in context.py).
    # A place is named by what surrounds it: "County" after it, "resides in" before it.
    ("LOCATION", r"\b(?:[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)?|St\.\s[A-Z][a-z]+)\s(?:County|Parish|Borough)\b", 0.85),
    (
        "LOCATION",
        r"(?i:\b(?:resides?|residing|lives?|living|lived|moved|relocated|originally|grew\s+up|born|raised|home|"
        r"house|apartment|farm|shelter|hometown|town\s+of|city\s+of|village\s+of|outside\s+of)"
        r"(?:\s+(?:here|there|alone|with\s+\w+|back|out))?\s+(?:in|at|near|from|to|outside|of)\s+)"
        r"(?P<v>[A-Z][a-z]+(?:[\s-][A-Z][a-z]+){0,2})(?=\s*(?:[,.;)\n]|$|\s+(?:and|with|where|since|for|but|until|area)\b))",
        0.75,
    ),
    # A long run of digits, or a code with five digits and a letter, identifies something: no dose, lab value or
    # score is written that way ("XKW884201937", "SP24-18833"). Obstetric history (G2P1001) is not.
    ("OTHER_ID", r"(?<![\d.,/-])\d{7,}(?![\d]|[.,]\d)", 0.7),
    (
        "OTHER_ID",
        r"(?<![\w.-])(?!G\d{1,2}P\d|[A-TV-Z]\d[0-9A-Z]\.[0-9A-Z]{1,4}\b)(?=(?:[A-Za-z-]*\d){5})(?=[A-Za-z0-9-]*[A-Za-z])"
        r"[A-Za-z0-9][A-Za-z0-9-]{4,30}[A-Za-z0-9](?![\w-])",
        0.7,
    ),
    # An identifier of any shape after its label: the label says what it is, whatever the format.
    (
        "OTHER_ID",
        r"(?i:\b(?:passport|member|subscriber|policy|beneficiary|medicaid|medicare|accession|acc|referral|ticket|"
        r"case|claim|auth(?:orization)?|study|subject|participant|enrollment|specimen|requisition|badge|employee|serial|"
        r"s/n|sn|implant|udi|lot|plate|vin|license|licence|lic|dl|dln|npi|dea|mrn|chart|acct|account|encounter|"
        r"confirmation|tracking|voucher|fingerprint|biometric|id|mbi|hicn|booking|report|police\s+report|inmate|"
        r"docket|permit|certificate|uid|guarantor|customer|member\s+number|group)\b\.?"
        r"(?:\s*(?:id|no\.?|num(?:ber)?|#|code))?(?:\s+(?:is|was|reads|on\s+file|updated\s+to|changed\s+to|listed\s+as|"
        r"of|as|=))?\s*[:#=-]?\s*#?\s*)"
        r"(?P<v>(?![A-TV-Z]\d[0-9A-Z]\.[0-9A-Z]{1,4}\b)(?=[A-Za-z0-9/.()-]*\d)[A-Za-z0-9][A-Za-z0-9/.()-]{2,60}"
        r"[A-Za-z0-9])\b",
        0.8,
    ),
]


class _BlankSpacyEngine:
    """Presidio NlpEngine on spaCy's blank English tokenizer: tokens and lemmas, no NER model to download."""

    def __new__(cls):
        # Imported when the screen first runs: spaCy and Presidio take seconds to import, and commands
        # that never screen (train on vouched data, export) should not pay for them.
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
                return NlpArtifacts(
                    entities=[],
                    tokens=doc,
                    tokens_indices=[t.idx for t in doc],
                    lemmas=[t.text.lower() for t in doc],
                    nlp_engine=self,
                    language=language,
                )

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
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            MedicalLicenseRecognizer,
            PhoneRecognizer,
            UrlRecognizer,
            UsSsnRecognizer,
        )
    except ImportError as exc:
        raise ClinituneError(
            f"the PHI screen needs presidio-analyzer ({exc}); install it with pip install presidio-analyzer"
        ) from None
    engine = _BlankSpacyEngine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in (
        EmailRecognizer(),
        PhoneRecognizer(supported_regions=("US",)),
        UsSsnRecognizer(),
        UrlRecognizer(),
        IpRecognizer(),
        MedicalLicenseRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
    ):
        registry.add_recognizer(rec)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


# Our own patterns run as one compiled pass: through Presidio's PatternRecognizer they cost about half the
# screen's time in per-call overhead, for the same matches. Case-sensitive unless a pattern says (?i); a pattern
# with a group named v reports that group (the value, not its label).
STREET_AFTER_NAME = re.compile(r"\b\d{1,6}\s+(?:[A-Z][a-z]+\s+){1,3}" + MORE_SUFFIX + r"\b")
COMPILED = [(kind, re.compile(regex, re.DOTALL | re.MULTILINE), score) for kind, regex, score in PATTERNS]


# Terminology and standards hosts: URLs that name code systems, never people.
ALLOWED_URL_HOSTS = (
    "hl7.org",
    "loinc.org",
    "snomed.info",
    "unitsofmeasure.org",
    "json-schema.org",
    "cms.gov",
    "cdc.gov",
    "who.int",
    "nlm.nih.gov",
    "clinitune.local",
)
WEB_TLDS = re.compile(
    r"(?i)(?:^(?:https?://|www\.)|\.(?:com|org|net|edu|gov|io|me|info|biz|us|health|app|dev|co\.uk)(?:[/:?#]|$))"
)


def _real_url(span: str) -> bool:
    """Presidio's URL recognizer also fires on `c.pa` or `p.id` in SQL: keep web addresses only, minus terminology
    hosts."""
    return len(span) >= 6 and bool(WEB_TLDS.search(span)) and not any(h in span for h in ALLOWED_URL_HOSTS)


THRESHOLD = 0.5


class PresidioDetector:
    """Presidio's validated recognizers (checksums, formats) for the kinds it knows."""

    name = "presidio"

    def version(self) -> str:
        return f"presidio-analyzer {package_version('presidio-analyzer')}"

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        out = []
        for text in texts:
            results = _analyzer().analyze(text, language="en", entities=PRESIDIO_ENTITIES, score_threshold=THRESHOLD)
            found = [Finding(PRESIDIO_TO_OURS[r.entity_type], r.start, r.end, round(r.score, 2)) for r in results]
            out.append([f for f in found if f.type != "URL" or _real_url(text[f.start : f.end])])
        return out


class PatternDetector:
    """clinitune's compiled patterns and context rules, one pass per text."""

    name = "patterns"

    def version(self) -> str:
        return f"{len(COMPILED)} patterns"

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        out = []
        for text in texts:
            found = [
                Finding(kind, *m.span("v" if "v" in rx.groupindex else 0), score)
                for kind, rx, score in COMPILED
                for m in rx.finditer(text)
            ]
            out.append([f for f in found if f.type != "URL" or _real_url(text[f.start : f.end])])
        return out
