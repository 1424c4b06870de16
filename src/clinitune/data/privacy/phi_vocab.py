"""Clinical words that are never identifiers, from maintained packages: the suppressions of the PHI screen
and the hard negatives of its learned model's training text.

- Drug names: the `drug-named-entity-recognition` package (Thomas Wood, Fast Data Science; MIT), 107k generic
  and brand names and variants from MeSH, DrugBank and MedlinePlus, pinned by sha256 in requirements-phi.txt.
  Its dictionary is a bz2 pickle: it is read with an unpickler that refuses every class, so the file can hold
  dicts, lists and strings only and can run no code.
- Eponyms and clinical nouns: `phi_names`' lists and the ICD-10-CM descriptions (simple-icd-10-cm).
- Weekdays, months, units and clinical abbreviations: written here; they are the language, not data.
"""

from __future__ import annotations

import bz2
import functools
import importlib.util
import io
import pickle
import re
from pathlib import Path

from ...errors import ClinituneError

DRUG_PACKAGE = "drug_named_entity_recognition"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_FORMS = frozenset(
    [d for d in WEEKDAYS]
    + [d + "s" for d in WEEKDAYS]
    + [d[:3] for d in WEEKDAYS]
    + ["tues", "thur", "thurs", "weds", "mon", "wed", "fri", "sat", "sun"]
)
UNITS = frozenset(
    "mg mcg g kg lb lbs ml l dl mmol meq iu units unit mmhg bpm cm mm in ft oz hr hrs min mins sec tab tabs cap caps "
    "puff puffs drop drops gtt patch spray vial daily weekly nightly monthly hourly".split()
)
ABBREVIATIONS = frozenset(
    """bid tid qid qd qhs qam qpm prn po iv im sq sc subq sl pr od os ou npo stat asap ad lib q4h q6h q8h q12h q24h qod
    tdap dtap mmr ppsv23 pcv13 pcv15 pcv20 hpv hib ipv bcg covid rsv ed er icu ccu nicu picu or pacu ot pt slp
    copd chf cad cabg nstemi stemi mi afib dvt pe uti cva tia gerd ckd esrd aki dka hhs osa htn hld dm t2dm t1dm bph
    ctx cbc bmp cmp lfts tsh inr ptt bnp ekg ecg cxr ct mri pet us echo tte tee eeg emg nad perrla cta rrr
    wnl nkda sob doe cp abd ext neuro psych""".split()
)


# Eponymous devices, tests and dressings written as bare words ("Doppler.", "Foley removed"): no drug list holds them.
EPONYM_DEVICES = frozenset(
    """doppler holter foley swan-ganz ambu yankauer jackson-pratt hemovac pleurx mepilex tegaderm duoderm coban kerlix
    xeroform aquacel medihoney prevalon lacri-lube tyrer-cuzick gail bipap cpap picc port-a-cath hickman groshong
    mediport quinton permcath trach dobhoff salem ng pigtail""".split()
)


class _NoClasses(pickle.Unpickler):
    """Dicts, lists, strings, numbers and booleans only: a pickle that names any class or function is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused {module}.{name}: the drug dictionary may hold plain data only")


@functools.lru_cache(maxsize=1)
def drug_names() -> frozenset[str]:
    """Lower-case drug names and brand names, one word or several, as the package lists them."""
    spec = importlib.util.find_spec(DRUG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ClinituneError(
            f"the PHI screen needs the drug-name package {DRUG_PACKAGE!r}; reinstall clinitune (make setup)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "drug_ner_dictionary.pkl.bz2"
    # Read the file, not the package: importing it opens a cache file in the user's home directory.
    data = _NoClasses(io.BytesIO(bz2.decompress(path.read_bytes()))).load()
    return frozenset(k for k in data["drug_variant_to_canonical"] if isinstance(k, str))


@functools.lru_cache(maxsize=1)
def drug_words() -> frozenset[str]:
    """Single-word drug names of five letters or more ("eliquis", "metoprolol"): shorter entries in the
    dictionary include gene and enzyme symbols that collide with initials and surnames."""
    return frozenset(d for d in drug_names() if re.fullmatch(r"[a-z][a-z-]{4,}", d))


def is_clinical_word(word: str) -> bool:
    """A word the screen never treats as a person or a place on its own: a drug, a weekday, a unit, an abbreviation."""
    w = word.lower().strip(".,;:'’()").removesuffix("'s").removesuffix("’s")
    return w in WEEKDAY_FORMS or w in UNITS or w in ABBREVIATIONS or w in EPONYM_DEVICES or w in drug_words()
