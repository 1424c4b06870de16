"""The PHI screen's detectors side by side on a generated set: recall, false alarms and examples/s for the
rules, the rules with spaCy's NER, the learned model alone, and their union (the screen).

The learned model trains on Faker names too (phi_synth), so this set is no longer independent of it; the
evidence on text the project never wrote is bench/phi_heldout.py. Names here come from Faker's locales, in
many frames: labels, signatures, salutations, case presentations, kinship, "Lastname, Firstname", lowercase, ALL CAPS,
initials. The other identifiers vary in format (dates in every common form, US and international
phones, driver's licenses in many states' formats, ages over 89 in digits and words). Clean lines are
clinical text dense with eponyms, scores and brand drugs. A planted identifier counts as found when any
finding overlaps it; a clean line with any finding is a false alarm.

    python bench/phi_screen.py [--n 1200] [--seed 7] [--misses 10]

Prints the side-by-side table, the screen's table per kind, and its misses and false alarms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from faker import Faker

from clinitune.data.privacy.phi import screen_texts
from clinitune.stats import wilson

LOCALES = [
    "vi_VN",
    "ga_IE",
    "fr_FR",
    "de_DE",
    "es_MX",
    "it_IT",
    "pl_PL",
    "pt_BR",
    "nl_NL",
    "sv_SE",
    "fi_FI",
    "cs_CZ",
    "hu_HU",
    "ro_RO",
    "id_ID",
    "tr_TR",
    "en_IN",
    "en_NG",
    "yo_NG",
    "tw_GH",
    "sw",
    "zu_ZA",
    "ka_GE",
    "hr_HR",
    "sk_SK",
    "da_DK",
    "no_NO",
    "et_EE",
    "lt_LT",
    "lv_LV",
    "sl_SI",
    "fil_PH",
    "en_IE",
    "es_ES",
    "es_CO",
    "pt_PT",
    "de_AT",
    "de_CH",
    "fr_CA",
    "nl_BE",
]

NAME_FRAMES = [
    "Patient: {full}",
    "Name: {full}",
    "Pt name: {full}, DOB on file.",
    "{full} is a 54-year-old with type 2 diabetes.",
    "Case presentation: {first}, a 7-year-old with fever.",
    "Dear {first},",
    "Hi {first}, your results are back.",
    "Thanks, {full}",
    "-- {full}, RN",
    "Signed: {full}, MD",
    "Electronically signed by {full} on the encounter.",
    "Spoke with his wife {first} about discharge.",
    "Daughter {full} at bedside.",
    "Mrs. {last} declined the flu vaccine.",
    "Mr. {last} reports chest pain since this morning.",
    "Dr. {last} was consulted for the rash.",
    "{last}, {first} seen in clinic today.",
    "Seen by {full} in the emergency department.",
    "Accompanied by her son {first}.",
    "{full} presented with shortness of breath.",
    "patient {lfull} presents with cough",
    "Referred by {full} for evaluation.",
    "Discussed the plan with {full} by phone.",
    "Emergency contact: {full}",
    "{initial}. {last} reviewed the imaging.",
    "Per {full}, the patient fell twice.",
    "PATIENT: {ufull}",
    "Nurse {first} administered the dose.",
    "{full} (caregiver) asks about home oxygen.",
    "Attending: {full}",
    "Message from {full}: the patient is doing well.",
    "{first} {last} called to reschedule.",
]
CLEAN = [
    "Positive Murphy sign on exam; ultrasound ordered.",
    "History of Parkinson's disease, on Sinemet.",
    "Hodgkin lymphoma in remission since chemotherapy.",
    "Bell's palsy on the left, improving.",
    "Apgar score 8 and 9.",
    "Glasgow Coma Scale 15 on arrival.",
    "Lasix 40 mg IV given.",
    "Charcot-Marie-Tooth disease runs in the family.",
    "Thomas splint applied in the field.",
    "Kelly clamp used for hemostasis.",
    "Ann Arbor staging IIA.",
    "Sister Mary Joseph nodule noted on exam.",
    "Admitted to the Medical Ward overnight.",
    "Total White blood cell count 11.2.",
    "Trousseau sign positive after cuff inflation.",
    "Chvostek sign negative.",
    "Kussmaul respirations with a pH of 7.1.",
    "Cheyne-Stokes breathing observed overnight.",
    "Osler nodes and Janeway lesions absent.",
    "Reed-Sternberg cells on biopsy.",
    "Mallory-Weiss tear seen on endoscopy.",
    "Colles fracture of the right wrist.",
    "Lachman test positive on the left knee.",
    "Phalen test and Tinel sign positive.",
    "Dix-Hallpike maneuver reproduced vertigo.",
    "Epley maneuver performed in clinic.",
    "Gleason score 3+4 on biopsy.",
    "Wells score 4.5; CT angiogram ordered.",
    "CHA2DS2-VASc score of 3; started Eliquis.",
    "Child-Pugh class B cirrhosis.",
    "Switched from Coumadin to Xarelto.",
    "Keppra 500 mg twice daily for seizures.",
    "Zosyn started for aspiration pneumonia.",
    "Toradol 15 mg given for pain.",
    "Narcan administered with good response.",
    "Home meds include Synthroid, Lipitor and Metformin.",
    "Foley catheter removed on day 2.",
    "Swan-Ganz catheter placed in the ICU.",
    "Whipple procedure in 2019 for a pancreatic mass.",
    "Nissen fundoplication for reflux.",
    "Mann-Whitney U test, p = 0.03.",
    "Kaplan-Meier curves by treatment arm.",
    "Cox regression adjusted for age.",
    "Fisher exact test for the 2x2 table.",
    "Student's t-test on log values.",
    "Framingham risk 12 percent.",
    "Braden score 14; turn every two hours.",
    "Morse Fall Scale 45.",
    "MELD score 18.",
    "Cockcroft-Gault creatinine clearance 48 mL/min.",
    "Westergren ESR 40 mm/h.",
    "Gram stain shows gram-positive cocci in clusters.",
    "Wright stain of the smear.",
    "Holter monitor for 48 hours.",
    "Valsalva maneuver terminated the SVT.",
    "Romberg sign positive.",
    "Babinski sign present bilaterally.",
    "Kernig and Brudzinski signs negative.",
    "Homans sign unreliable for DVT.",
    "Trendelenburg position for line placement.",
    "Graves disease treated with methimazole.",
    "Hashimoto thyroiditis on levothyroxine.",
    "Addison disease on hydrocortisone.",
    "Cushing syndrome workup pending.",
    "Crohn disease flare.",
    "Barrett esophagus on surveillance.",
    "Raynaud phenomenon in cold weather.",
    "Guillain-Barre syndrome after infection.",
    "Down syndrome with an atrioventricular canal defect.",
    "Turner syndrome, karyotype 45,X.",
    "Marfan syndrome with aortic root dilation.",
    "Kawasaki disease treated with IVIG.",
    "Wilms tumor resected.",
    "Ewing sarcoma of the femur.",
    "Burkitt lymphoma on chemotherapy.",
    "Tanner stage 3.",
    "Bishop score 7.",
    "Mallampati class II airway.",
    "ECOG performance status 1.",
    "Karnofsky score 80.",
    "Beck Depression Inventory score 22.",
    "Edinburgh Postnatal Depression Scale 12.",
    "Montreal Cognitive Assessment 24 of 30.",
    "Blood pressure 142/88, heart rate 96, SpO2 95 %.",
    "A1c 7.4 % on 2 checks.",
    "Pain 6/10, improved to 3/10 after Tylenol.",
    "Follow up in 2 weeks with repeat BMP.",
    "Started Ozempic 0.25 mg weekly.",
    "Continue Jardiance and Januvia.",
    "Austin Flint murmur heard at the apex.",
    "Korotkoff sounds audible to 40 mmHg.",
    "Auer rods seen on the smear.",
    "Howell-Jolly bodies after splenectomy.",
    "Virchow node palpable.",
    "Beck triad on presentation.",
    "Light criteria meet exudate.",
    "Duke criteria for endocarditis satisfied.",
    "Ranson criteria 3 at 48 hours.",
    "Centor score 2.",
    "Killip class II.",
    "NYHA class III heart failure.",
    "Rockall score 4.",
    "Caprini score 5; enoxaparin started.",
    "Ballard score 35 weeks.",
]
DL_FORMATS = [
    "D{d7}",
    "S{d3}-{d3}-{d2}-{d3}-{d1}",
    "{L5}{L1}*{d3}{L2}",
    "{d3} {d3} {d3}",
    "{L1}{d12}",
    "{d9}",
    "{L1}{d8}",
    "{L2}{d6}",
    "{L1}{d3}-{d4}-{d4}",
    "{d2}-{d3}-{d4}",
    "{L1}{d7}",
    "{d7}",
    "{L1}{d2}-{d2}-{d4}",
]
DL_FRAMES = [
    "Driver's license {v}",
    "DL# {v}",
    "Driver license number: {v}",
    "DL {v} on file",
    "driver's license no. {v}",
    "ID: driver's license {v}",
    "Drivers License: {v}",
]
AGES = [
    "{n}-year-old",
    "{n} years old",
    "aged {n}",
    "age {n}",
    "{n} yo",
    "{n} y/o",
    "She is {n} and lives alone.",
    "ninety-{w} years old",
    "He turned {n} last month.",
    "one hundred years old",
    "a {n} year old man",
    "Age: {n}",
]
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _fill(fmt: str, rng: random.Random) -> str:
    out = fmt
    for k in range(12, 0, -1):
        out = out.replace(f"{{d{k}}}", "".join(str(rng.randrange(10)) for _ in range(k)))
        out = out.replace(f"{{L{k}}}", "".join(chr(65 + rng.randrange(26)) for _ in range(k)))
    return out


def _date(rng: random.Random) -> str:
    y, m, d = rng.randrange(1925, 2024), rng.randrange(1, 13), rng.randrange(1, 29)
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(d if d < 20 else d % 10, "th")
    return rng.choice(
        [
            f"{m:02d}/{d:02d}/{y}",
            f"{m}/{d}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{months[m - 1]} {d}, {y}",
            f"{d} {months[m - 1]} {y}",
            f"{d}{suffix} of {months[m - 1]} {y}",
            f"{months[m - 1][:3]} {d}, {y}",
            f"{d:02d}-{months[m - 1][:3]}-{y}",
            f"{m:02d}/{d:02d}/{y % 100:02d}",
            f"{y}{m:02d}{d:02d}",
        ]
    )


def generate(n: int, seed: int) -> list[tuple[str, str | None, int, int]]:
    """(text, kind or None, start, end) rows: half names, half other identifiers, then as many clean lines."""
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES if _has_locale(loc)}
    us = Faker("en_US")
    for f in [us, *fakers.values()]:
        f.seed_instance(seed)
    rows = []

    def plant(template: str, value: str, kind: str):
        text = template.replace("{v}", value)
        start = text.index(value)
        rows.append((text, kind, start, start + len(value)))

    contexts = [
        "{x}",
        "Note: {x}",
        "Per chart, {x}.",
        "{x} confirmed at the front desk.",
        "Referral letter includes {x}.",
    ]
    for i in range(n):
        r = rng.random()
        if r < 0.5:
            loc = rng.choice(sorted(fakers))
            f = fakers[loc]
            first, last = _latin(f.first_name()), _latin(f.last_name())
            if not first or not last:
                continue
            frame = rng.choice(NAME_FRAMES)
            full = f"{first} {last}"
            value = {"{full}": full, "{first}": first, "{last}": last, "{lfull}": full.lower(), "{ufull}": full.upper()}
            key = next(k for k in ("{full}", "{lfull}", "{ufull}", "{first}", "{last}") if k in frame)
            text = (
                frame.replace("{initial}", first[0])
                .replace("{full}", full)
                .replace("{first}", first)
                .replace("{last}", last)
            )
            text = text.replace("{lfull}", full.lower()).replace("{ufull}", full.upper())
            start = text.index(value[key])
            rows.append((text, "NAME", start, start + len(value[key])))
            continue
        kind = rng.choice(
            [
                "DATE",
                "PHONE",
                "SSN",
                "MRN",
                "EMAIL",
                "LOCATION",
                "LICENSE",
                "AGE_OVER_89",
                "HEALTH_PLAN",
                "ACCOUNT",
                "IP",
                "URL",
            ]
        )
        ctx = rng.choice(contexts)
        if kind == "DATE":
            plant(
                ctx.replace(
                    "{x}",
                    rng.choice(["DOB {v}", "seen on {v}", "admitted {v}", "surgery on {v}", "date of birth: {v}"]),
                ),
                _date(rng),
                kind,
            )
        elif kind == "PHONE":
            v = rng.choice(
                [us.phone_number(), f"+{rng.choice([44, 33, 49, 91, 234, 52, 81, 61])} {_fill('{d2} {d4} {d4}', rng)}"]
            )
            plant(ctx.replace("{x}", rng.choice(["call {v}", "phone {v}", "cell: {v}", "reach at {v}"])), v, kind)
        elif kind == "SSN":
            v = _fill(rng.choice(["{d3}-{d2}-{d4}", "{d3} {d2} {d4}", "{d9}"]), rng)
            plant(ctx.replace("{x}", rng.choice(["SSN {v}", "social security number {v}", "SSN: {v}"])), v, kind)
        elif kind == "MRN":
            v = _fill(rng.choice(["{d8}", "{L1}{d8}", "{d7}", "MRN{d7}"]), rng)
            plant(
                ctx.replace("{x}", rng.choice(["MRN: {v}", "medical record number {v}", "Chart #{v}", "MRN {v}"])),
                v,
                kind,
            )
        elif kind == "EMAIL":
            plant(ctx.replace("{x}", rng.choice(["email {v}", "contact: {v}", "sent to {v}"])), us.email(), kind)
        elif kind == "LOCATION":
            v = rng.choice(
                [
                    us.street_address(),
                    f"{us.city()}, {us.state_abbr()} {us.zipcode()}",
                    us.street_address() + ", " + us.city(),
                ]
            )
            plant(ctx.replace("{x}", rng.choice(["lives at {v}", "address: {v}", "moved to {v}"])), v, kind)
        elif kind == "LICENSE":
            plant(rng.choice(DL_FRAMES), _fill(rng.choice(DL_FORMATS), rng), kind)
        elif kind == "AGE_OVER_89":
            t = rng.choice(AGES).replace("{n}", str(rng.randrange(90, 106))).replace("{w}", rng.choice(WORDS))
            rows.append((t, kind, 0, len(t)))
        elif kind == "HEALTH_PLAN":
            plant(
                ctx.replace("{x}", rng.choice(["Member ID: {v}", "insurance ID {v}", "policy number {v}"])),
                _fill("{L3}{d9}", rng),
                kind,
            )
        elif kind == "ACCOUNT":
            plant(
                ctx.replace("{x}", rng.choice(["account number {v}", "Acct #: {v}"])),
                _fill("{d4}-{d4}-{d4}", rng),
                kind,
            )
        elif kind == "IP":
            plant(ctx.replace("{x}", "logged in from {v}"), us.ipv4(), kind)
        else:
            plant(ctx.replace("{x}", "portal {v}"), f"https://{us.domain_name()}/p/{rng.randrange(10**6)}", kind)
    planted = len(rows)
    for _ in range(planted):
        rows.append((rng.choice(CLEAN), None, 0, 0))
    rng.shuffle(rows)
    return rows


def _has_locale(loc: str) -> bool:
    try:
        Faker(loc)
        return True
    except AttributeError:
        return False


def _latin(s: str) -> str:
    """Latin-script names only (diacritics kept): clinitune screens English-language records."""
    return s if all(c.isascii() or c.isalpha() and ord(c) < 0x250 for c in s) else ""


VARIANTS = {
    "rules (Presidio, patterns, name rules)": ("presidio", "patterns", "name_rules"),
    "rules + spaCy NER (the screen before the learned model)": ("presidio", "patterns", "name_rules", "spacy_ner"),
    "learned model alone": ("learned",),
    "the screen (union of all detectors)": None,
}


def score(rows, found) -> dict:
    """A planted identifier counts as found when any finding overlaps it (redaction removes it whatever the
    kind); a clean line with any finding is a false alarm."""
    per_kind, hit_kind, fa, misses, alarms = Counter(), Counter(), 0, [], []
    for (text, kind, start, end), fs in zip(rows, found):
        if kind is None:
            if fs:
                fa += 1
                alarms.append((sorted({f.type for f in fs}), text))
            continue
        per_kind[kind] += 1
        ok = any(f.start < end and start < f.end for f in fs)
        hit_kind[kind] += ok
        if not ok:
            misses.append((kind, text))
    return {"per_kind": per_kind, "hit_kind": hit_kind, "fa": fa, "misses": misses, "alarms": alarms}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--misses", type=int, default=10)
    a = ap.parse_args()
    rows = generate(a.n, a.seed)
    texts = [r[0] for r in rows]
    clean = sum(1 for r in rows if r[1] is None)
    print(f"{len(rows)} lines, {len(rows) - clean} with one planted identifier, {clean} clean\n")
    print("| detectors | recall (95 % interval) | false alarms on clean lines (95 % interval) | examples/s |")
    print("|---|---|---|---|")
    results = {}
    for label, only in VARIANTS.items():
        screen_texts(texts[:8], only=only)  # load the models before the clock starts
        t0 = time.perf_counter()
        found = screen_texts(texts, only=only)
        secs = time.perf_counter() - t0
        s = results[label] = score(rows, found)
        planted, tp = sum(s["per_kind"].values()), sum(s["hit_kind"].values())
        r_lo, r_hi = wilson(tp, planted)
        f_lo, f_hi = wilson(s["fa"], clean)
        print(
            f"| {label} | {tp / planted:.3f} ({r_lo:.3f}-{r_hi:.3f}) | {s['fa']} ({f_lo:.4f}-{f_hi:.4f}) | "
            f"{len(rows) / secs:.0f} |"
        )
    s = results["the screen (union of all detectors)"]
    print("\nThe screen, per kind:\n\n| kind | planted | found | recall | 95 % interval |\n|---|---|---|---|---|")
    for k in sorted(s["per_kind"]):
        lo, hi = wilson(s["hit_kind"][k], s["per_kind"][k])
        print(
            f"| {k} | {s['per_kind'][k]} | {s['hit_kind'][k]} | {s['hit_kind'][k] / s['per_kind'][k]:.3f} | "
            f"{lo:.3f}-{hi:.3f} |"
        )
    for kind, text in s["misses"][: a.misses]:
        print(f"  missed {kind}: {text}")
    for kinds, text in s["alarms"][: a.misses]:
        print(f"  false alarm {kinds}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
