"""How each task is asked: many phrasings per task, a share of them held out of training altogether.

A model tuned on one sentence per task learns the sentence. Each task here has at least 20 phrasings:
terse and verbose, question and command, fields in other orders, typos, and the shorthand clinicians
write. Builders draw from the `seen` phrasings only. After the split, `prepare` rewrites half of the
test examples with a `held_out` phrasing (`held_out_version`), so the evaluation reports a
held-out-phrasing slice beside the seen one: a model that learned the task scores alike on both.

A phrasing is (instruction template, input template); slots are named in braces. Putting `{input}`
inside the instruction template moves the record or note before or after the request. Each example
records its phrasing id (`task/seen/3`, `task/held_out/0`) and keeps the slot values (in memory only)
so it can be asked again in other words.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

from .example import Example
from .example import instruction as instruction_example

SEEN, HELD_OUT = "seen", "held_out"
NOTE = "{input}"


@dataclass(frozen=True)
class Phrasings:
    seen: tuple[tuple[str, str], ...]
    held_out: tuple[tuple[str, str], ...]


def _p(*items) -> tuple[tuple[str, str], ...]:
    """Bare strings are instructions with no input; pairs are (instruction, input)."""
    return tuple(item if isinstance(item, tuple) else (item, "") for item in items)


def _on(note: str, *items) -> tuple[tuple[str, str], ...]:
    """Instructions followed by `note` as their input, unless the instruction places `{input}` itself."""
    return tuple((i, "" if NOTE in i else note) for i in items)


RECORD = Phrasings(
    seen=_p(
        "Generate a patient record for a {age} {gender} with {cond}.",
        "Create a de-identified patient record in JSON for a {age} {gender} diagnosed with {cond}.",
        "Write a synthetic EHR record (JSON) for a {age} {gender} patient who has {cond}.",
        "Produce a structured patient record for a {age} {gender} with {cond}.",
        "Patient record, JSON: {age} {gender}, {cond}.",
        "{years}{sx} with {cond}. Make a synthetic record.",
        "I need a realistic but fake patient chart in JSON. The patient is a {age} {gender} whose main problem "
        "is {cond}; include diagnoses, medications and labs.",
        "Can you generate a JSON patient record for a {gender} patient, age {years}, with {cond}?",
        "Dx: {cond}. Age {years}, sex {gender}. Build the patient record.",
        "Generat a patient recrod for a {age} {gender} with {cond}.",
        "synthetic pt record - {years}yo {gender}, {cond} pls",
        "Draft a JSON record in EHR format: {cond} in a {age} {gender}.",
        "For testing our pipeline, create one de-identified patient record (JSON) describing a {age} {gender} "
        "who has {cond}.",
        "Could you make up a patient record for a {age} {gender} with {cond}? Return JSON.",
        "JSON record for: {cond}; {gender}; {years} years old.",
        "New synthetic patient: {age} {gender}, primary diagnosis {cond}. Output the record as JSON.",
    ),
    held_out=_p(
        "Please write out a sample patient record, formatted as JSON, for a {gender} aged {years} who carries a "
        "diagnosis of {cond}.",
        "{years}{sx}, {cond} -> record json",
        "What would a de-identified JSON record look like for a {age} {gender} with {cond}?",
        "Genrate a synthetic patinet record for {age} {gender} w/ {cond}",
        "Condition: {cond}\nSex: {gender}\nAge: {years}\nTask: create a matching patient record in JSON.",
        "Mock up an EHR entry (JSON) for a {gender}, {years} y/o, known {cond}.",
    ),
)

CODING = Phrasings(
    seen=_p(
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
    held_out=_p(
        "Need ICD 10 for {name} pls",
        "For billing purposes, please tell me which ICD-10-CM code corresponds to the diagnosis of {desc}.",
        ("Progress note below. What ICD-10-CM code fits the assessment?", "{years} y/o {gender}. Impression: {name}."),
        "Wich ICD-10-CM code is used for {desc}?",
        "{name} - ICD-10-CM code?",
        "Map this diagnosis to its ICD-10-CM code: {desc}.",
    ),
)

LOOKUP = Phrasings(
    seen=_p(
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
    held_out=_p(
        "What's {code} stand for?",
        "Can you explain which condition the ICD-10-CM code {code} refers to, using the official wording?",
        "ICD code {code} = ?",
        "What is teh descripton of ICD-10 code {code}?",
        "Please identify the diagnosis behind {code}.",
        "pt chart lists {code} - which dx is it?",
    ),
)

EXTRACT = Phrasings(
    seen=_on(
        NOTE,
        "Extract the diagnoses (with ICD-10-CM codes), medications and vitals from this clinical note as JSON.",
        "Read the note and return JSON with diagnoses, medications and vitals.",
        "Convert this clinical note into structured JSON: diagnoses with codes, medications with doses, and vitals.",
        "Structure this note as JSON.",
        "Note:\n{input}\n\nPull the diagnoses, meds and vitals out as JSON.",
        "Parse the clinical note below into JSON (diagnoses, medications, vitals).",
        "Extarct diagnoses, medications and vitals from the note as JSON.",
        "What diagnoses, medications and vitals does this note mention? Answer in JSON.",
        "{input}\n\nExtract the structured data from the note above as JSON.",
        "Abstract this encounter note: diagnoses (with ICD-10-CM codes), medications and vitals, in JSON.",
        "note -> json (dx, meds, vitals)",
        "Please turn the following visit note into a JSON object listing its diagnoses with ICD-10-CM codes, the "
        "medications with dose and frequency, and any vitals.",
        "Chart abstraction: return diagnoses, medications and vitals from this note in JSON.",
        "Get the dx, meds and vitals from this note. JSON only.",
        "Which problems, drugs and vital signs are in this note? Return JSON.",
        "Build the structured JSON for this clinical note.",
    ),
    held_out=_on(
        NOTE,
        "Can you read this note and give me its diagnoses, medications and vitals as JSON?",
        "Clinical note:\n{input}\n\nTask: extract diagnoses, medications and vitals into JSON.",
        "Extrct the dx/meds/vitals as JSON",
        "For the registry, abstract the following note into JSON with three parts: diagnoses (name and ICD-10-CM "
        "code), medications (name, dose, frequency) and vitals.",
        "JSON please: diagnoses, medications, vitals.",
        "{input}\n\nWhat are the coded diagnoses, the medications and the vitals here? JSON.",
    ),
)

VALIDATE = Phrasings(
    seen=_on(
        NOTE,
        "Validate this patient record and list any data-quality errors as JSON.",
        "Check this patient record for errors. Return JSON with valid and errors.",
        "Validate this patient record.",
        "Is this record valid? Answer in JSON with valid and errors.",
        "Run a data-quality check on the record below.",
        "Record:\n{input}\n\nFind any data-quality errors (JSON).",
        "Vaildate this patient record and report errors as JSON.",
        "QA this patient record.",
        "Any problems with this record? Return JSON.",
        "Look for invalid codes, implausible labs and diagnoses or drugs that don't fit in this record; report "
        "them as JSON.",
        "{input}\n\nValidate the record above.",
        "Audit this EHR record for data-quality errors and return JSON with valid and errors.",
        "check record for errors -> json",
        "Before this record goes into the registry, please check it for errors and list each one with its rule, "
        "field and message as JSON.",
        "Does this patient record pass validation?",
        "List the data-quality errors in this record, if any (JSON).",
    ),
    held_out=_on(
        NOTE,
        "Could you check whether this patient record has any errors? JSON answer.",
        "Patient record to review:\n{input}\n\nReturn the validation result as JSON.",
        "validate pls",
        "Chekc this record for data-qualty errors.",
        "Act as a data steward: verify that the codes, labs, medications and sex-specific diagnoses in this record "
        "are consistent, and return JSON with valid and errors.",
        "Is anything wrong in this patient record?",
    ),
)

FHIR = Phrasings(
    seen=_on(
        NOTE,
        "Convert this patient record to FHIR R4 Patient and Condition resources (a collection Bundle, JSON).",
        "Express this record as a FHIR R4 Bundle containing a Patient and its Conditions.",
        "Write the FHIR R4 resources (Patient, Condition) for this patient record as a JSON Bundle.",
        "Convert to FHIR.",
        "Record:\n{input}\n\nMap it to a FHIR R4 Bundle (Patient + Conditions).",
        "Turn this record into FHIR R4 JSON.",
        "Conver this record to a FHIR R4 bundle.",
        "What would this record look like as FHIR R4 resources? Give the Bundle.",
        "FHIR R4 bundle for this patient, please.",
        "Map the patient and the diagnoses below to FHIR R4 Patient and Condition resources in a collection Bundle.",
        "{input}\n\nConvert the record above to FHIR R4.",
        "record -> FHIR R4 Bundle",
        "We are loading this into a FHIR server: produce a Bundle of type collection with one Patient and a "
        "Condition for each diagnosis, coded in ICD-10-CM.",
        "Generate FHIR R4 Patient/Condition resources from this record.",
        "Serialize this record as a FHIR R4 collection Bundle.",
        "Build the FHIR Bundle for this patient.",
    ),
    held_out=_on(
        NOTE,
        "Can you convert this record into a FHIR R4 Bundle?",
        "Source record:\n{input}\n\nOutput: FHIR R4 collection Bundle (Patient and Conditions).",
        "to fhir r4 pls",
        "Convrt this patient record into FHIR R4 resoures.",
        "For interoperability testing, please express the following patient and each of their diagnoses as FHIR R4 "
        "Patient and Condition resources inside a single collection Bundle.",
        "FHIR version of this record?",
    ),
)

KNOWLEDGE = Phrasings(
    seen=_p(
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
    held_out=_p(
        "q: {q}",
        "{q} thx",
        "My attending asked me this and I'm not sure: {q}",
        "Qustion: {q}",
        "{q} Give a concise answer.",
        "Reply briefly. {q}",
    ),
)

# text_to_sql asks seven kinds of question, each with its own slots: 28 phrasings in all, 7 held out.
SQL = {
    "count": Phrasings(
        seen=_p(
            "How many patients have {name} (ICD-10-CM {code})?",
            "Count the patients diagnosed with {name} ({code}).",
            "Number of patients with {code}?",
        ),
        held_out=_p("Write SQL: how many distinct patients carry the diagnosis {name}, code {code}?"),
    ),
    "sex": Phrasings(
        seen=_p(
            "How many {word} patients have {name}?",
            "Count {word} patients with ICD-10-CM {code}.",
            "{code}: how many of the patients are {word}?",
        ),
        held_out=_p("Query for the number of {word} patients diagnosed with {name}."),
    ),
    "drugs": Phrasings(
        seen=_p(
            "List the distinct drugs prescribed for {name}.",
            "Which medications are prescribed to treat {code}?",
            "What drugs do we prescribe for {name}? One row per drug.",
        ),
        held_out=_p("Give me every medication that has been ordered for {code}, no duplicates."),
    ),
    "allergy": Phrasings(
        seen=_p(
            "How many patients are allergic to {substance}?",
            "Count the patients with a recorded {substance} allergy.",
            "Number of patients with a {substance} allergy?",
        ),
        held_out=_p("How many ppl have an allergy to {substance} on file?"),
    ),
    "drug": Phrasings(
        seen=_p(
            "How many patients take {drug}?",
            "Count the patients with a {drug} prescription.",
            "Patients on {drug}: how many?",
        ),
        held_out=_p("SQL for the number of distinct patients prescribed {drug}, please."),
    ),
    "enc": Phrasings(
        seen=_p(
            "How many {etype} encounters are recorded?",
            "Count the encounters of type {etype}.",
            "Total number of {etype} visits in the database?",
        ),
        held_out=_p("how many encounters have type {etype}"),
    ),
    "high": Phrasings(
        seen=_p(
            "How many {name} results are flagged high?",
            "Count observations of {name} (LOINC {loinc}) with a high flag.",
            "Number of high {name} observations?",
        ),
        held_out=_p("How often was a {name} result (LOINC {loinc}) marked H?"),
    ),
}

TASKS = {
    "record_generation": RECORD,
    "icd10_coding": CODING,
    "icd10_lookup": LOOKUP,
    "extraction": EXTRACT,
    "validation": VALIDATE,
    "fhir_conversion": FHIR,
    "knowledge": KNOWLEDGE,
    **{f"text_to_sql.{kind}": p for kind, p in SQL.items()},
}


def render(key: str, which: str, index: int, slots: dict) -> tuple[str, str]:
    """(instruction, input) of one phrasing, filled with `slots`."""
    instr, inp = getattr(TASKS[key], which)[index]
    return instr.format(**slots), inp.format(**slots)


def phrased(
    task: str, group: str, rng: random.Random, output: str, slots: dict, key: str | None = None, which: str = SEEN
) -> Example:
    """An example asked in one of the task's phrasings (seen ones unless told), recording which."""
    key = key or task
    index = rng.randrange(len(getattr(TASKS[key], which)))
    instr, inp = render(key, which, index, slots)
    ex = instruction_example(task, group, instr, output, inp)
    return replace(ex, phrasing=f"{key}/{which}/{index}", slots=dict(slots))


def slice_of(phrasing: str) -> str | None:
    """`seen` or `held_out` for a phrasing id; None for an example that was not phrased here (a user's own)."""
    parts = phrasing.split("/")
    return parts[1] if len(parts) == 3 and parts[1] in (SEEN, HELD_OUT) else None


def held_out_version(ex: Example, seed: int, share: float = 0.5) -> Example:
    """`ex` asked in a held-out phrasing, for a `share` of test examples chosen by a hash of their id."""
    if slice_of(ex.phrasing) != SEEN or not ex.slots:
        return ex
    h = hashlib.sha256(f"{seed}:held-out:{ex.id}".encode()).digest()
    if h[0] >= share * 256:
        return ex
    key = ex.phrasing.split("/")[0]
    rng = random.Random(h)
    return phrased(ex.task, ex.group, rng, ex.reply, ex.slots, key=key, which=HELD_OUT)
