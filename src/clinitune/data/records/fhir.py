"""Records to FHIR R4 bundles and back.

Export writes one collection Bundle per patient. Import reads those and real-world bundles
(Synthea, EHR exports): Condition codings keep their original system (Synthea uses SNOMED CT),
and an ICD-10-CM coding is preferred whenever the resource carries one.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from .patient import Allergy, ConditionFact, Encounter, Medication, Observation, Patient

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MRN_SYSTEM = "urn:clinitune:mrn"
MEMBER_SYSTEM = "urn:clinitune:insurance-member-id"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_CLASS = {"inpatient": "IMP", "emergency": "EMER"}
MODELED = ("Patient", "Encounter", "Condition", "MedicationRequest", "Observation", "AllergyIntolerance")
SYSTEM_NAMES = {ICD10CM: "ICD-10-CM", SNOMED: "SNOMED-CT"}

GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}  # FHIR AdministrativeGender


def _ref(kind: str, i) -> dict:
    return {"reference": f"{kind}/{kind.lower()}-{i}"}


def _entry(resource: dict) -> dict:
    key = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'clinitune:' + key)}", "resource": resource}


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def to_bundle(p: Patient) -> dict:
    subject = {"reference": f"Patient/patient-{p.id}"}
    res = [patient_resource(p)]
    res += [encounter_resource(e, subject) for e in p.encounters]
    res += [condition_resource(c, subject) for c in p.conditions]
    res += [medication_resource(m, subject) for m in p.medications]
    res += [allergy_resource(a, subject) for a in p.allergies]
    res += [observation_resource(o, subject) for o in p.observations]
    return {"resourceType": "Bundle", "id": f"bundle-{p.id}", "type": "collection", "entry": [_entry(r) for r in res]}


def patient_resource(p: Patient) -> dict:
    identifiers = [{"system": MRN_SYSTEM, "value": p.mrn}] if p.mrn else []
    if p.insurance_member_id:
        identifiers.append({"system": MEMBER_SYSTEM, "value": p.insurance_member_id})
    if p.ssn:
        identifiers.append({"system": SSN_SYSTEM, "value": p.ssn})
    patient = {
        "resourceType": "Patient",
        "id": f"patient-{p.id}",
        "identifier": identifiers,
        "gender": {v: k for k, v in GENDER.items()}.get(p.sex, "unknown"),
    }
    if p.first_name or p.last_name:
        patient["name"] = [{"family": p.last_name, "given": [p.first_name] if p.first_name else []}]
    if p.birth_date:
        patient["birthDate"] = p.birth_date.isoformat()
    telecom = [{"system": "phone", "value": p.phone}] if p.phone else []
    if p.email:
        telecom.append({"system": "email", "value": p.email})
    if telecom:
        patient["telecom"] = telecom
    if p.address or p.zip:
        address = {"line": [p.address] if p.address else None, "city": p.city, "state": p.state, "postalCode": p.zip}
        patient["address"] = [{k: v for k, v in address.items() if v}]
    return patient


def encounter_resource(e, subject: dict) -> dict:
    return {
        "resourceType": "Encounter",
        "id": f"encounter-{e.id}",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": ENCOUNTER_CLASS.get(e.type, "AMB")},
        "type": [{"text": e.type}],
        "subject": subject,
        "period": {"start": e.date.isoformat(), "end": e.date.isoformat()},
    }


def condition_resource(c, subject: dict) -> dict:
    system = ICD10CM if c.system == "ICD-10-CM" else SNOMED if c.system == "SNOMED-CT" else c.system
    r = {
        "resourceType": "Condition",
        "id": f"condition-{c.id}",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": c.status}]
        },
        "code": {"coding": [{"system": system, "code": c.code, "display": c.description}], "text": c.description},
        "subject": subject,
    }
    if c.onset_date:
        r["onsetDateTime"] = c.onset_date.isoformat()
    if c.encounter_id is not None:
        r["encounter"] = _ref("Encounter", c.encounter_id)
    return r


def medication_resource(m, subject: dict) -> dict:
    r = {
        "resourceType": "MedicationRequest",
        "id": f"medicationrequest-{m.id}",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": m.drug},
        "subject": subject,
        "dosageInstruction": [{"text": m.dose, "timing": {"code": {"text": m.frequency}}, "route": {"text": m.route}}],
    }
    if m.start_date:
        r["authoredOn"] = m.start_date.isoformat()
    if m.condition_id is not None:
        r["reasonReference"] = [_ref("Condition", m.condition_id)]
    if m.encounter_id is not None:
        r["encounter"] = _ref("Encounter", m.encounter_id)
    return r


def allergy_resource(a, subject: dict) -> dict:
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"allergyintolerance-{a.id}",
        "patient": subject,
        "category": [a.category],
        "code": {"text": a.substance},
        "reaction": [{"manifestation": [{"text": a.reaction}], "severity": a.severity}],
    }


def observation_resource(o, subject: dict) -> dict:
    category = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": o.category}
    r = {
        "resourceType": "Observation",
        "id": f"observation-{o.id}",
        "status": "final",
        "category": [{"coding": [category]}],
        "code": {"coding": [{"system": LOINC, "code": o.code, "display": o.name}], "text": o.name},
        "subject": subject,
        "valueQuantity": {"value": o.value, "unit": o.unit, "system": UCUM, "code": o.unit},
    }
    if o.date:
        r["effectiveDateTime"] = o.date.isoformat()
    if o.encounter_id is not None:
        r["encounter"] = _ref("Encounter", o.encounter_id)
    if o.ref_low is not None or o.ref_high is not None:
        rr = {}
        if o.ref_low is not None:
            rr["low"] = {"value": o.ref_low, "unit": o.unit, "system": UCUM, "code": o.unit}
        if o.ref_high is not None:
            rr["high"] = {"value": o.ref_high, "unit": o.unit, "system": UCUM, "code": o.unit}
        r["referenceRange"] = [rr]
    if o.flag:
        r["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": o.flag}]}]
    return r


# ------------------------------------------------------------------ import


class FhirError(ValueError):
    """One bad resource; the caller adds the file and entry index."""


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise FhirError(f"{field}: {value!r} is not a date") from None


def _local_id(ref_or_id: str | None, ids: dict[str, int]) -> int | None:
    """Our integer id for a FHIR id or reference: the number in `kind-N`, else the next free one."""
    if not ref_or_id:
        return None
    key = ref_or_id.split("/")[-1].removeprefix("urn:uuid:")
    if key not in ids:
        m = re.fullmatch(r"[a-z]+-(\d+)", key)
        ids[key] = int(m.group(1)) if m else -(len(ids) + 1)  # negative: never collides with our own numbering
    return ids[key]


def _pick_coding(codeable: dict) -> tuple[str, str, str]:
    codings = codeable.get("coding") or []
    if not codings and not codeable.get("text"):
        raise FhirError("code: no coding and no text")
    best = next((c for c in codings if c.get("system") == ICD10CM), codings[0] if codings else {})
    system = SYSTEM_NAMES.get(best.get("system"), best.get("system") or "text")
    return best.get("code") or codeable.get("text", ""), best.get("display") or codeable.get("text", ""), system


def resources_to_patient(resources: list[dict]) -> Patient:
    """Build one record from a patient's resources (the Patient first)."""
    ids: dict[str, int] = {}  # FHIR ids to the record's local numbers, shared by every resource of the patient
    p = patient_from_resource(resources[0], ids)
    for r in resources[1:]:
        add_resource(p, r, ids)
    return p


def patient_from_resource(pat: dict, ids: dict[str, int]) -> Patient:
    num = _local_id(pat.get("id"), ids)
    idents = {i.get("system"): i.get("value") for i in pat.get("identifier", [])}
    name = (pat.get("name") or [{}])[0]
    telecom = {t.get("system"): t.get("value") for t in pat.get("telecom", [])}
    addr = (pat.get("address") or [{}])[0]
    gender = pat.get("gender") or "unknown"
    if gender not in GENDER:
        raise FhirError(f"Patient.gender: {gender!r}; FHIR's AdministrativeGender is male, female, other or unknown")
    return Patient(
        id=num if num is not None and num > 0 else pat.get("id"),
        sex=GENDER[gender],
        birth_date=_date(pat.get("birthDate"), "Patient.birthDate"),
        mrn=idents.get(MRN_SYSTEM)
        or next((v for s, v in idents.items() if s not in (SSN_SYSTEM, MEMBER_SYSTEM)), None),
        first_name=(name.get("given") or [None])[0],
        last_name=name.get("family"),
        address=(addr.get("line") or [None])[0],
        city=addr.get("city"),
        state=addr.get("state"),
        zip=addr.get("postalCode"),
        phone=telecom.get("phone"),
        email=telecom.get("email"),
        ssn=idents.get(SSN_SYSTEM),
        insurance_member_id=idents.get(MEMBER_SYSTEM),
    )


def add_resource(p: Patient, r: dict, ids: dict[str, int]) -> None:
    """One resource of the patient's, read into the record; kinds outside the record model are passed over."""
    kind = r["resourceType"]
    rid = _local_id(r.get("id"), ids)
    enc = _local_id((r.get("encounter") or {}).get("reference"), ids)
    if kind == "Encounter":
        start = (r.get("period") or {}).get("start")
        p.encounters.append(
            Encounter(
                rid,
                _date(start, "Encounter.period.start"),
                ((r.get("type") or [{}])[0]).get("text") or "outpatient",
            )
        )
    elif kind == "Condition":
        code, desc, system = _pick_coding(r.get("code") or {})
        status = ((r.get("clinicalStatus") or {}).get("coding") or [{}])[0].get("code", "active")
        p.conditions.append(
            ConditionFact(
                rid, code, desc, _date(r.get("onsetDateTime"), "Condition.onsetDateTime"), enc, status, system
            )
        )
    elif kind == "MedicationRequest":
        med = r.get("medicationCodeableConcept") or {}
        drug = med.get("text") or ((med.get("coding") or [{}])[0]).get("display")
        if not drug:
            raise FhirError("MedicationRequest.medicationCodeableConcept: no drug name")
        dosage = (r.get("dosageInstruction") or [{}])[0]
        reason = (r.get("reasonReference") or [{}])[0].get("reference")
        p.medications.append(
            Medication(
                rid,
                drug,
                dosage.get("text", ""),
                ((dosage.get("timing") or {}).get("code") or {}).get("text", ""),
                (dosage.get("route") or {}).get("text", "oral"),
                _local_id(reason, ids),
                enc,
                _date(r.get("authoredOn"), "MedicationRequest.authoredOn"),
            )
        )
    elif kind == "AllergyIntolerance":
        reaction = (r.get("reaction") or [{}])[0]
        p.allergies.append(
            Allergy(
                rid,
                (r.get("code") or {}).get("text") or _pick_coding(r.get("code") or {})[1],
                (r.get("category") or ["medication"])[0],
                ((reaction.get("manifestation") or [{}])[0]).get("text", ""),
                reaction.get("severity", "mild"),
            )
        )
    elif kind == "Observation":
        q = r.get("valueQuantity")
        if not q or "value" not in q:
            return  # component panels and coded values are outside the record model
        code, name, _ = _pick_coding(r.get("code") or {})
        rr = (r.get("referenceRange") or [{}])[0]
        interp = ((r.get("interpretation") or [{}])[0].get("coding") or [{}])[0].get("code")
        cat = ((r.get("category") or [{}])[0].get("coding") or [{}])[0].get("code", "laboratory")
        p.observations.append(
            Observation(
                rid,
                code,
                name,
                float(q["value"]),
                q.get("unit", ""),
                (rr.get("low") or {}).get("value"),
                (rr.get("high") or {}).get("value"),
                interp,
                _date(r.get("effectiveDateTime"), "Observation.effectiveDateTime"),
                enc,
                cat,
            )
        )
