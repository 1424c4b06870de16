"""Build the labelled PHI test set: snippets with each Safe Harbor identifier type in varied
real-world formats, and clean clinical text full of doses, labs, blood pressures, ICD codes and
guideline years. Written to tests/data/phi_labelled.jsonl; run `python bench/phi_cases.py` to rebuild.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "phi_labelled.jsonl"

FIRST = ["John", "Maria", "Wei", "Priya", "Ahmed", "Linda", "Carlos", "Emily", "Dmitri", "Fatima", "Robert", "Aisha"]
LAST = ["Smith", "Garcia", "Chen", "Patel", "Okafor", "Nguyen", "Kowalski", "Johnson", "Rivera", "Nakamura", "Cohen", "Singh"]
CONTEXT = [
    "{x} was reviewed at today's visit.", "Per chart, {x}.", "Contact info on file: {x}.", "Follow-up arranged; {x}.",
    "Note: {x} confirmed by front desk.", "Discharge summary lists {x}.", "Referral letter includes {x}.",
]

POSITIVE = {
    "NAME": ["Patient {f} {l} presents with cough", "Mr. {l} reports chest pain", "{l}, {f} seen in clinic",
             "Name: {f} {l}", "Dr. {l} was consulted", "Mrs. {l} declined the flu vaccine", "spoke with his wife {f} {l}",
             "{f} {l} is a 54-year-old with asthma", "signed: {f} {l}, RN", "Ms. {f} {l} arrived late",
             "attending: {f} {l}", "mother {f} {l} at bedside"],
    "LOCATION": ["lives at {n} Maple St", "address {n} Oak Avenue, Apt 4B", "{n} N. Lincoln Blvd", "Springfield, IL 62704",
                 "ZIP code 02139", "zip: 98101", "mailing address PO Box {n}", "moved to Tucson, AZ last year",
                 "postal code 60614-2231", "{n} Cedar Ridge Road", "residence: {n} Highland Dr", "from Omaha, NE 68102"],
    "DATE": ["seen on 03/14/2024", "DOB 7/4/1956", "admitted 2024-02-29", "surgery on March 3, 2023", "born 12 January 1961",
             "last visit Jan 5", "discharged 11-Nov-2023", "symptoms since September 2022", "DOB: 04/22/81",
             "follow-up 2025-06-01", "date of service: 1/15/2024", "on the 3rd of May, 2021"],
    "AGE_OVER_89": ["a 92-year-old woman", "age 95 with dementia", "aged 101", "93 yo male", "97 y/o with CHF",
                    "patient is 90 years old", "a 104 year old resident", "Age: 91", "99-year-old veteran", "aged 96, frail",
                    "the 94 yrs old patient", "nonagenarian with falls"],
    "PHONE": ["call (617) 555-0143", "phone 617-555-0143", "cell: 617.555.0143", "reach at +1 617 555 0143", "tel 312-555-0199",
              "mobile (415) 555 2671", "pager 206-555-0110", "phone: 6175550143", "home phone (212) 555-7788",
              "daughter's number 503-555-0164", "call back at 1-800-555-0123", "contact 919.555.0142"],
    "FAX": ["Fax: (617) 555-0199", "fax number 617-555-0198", "fax 312.555.0177", "please fax to (202) 555-0133",
            "Fax # 415-555-0120", "fax: +1 206 555 0150", "send records by fax 800-555-0101", "fax no. 919-555-0188",
            "office fax (303) 555-0166", "FAX 212 555 0144", "fax: 6175550100", "fax number: (713) 555-0109"],
    "EMAIL": ["email john.smith@gmail.com", "contact: m.garcia@yahoo.com", "wrote to priya_patel77@outlook.com",
              "email address a.okafor@proton.me", "sent results to wei.chen@hospital.org", "reach: l.nguyen+pt@icloud.com",
              "e-mail carlos.rivera@comcast.net", "portal login emily.j@aol.com", "daughter: fatima.s@gmail.com",
              "rcohen@mail.example.com", "email: d.kowalski@work.co", "cc: aisha.singh@clinic.net"],
    "SSN": ["SSN 912-34-5678", "social security number 912 34 5678", "SSN: 923456789", "ssn 945-12-3456",
            "Social Security # 901-23-4567", "id 934-56-7812 on file", "SSN#: 987-65-4320", "social security: 911-22-3333",
            "SSN 900-00-1234", "her SSN is 955-44-1122", "SSN: 933 22 1111", "soc sec 922-11-0000"],
    "MRN": ["MRN: 00123456", "MRN0012345", "medical record number 4455667", "MRN# 7788990", "MRN 1234567-8",
            "medical record no. A1234567", "mrn: 99887766", "MRN00001234", "Medical Record #: 5566778",
            "MRN - 30044921", "MRN:88112233", "medical record number: 000987654"],
    "HEALTH_PLAN": ["Member ID: XGH123456789", "Medicare 1EG4TE5MK73", "policy number ABC12345678", "subscriber # 998877665",
                    "member number BCB998877665", "insurance ID: W123456789", "Medicaid ID 12345678901", "UHC123456789",
                    "group number 00712345", "beneficiary ID 2AB3CD4EF56", "health plan number HP-5566778", "AET987654321"],
    "ACCOUNT": ["account number 1234-5678-9012", "Acct #: 55667788", "billing account 440011223", "card 4111 1111 1111 1111",
                "account no. 009988776655", "acct 77665544", "Account: 123456789", "billing #: 66554433", "account # A99887766",
                "IBAN DE89370400440532013000", "acct no 1029384756", "account number: 5566-7788"],
    "LICENSE": ["DEA AB1234563", "NPI 1234567893", "license number D1234567", "medical license: 123456", "certificate no. 77812345",
                "DEA# BX7654321", "driver's license number S12345678", "NPI: 1987654321", "license # 88123456",
                "registration number 5566778", "cert # 99887766", "licence no 1234567"],
    "VEHICLE": ["VIN 1HGCM82633A004352", "license plate 7ABC123", "plate number XYZ-1234", "car VIN: 2FMDK3JC4BBA12345",
                "vehicle 5YJSA1E26HF123456", "plate # 8GHJ221", "license plate: KLM 4421", "VIN# JH4KA8260MC012345",
                "plate no. 3RTY889", "truck VIN 1FTFW1ET5DFC10312", "plate: ABC-9876", "VIN 4T1BF1FK5CU123456"],
    "DEVICE": ["serial number SN-88213-XK", "pacemaker S/N: PJN123456", "UDI (01)00884838012345", "MAC address 00:1A:2B:3C:4D:5E",
               "IMEI 490154203237518", "insulin pump serial # MMT-7781234", "device ID DV-0098123", "CGM SN: 8XK2L9Q1",
               "lot number L2024-88123", "implant serial no. ZX99812345", "glucometer S/N 77812-AB", "MAC 3c:22:fb:9a:10:01"],
    "URL": ["https://patientportal.example-health.org/u/8812", "www.johnsmithblog.com", "see http://myphotos.example.com/jsmith",
            "profile at https://social.example/@mgarcia", "www.garcia-family.net/maria", "https://mychart.example.org/id=4455",
            "http://10.1.2.3/records", "link: https://drive.example.com/file/881", "www.priyapatel.me",
            "https://example.org/patients/12345", "blog www.chenfamily.org", "http://portal.clinic.example/visit/77"],
    "IP": ["logged in from 192.168.1.20", "IP 10.0.0.12", "source address 172.16.254.1", "IPv6 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
           "device at 10.20.30.40", "remote IP: 203.0.113.7", "from 198.51.100.23", "host 8.8.4.4",
           "address 192.0.2.146", "client 100.64.0.1", "VPN IP 172.31.0.5", "IP address 45.33.32.156"],
    "BIOMETRIC": ["fingerprint ID FP-99812A", "retinal scan ID RS-1123-77", "voiceprint hash 9f8e7d6c5b", "iris scan 88ABCD12",
                  "biometric template BT-778812", "palm print record PP-44512", "fingerprint: 7781XK99", "face print ID FPX-22341",
                  "retina scan RX-991122", "voice print id VP-881234", "biometric ID: BIO-445566", "finger print 99AB8812"],
    "PHOTO": ["photo: IMG_20240312_0815.jpg", "full-face photograph attached", "image file jsmith_face.png",
              "uploaded headshot.jpeg", "see scan_portrait.heic", "facial photo on file", "picture DSC_0042.JPG",
              "attached mgarcia.png", "face_front.tiff in chart", "full face image stored", "photo_id.bmp", "selfie.gif attached"],
    "OTHER_ID": ["patient ID PT-77812", "case number 2024-CV-8812", "claim number 88123-A", "encounter number ENC0099812",
                 "visit number V-556677", "accession number AC-1123", "record number R-00981", "employee ID E-44512",
                 "case # 77-8812", "pt id 5566-88", "claim # CLM998812", "encounter ID E2024-9981"],
}

DRUGS = ["metformin 500 mg twice daily", "lisinopril 10 mg once daily", "atorvastatin 40 mg at bedtime",
         "insulin glargine 20 units at bedtime", "albuterol 90 mcg 2 puffs every 4 hours as needed", "amoxicillin 500 mg three times daily",
         "levothyroxine 50 mcg daily", "apixaban 5 mg twice daily", "sertraline 50 mg daily", "prednisone 40 mg daily for 5 days",
         "furosemide 40 mg daily", "ferrous sulfate 325 mg daily", "ondansetron 4 mg every 8 hours as needed",
         "heparin 5000 units subcutaneously every 8 hours", "vancomycin 1 g IV every 12 hours", "take 1/2 tablet of metoprolol 25 mg"]
CLEAN_TEMPLATES = [
    "Started {drug}.", "Continue {drug}; recheck in {w} weeks.", "BP {sbp}/{dbp} mmHg, HR {hr}, RR {rr}, SpO2 {spo2}% on room air.",
    "A1c {a1c}% (goal < 7.0% per the {year} ADA Standards of Care).", "LDL {ldl} mg/dL, HDL {hdl} mg/dL, triglycerides {tg} mg/dL.",
    "Assessment: {dx} ({code}).", "eGFR {egfr} mL/min/1.73m2, creatinine {cr} mg/dL, potassium {k} mmol/L.",
    "Temp {temp} C, weight {wt} kg, BMI {bmi} kg/m2.", "Pain {pain}/10, improved from {pain2}/10 last week.",
    "Per the {year} ACC/AHA guideline, target BP is below 130/80.", "Hemoglobin {hgb} g/dL, WBC {wbc} x10^9/L, platelets {plt} x10^9/L.",
    "Code {code} ({dx}) added to the problem list in {year}.", "INR {inr} on warfarin {wd} mg daily.",
    "A {age}-year-old {sex} with {dx}.", "Screening colonoscopy due in {year}.", "TSH {tsh} mIU/L; free T4 normal.",
    "Sodium {na} mmol/L, glucose {glu} mg/dL fasting.", "{dx2} history; follow-up in {w} weeks.",
    "Encounter for {dx}; ICD-10-CM {code}; counseled on diet and exercise.", "Troponin < 0.01 ng/mL at 0 and 3 hours.",
]
DX = [("essential hypertension", "I10"), ("type 2 diabetes mellitus without complications", "E11.9"), ("asthma", "J45.909"),
      ("hyperlipidemia", "E78.5"), ("major depressive disorder, single episode", "F32.9"), ("chronic kidney disease stage 3a", "N18.31"),
      ("COPD", "J44.9"), ("atrial fibrillation", "I48.91"), ("obesity", "E66.9"), ("hypothyroidism", "E03.9"),
      ("GERD", "K21.9"), ("low back pain", "M54.50"), ("UTI", "N39.0"), ("migraine", "G43.909"), ("osteoarthritis of the right knee", "M17.11")]
EPONYMS = ["Parkinson disease", "Alzheimer disease", "Hashimoto thyroiditis", "Graves disease", "Cushing syndrome", "Addison disease",
           "Down syndrome", "Bell palsy", "Crohn disease", "Wilson disease", "Guillain-Barre syndrome", "Raynaud phenomenon",
           "Barrett esophagus", "Sjogren syndrome", "Hodgkin lymphoma", "Kaposi sarcoma", "Turner syndrome", "Meniere disease"]


def build(seed: int = 20261125) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for kind, formats in POSITIVE.items():
        for fmt in formats:
            x = fmt.format(f=rng.choice(FIRST), l=rng.choice(LAST), n=rng.randrange(10, 9999))
            rows.append({"text": rng.choice(CONTEXT).format(x=x), "phi": True, "types": [kind]})
    n_pos = len(rows)
    while len(rows) < 2 * n_pos:
        dx, code = rng.choice(DX)
        t = rng.choice(CLEAN_TEMPLATES + ["{epo} suspected; {drug}."])
        rows.append({"text": t.format(
            drug=rng.choice(DRUGS), w=rng.choice([2, 4, 6, 12]), sbp=rng.randrange(98, 172), dbp=rng.randrange(58, 104),
            hr=rng.randrange(52, 118), rr=rng.randrange(12, 24), spo2=rng.randrange(88, 100), a1c=round(rng.uniform(5.2, 11), 1),
            year=rng.choice([2017, 2019, 2021, 2023, 2024, 2025, 2026]), ldl=rng.randrange(60, 210), hdl=rng.randrange(30, 80),
            tg=rng.randrange(60, 400), dx=dx, code=code, egfr=rng.randrange(15, 110), cr=round(rng.uniform(0.6, 3), 2),
            k=round(rng.uniform(3.3, 5.6), 1), temp=round(rng.uniform(36, 39.5), 1), wt=round(rng.uniform(45, 140), 1),
            bmi=round(rng.uniform(18, 45), 1), pain=rng.randrange(0, 10), pain2=rng.randrange(0, 10), hgb=round(rng.uniform(8, 17), 1),
            wbc=round(rng.uniform(3, 15), 1), plt=rng.randrange(90, 450), inr=round(rng.uniform(0.9, 3.5), 1), wd=rng.choice([2, 5, 7.5]),
            age=rng.randrange(1, 89), sex=rng.choice(["female", "male"]), tsh=round(rng.uniform(0.2, 9), 2), na=rng.randrange(128, 148),
            glu=rng.randrange(70, 260), dx2=rng.choice(EPONYMS), epo=rng.choice(EPONYMS)), "phi": False, "types": []})
    rng.shuffle(rows)
    return rows


if __name__ == "__main__":
    rows = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} snippets ({sum(r['phi'] for r in rows)} with PHI) to {OUT}")
