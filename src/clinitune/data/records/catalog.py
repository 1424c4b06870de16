"""Clinical knowledge the synthetic EHR and the coherence checker share.

One table of conditions (ICD-10-CM code, specialty, prevalence by age band, sex and age limits,
mutually exclusive group, comorbidity boosts), the drugs that treat them, the labs and vitals
with their reference ranges, and the allergies that forbid drugs. Synth draws from it; the
checker judges any record against it, so the two can never disagree.

Longer than 400 lines because it is a table (199 conditions, their drugs, labs and allergies), one
entry per line; the code that reads it is short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AGE_BANDS = ((0, 17), (18, 39), (40, 64), (65, 120))


@dataclass(frozen=True)
class Condition:
    code: str
    specialty: str
    prevalence: tuple[float, float, float, float]  # per patient, by AGE_BANDS
    sex: str = ""  # "F" or "M" when the code is sex-specific
    min_age: int = 0
    max_age: int = 120
    group: str = ""  # at most one code per group per patient
    sex_ratio: float = 1.0  # female:male prevalence ratio for codes of both sexes
    boosts: dict[str, float] = field(default_factory=dict)  # code prefix already present -> multiplier
    requires: tuple[str, ...] = ()  # code prefixes of which one must be present
    chronic: bool = True


def _c(code, specialty, prev, sex="", ages=(0, 120), group="", ratio=1.0, boosts=None, requires=(), chronic=True):
    return Condition(code, specialty, prev, sex, ages[0], ages[1], group, ratio, boosts or {}, tuple(requires), chronic)


PREG = ("Z34", "O09", "O80")
# Order matters: a condition's boosts and requirements only see codes drawn before it.
CONDITIONS: list[Condition] = [
    # endocrine and metabolic (drawn first: they drive cardiometabolic comorbidity)
    _c("E66.9", "endocrine", (0, 0.16, 0.22, 0.17), ages=(18, 120), group="weight"),
    _c("E66.01", "endocrine", (0, 0.03, 0.05, 0.03), ages=(18, 120), group="weight"),
    _c("E66.3", "endocrine", (0, 0.08, 0.10, 0.08), ages=(18, 120), group="weight"),
    _c("R73.03", "endocrine", (0, 0.03, 0.08, 0.10), ages=(18, 120), group="glycemia", boosts={"E66": 2.0}),
    _c("E11.9", "endocrine", (0.001, 0.015, 0.07, 0.12), ages=(10, 120), group="glycemia", boosts={"E66": 3.0}),
    _c("E11.65", "endocrine", (0, 0.005, 0.025, 0.035), ages=(18, 120), group="glycemia", boosts={"E66": 3.0}),
    _c("E11.40", "endocrine", (0, 0.001, 0.01, 0.02), ages=(18, 120), group="glycemia", boosts={"E66": 2.0}),
    _c("E10.9", "endocrine", (0.003, 0.004, 0.003, 0.002), ages=(1, 120), group="glycemia"),
    _c("E78.5", "endocrine", (0, 0.04, 0.16, 0.28), ages=(18, 120), group="lipids", boosts={"E11": 2.0, "E66": 1.5}),
    _c("E78.00", "endocrine", (0, 0.01, 0.05, 0.06), ages=(18, 120), group="lipids", boosts={"E11": 1.5}),
    _c("E78.1", "endocrine", (0, 0.005, 0.02, 0.02), ages=(18, 120), group="lipids", boosts={"E11": 2.0, "E66": 2.0}),
    _c("E03.9", "endocrine", (0.002, 0.02, 0.05, 0.09), group="thyroid", ratio=4.0),
    _c("E05.90", "endocrine", (0.001, 0.005, 0.006, 0.006), group="thyroid", ratio=4.0),
    _c("E55.9", "endocrine", (0.01, 0.04, 0.05, 0.06)),
    _c("E28.2", "endocrine", (0.005, 0.04, 0.01, 0), sex="F", ages=(12, 50)),
    _c("E29.1", "endocrine", (0, 0.005, 0.02, 0.02), sex="M", ages=(18, 120)),
    _c("E04.2", "endocrine", (0, 0.003, 0.01, 0.01), ratio=3.0),
    _c("E21.3", "endocrine", (0, 0.001, 0.003, 0.006), ratio=2.0),
    _c("E86.0", "endocrine", (0.01, 0.003, 0.003, 0.01), chronic=False),
    # cardiology
    _c(
        "I10",
        "cardiology",
        (0.002, 0.06, 0.26, 0.48),
        ages=(10, 120),
        group="htn",
        boosts={"E11": 2.2, "E66": 1.8, "E10": 1.5},
    ),
    _c("I11.9", "cardiology", (0, 0.002, 0.02, 0.05), ages=(30, 120), group="htn", boosts={"E11": 1.5, "E66": 1.5}),
    _c(
        "I25.10",
        "cardiology",
        (0, 0.002, 0.04, 0.13),
        ages=(30, 120),
        ratio=0.6,
        boosts={"I10": 2.0, "I11": 2.0, "E78": 2.0, "E11": 1.8},
    ),
    _c("I48.91", "cardiology", (0, 0.001, 0.02, 0.08), ages=(30, 120), boosts={"I10": 1.5, "I11": 1.8}),
    _c("I50.9", "cardiology", (0, 0.001, 0.01, 0.05), ages=(30, 120), boosts={"I25": 3.0, "I11": 3.0, "I48": 2.0}),
    _c("I20.9", "cardiology", (0, 0.001, 0.01, 0.03), ages=(30, 120), boosts={"I25": 4.0}),
    _c("I21.9", "cardiology", (0, 0, 0.004, 0.01), ages=(35, 120), boosts={"I25": 4.0}, chronic=False),
    _c("I73.9", "cardiology", (0, 0, 0.01, 0.04), ages=(40, 120), boosts={"E11": 2.0, "F17": 2.5}),
    _c("I34.0", "cardiology", (0, 0.001, 0.005, 0.02)),
    _c("I35.0", "cardiology", (0, 0, 0.002, 0.02), ages=(50, 120)),
    _c("I47.10", "cardiology", (0.001, 0.003, 0.004, 0.005)),
    _c("I49.9", "cardiology", (0.001, 0.005, 0.01, 0.02)),
    _c("I26.99", "cardiology", (0, 0.001, 0.002, 0.004), ages=(15, 120), chronic=False),
    _c("I82.409", "cardiology", (0, 0.001, 0.003, 0.006), ages=(15, 120), chronic=False),
    _c("I95.9", "cardiology", (0.001, 0.004, 0.005, 0.01)),
    _c("R00.2", "cardiology", (0.002, 0.01, 0.01, 0.01), chronic=False),
    _c("R07.9", "cardiology", (0.003, 0.02, 0.03, 0.03), chronic=False),
    # renal and genitourinary
    _c(
        "N18.30",
        "renal",
        (0, 0.002, 0.015, 0.05),
        ages=(18, 120),
        group="ckd",
        boosts={"E11": 3.5, "I10": 2.5, "I11": 3.0},
    ),
    _c("N18.31", "renal", (0, 0.001, 0.008, 0.03), ages=(18, 120), group="ckd", boosts={"E11": 3.5, "I10": 2.5}),
    _c("N18.4", "renal", (0, 0, 0.002, 0.008), ages=(18, 120), group="ckd", boosts={"E11": 3.5, "I10": 2.5}),
    _c("N18.6", "renal", (0, 0.0005, 0.002, 0.004), ages=(18, 120), group="ckd", boosts={"E11": 3.0, "I10": 2.0}),
    _c("N17.9", "renal", (0, 0.001, 0.003, 0.01), chronic=False),
    _c("N39.0", "renal", (0.02, 0.04, 0.03, 0.05), ratio=4.0, chronic=False),
    _c("N30.00", "renal", (0.01, 0.02, 0.015, 0.02), ratio=4.0, chronic=False),
    _c("N20.0", "renal", (0, 0.01, 0.015, 0.01), ages=(15, 120), ratio=0.6),
    _c("R31.9", "renal", (0.002, 0.005, 0.01, 0.015), chronic=False),
    _c("N40.0", "renal", (0, 0, 0.04, 0.15), sex="M", ages=(40, 120), group="bph"),
    _c("N40.1", "renal", (0, 0, 0.03, 0.10), sex="M", ages=(40, 120), group="bph"),
    _c("N41.0", "renal", (0, 0.002, 0.002, 0.001), sex="M", ages=(18, 120), chronic=False),
    _c("N52.9", "renal", (0, 0.01, 0.05, 0.08), sex="M", ages=(18, 120), boosts={"E11": 2.0}),
    _c("N95.1", "obstetrics", (0, 0, 0.08, 0.02), sex="F", ages=(40, 70)),
    _c("N94.6", "obstetrics", (0.02, 0.04, 0.005, 0), sex="F", ages=(10, 50)),
    _c("N92.0", "obstetrics", (0.01, 0.03, 0.02, 0), sex="F", ages=(10, 55)),
    _c("N91.2", "obstetrics", (0.005, 0.01, 0.005, 0), sex="F", ages=(12, 55)),
    _c("D25.9", "obstetrics", (0, 0.02, 0.04, 0.01), sex="F", ages=(18, 120)),
    # obstetrics: female, 12-55
    _c("Z34.00", "obstetrics", (0.004, 0.03, 0.002, 0), sex="F", ages=(14, 50), group="pregnancy"),
    _c("Z34.80", "obstetrics", (0.002, 0.04, 0.003, 0), sex="F", ages=(16, 50), group="pregnancy"),
    _c("O09.90", "obstetrics", (0.001, 0.01, 0.003, 0), sex="F", ages=(14, 52), group="pregnancy"),
    _c("O80", "obstetrics", (0.001, 0.02, 0.001, 0), sex="F", ages=(15, 50), group="pregnancy", chronic=False),
    _c("O03.9", "obstetrics", (0, 0.005, 0.001, 0), sex="F", ages=(15, 50), group="pregnancy", chronic=False),
    _c("O24.410", "obstetrics", (0, 0.15, 0.2, 0), sex="F", ages=(15, 50), requires=PREG, boosts={"E66": 2.5}),
    _c("O21.0", "obstetrics", (0, 0.08, 0.03, 0), sex="F", ages=(14, 50), requires=PREG, chronic=False),
    _c("O13.9", "obstetrics", (0, 0.06, 0.1, 0), sex="F", ages=(14, 52), requires=PREG),
    _c("O99.019", "obstetrics", (0, 0.08, 0.05, 0), sex="F", ages=(14, 52), requires=PREG),
    _c("Z30.011", "obstetrics", (0.01, 0.04, 0.005, 0), sex="F", ages=(13, 50), chronic=False),
    # respiratory
    _c("J45.909", "respiratory", (0.06, 0.05, 0.045, 0.04), group="asthma"),
    _c("J45.20", "respiratory", (0.02, 0.02, 0.01, 0.01), ages=(2, 120), group="asthma"),
    _c("F17.210", "mental health", (0, 0.10, 0.12, 0.08), ages=(14, 120), ratio=0.8),
    _c("J44.9", "respiratory", (0, 0.002, 0.03, 0.08), ages=(35, 120), group="copd", boosts={"F17": 4.0}),
    _c("J44.1", "respiratory", (0, 0, 0.005, 0.02), ages=(35, 120), group="copd", boosts={"F17": 4.0}),
    _c("J06.9", "respiratory", (0.15, 0.06, 0.04, 0.03), chronic=False),
    _c("J02.9", "respiratory", (0.08, 0.03, 0.02, 0.01), chronic=False),
    _c("J01.90", "respiratory", (0.02, 0.03, 0.03, 0.02), chronic=False),
    _c("J20.9", "respiratory", (0.03, 0.02, 0.02, 0.03), chronic=False),
    _c("J18.9", "respiratory", (0.01, 0.005, 0.01, 0.03), chronic=False),
    _c("J30.9", "respiratory", (0.06, 0.08, 0.07, 0.05)),
    _c("J32.9", "respiratory", (0.005, 0.02, 0.02, 0.02)),
    _c("J84.10", "respiratory", (0, 0, 0.002, 0.006), ages=(40, 120)),
    _c("R05.9", "respiratory", (0.03, 0.02, 0.02, 0.02), chronic=False),
    _c("G47.33", "respiratory", (0.002, 0.02, 0.05, 0.06), ratio=0.5, boosts={"E66": 2.5}),
    # mental health
    _c("F32.9", "mental health", (0.01, 0.07, 0.06, 0.04), ages=(8, 120), group="depression", ratio=1.7),
    _c("F32.A", "mental health", (0.01, 0.04, 0.04, 0.03), ages=(8, 120), group="depression", ratio=1.7),
    _c("F33.1", "mental health", (0.002, 0.02, 0.02, 0.01), ages=(12, 120), group="depression", ratio=1.7),
    _c("F41.1", "mental health", (0.01, 0.07, 0.06, 0.03), ages=(6, 120), group="anxiety", ratio=1.7),
    _c("F41.9", "mental health", (0.02, 0.05, 0.04, 0.03), ages=(4, 120), group="anxiety", ratio=1.5),
    _c("F43.10", "mental health", (0.003, 0.02, 0.015, 0.005), ages=(3, 120), ratio=2.0),
    _c("F90.0", "mental health", (0.04, 0.02, 0.005, 0), ages=(4, 64), group="adhd", ratio=0.5),
    _c("F90.2", "mental health", (0.03, 0.01, 0.002, 0), ages=(4, 64), group="adhd", ratio=0.5),
    _c("F84.0", "mental health", (0.015, 0.005, 0.001, 0), ages=(2, 120), ratio=0.3),
    _c("F31.9", "mental health", (0.001, 0.01, 0.01, 0.005), ages=(12, 120)),
    _c("F20.9", "mental health", (0, 0.004, 0.004, 0.002), ages=(15, 120), ratio=0.7),
    _c("F10.20", "mental health", (0, 0.02, 0.02, 0.01), ages=(15, 120), ratio=0.5),
    _c("F11.20", "mental health", (0, 0.006, 0.005, 0.001), ages=(15, 120), ratio=0.6),
    _c("F40.10", "mental health", (0.01, 0.01, 0.005, 0.002), ages=(8, 120)),
    _c("F42.9", "mental health", (0.003, 0.005, 0.003, 0.001), ages=(6, 120)),
    _c("G47.00", "mental health", (0.005, 0.04, 0.05, 0.06), ratio=1.4),
    # neurology
    _c("G43.909", "neurology", (0.01, 0.08, 0.06, 0.02), ages=(5, 120), ratio=3.0),
    _c("G44.209", "neurology", (0.01, 0.03, 0.03, 0.02), ages=(5, 120)),
    _c("R51.9", "neurology", (0.03, 0.03, 0.02, 0.02), chronic=False),
    _c("G40.909", "neurology", (0.005, 0.007, 0.007, 0.008)),
    _c("G20.A1", "neurology", (0, 0, 0.002, 0.01), ages=(40, 120), ratio=0.7),
    _c("G62.9", "neurology", (0, 0.002, 0.01, 0.03), ages=(18, 120), boosts={"E11": 3.0}),
    _c("G25.81", "neurology", (0, 0.01, 0.02, 0.03), ages=(18, 120)),
    _c("G45.9", "neurology", (0, 0.0005, 0.003, 0.01), ages=(30, 120), boosts={"I10": 2.0, "I48": 2.0}, chronic=False),
    _c("I63.9", "neurology", (0, 0.0005, 0.004, 0.015), ages=(30, 120), boosts={"I10": 2.0, "I48": 3.0}),
    _c("G56.01", "neurology", (0, 0.01, 0.02, 0.01), ages=(18, 120), ratio=3.0),
    _c("F03.90", "neurology", (0, 0, 0.002, 0.04), ages=(50, 120), group="dementia"),
    _c("G30.9", "neurology", (0, 0, 0.001, 0.03), ages=(50, 120), group="dementia"),
    _c("R42", "neurology", (0.005, 0.02, 0.02, 0.04), chronic=False),
    _c("R55", "neurology", (0.005, 0.01, 0.01, 0.02), chronic=False),
    # musculoskeletal
    _c("M54.50", "musculoskeletal", (0.01, 0.08, 0.10, 0.09), chronic=False),
    _c("M54.2", "musculoskeletal", (0.005, 0.03, 0.04, 0.03), chronic=False),
    _c("M17.11", "musculoskeletal", (0, 0.002, 0.03, 0.07), ages=(30, 120), group="knee-oa", boosts={"E66": 2.0}),
    _c("M17.0", "musculoskeletal", (0, 0.001, 0.02, 0.06), ages=(30, 120), group="knee-oa", boosts={"E66": 2.0}),
    _c("M16.11", "musculoskeletal", (0, 0, 0.01, 0.03), ages=(35, 120)),
    _c("M19.90", "musculoskeletal", (0, 0.005, 0.04, 0.08), ages=(25, 120)),
    _c("M81.0", "musculoskeletal", (0, 0, 0.02, 0.10), ages=(50, 120), ratio=4.0),
    _c("M10.9", "musculoskeletal", (0, 0.005, 0.02, 0.04), ages=(18, 120), ratio=0.33, boosts={"E66": 2.0, "N18": 2.0}),
    _c("M06.9", "musculoskeletal", (0, 0.003, 0.008, 0.01), ages=(16, 120), ratio=2.5),
    _c("M79.7", "musculoskeletal", (0, 0.01, 0.02, 0.01), ages=(18, 120), ratio=4.0),
    _c("M75.101", "musculoskeletal", (0, 0.003, 0.01, 0.015), ages=(18, 120)),
    _c("M25.561", "musculoskeletal", (0.01, 0.02, 0.03, 0.03), chronic=False),
    _c("M62.830", "musculoskeletal", (0.002, 0.01, 0.01, 0.005), chronic=False),
    _c("M41.9", "musculoskeletal", (0.02, 0.01, 0.005, 0.005), ratio=2.0),
    _c("M35.3", "musculoskeletal", (0, 0, 0.001, 0.005), ages=(50, 120), ratio=2.0),
    _c("M65.30", "musculoskeletal", (0, 0.002, 0.005, 0.005), ages=(18, 120)),
    _c("S93.401A", "musculoskeletal", (0.02, 0.02, 0.005, 0.002), chronic=False),
    _c(
        "S72.001A",
        "musculoskeletal",
        (0, 0, 0.001, 0.008),
        ages=(50, 120),
        ratio=2.0,
        boosts={"M81": 3.0},
        chronic=False,
    ),
    # infectious disease
    _c("A09", "infectious", (0.06, 0.03, 0.02, 0.02), chronic=False),
    _c("A08.4", "infectious", (0.05, 0.02, 0.01, 0.01), chronic=False),
    _c("B34.9", "infectious", (0.08, 0.03, 0.02, 0.01), chronic=False),
    _c("J10.1", "infectious", (0.03, 0.02, 0.02, 0.02), chronic=False),
    _c("J11.1", "infectious", (0.02, 0.02, 0.02, 0.02), chronic=False),
    _c("U07.1", "infectious", (0.02, 0.02, 0.02, 0.03), chronic=False),
    _c("B20", "infectious", (0, 0.003, 0.003, 0.001), ages=(13, 120), ratio=0.4),
    _c("B18.2", "infectious", (0, 0.003, 0.005, 0.003), ages=(18, 120)),
    _c("A41.9", "infectious", (0.001, 0.001, 0.002, 0.008), chronic=False),
    _c("L03.115", "infectious", (0.003, 0.005, 0.008, 0.01), chronic=False, boosts={"E11": 2.0}),
    _c("B35.1", "infectious", (0, 0.01, 0.02, 0.03), ages=(10, 120)),
    _c("A04.72", "infectious", (0, 0.001, 0.002, 0.006), ages=(2, 120), chronic=False),
    _c("B02.9", "infectious", (0.001, 0.003, 0.01, 0.02), chronic=False),
    _c("A69.20", "infectious", (0.002, 0.002, 0.002, 0.002), chronic=False),
    _c("B01.9", "infectious", (0.01, 0.001, 0, 0), ages=(1, 39), chronic=False),
    _c("A15.0", "infectious", (0, 0.0005, 0.0005, 0.0005), ages=(12, 120), chronic=False),
    _c("H66.90", "pediatrics", (0.10, 0.01, 0.005, 0.003), chronic=False),
    # oncology
    _c("C50.911", "oncology", (0, 0.002, 0.01, 0.02), sex="F", ages=(20, 120), group="breast-ca"),
    _c("C50.912", "oncology", (0, 0.002, 0.01, 0.02), sex="F", ages=(20, 120), group="breast-ca"),
    _c("Z85.3", "oncology", (0, 0.001, 0.01, 0.03), sex="F", ages=(25, 120)),
    _c("C61", "oncology", (0, 0, 0.01, 0.05), sex="M", ages=(40, 120)),
    _c("C34.90", "oncology", (0, 0, 0.003, 0.01), ages=(30, 120), boosts={"F17": 5.0}),
    _c("C18.9", "oncology", (0, 0.0005, 0.003, 0.008), ages=(20, 120)),
    _c("C20", "oncology", (0, 0, 0.001, 0.003), ages=(25, 120)),
    _c("C43.9", "oncology", (0, 0.001, 0.003, 0.006), ages=(15, 120)),
    _c("C44.91", "oncology", (0, 0.002, 0.01, 0.03), ages=(20, 120)),
    _c("C67.9", "oncology", (0, 0, 0.002, 0.006), ages=(30, 120), ratio=0.33, boosts={"F17": 3.0}),
    _c("C73", "oncology", (0, 0.002, 0.003, 0.002), ages=(12, 120), ratio=3.0),
    _c("C91.10", "oncology", (0, 0, 0.001, 0.004), ages=(30, 120)),
    _c("C90.00", "oncology", (0, 0, 0.001, 0.003), ages=(35, 120)),
    _c("C56.9", "oncology", (0, 0.0005, 0.001, 0.002), sex="F", ages=(18, 120)),
    _c("C53.9", "oncology", (0, 0.0005, 0.001, 0.0005), sex="F", ages=(18, 120)),
    _c("C25.9", "oncology", (0, 0, 0.001, 0.002), ages=(30, 120)),
    _c("D64.9", "hematology", (0.01, 0.03, 0.03, 0.06), group="anemia", ratio=2.0, boosts={"N18": 3.0}),
    _c("D50.9", "hematology", (0.01, 0.03, 0.02, 0.03), group="anemia", ratio=3.0),
    _c("D69.6", "hematology", (0.001, 0.002, 0.005, 0.01)),
    # gastroenterology
    _c("K21.9", "primary care", (0.01, 0.06, 0.10, 0.12), boosts={"E66": 1.5}),
    _c("K58.9", "primary care", (0, 0.03, 0.03, 0.02), ages=(12, 120), ratio=2.0),
    _c("K57.30", "primary care", (0, 0.002, 0.03, 0.08), ages=(30, 120)),
    _c("K80.20", "primary care", (0, 0.01, 0.02, 0.03), ages=(12, 120), ratio=2.0, boosts={"E66": 2.0}),
    _c("K76.0", "primary care", (0, 0.02, 0.05, 0.04), ages=(12, 120), boosts={"E66": 3.0, "E11": 2.0}),
    _c("K29.70", "primary care", (0.005, 0.02, 0.02, 0.02)),
    _c("K50.90", "primary care", (0.001, 0.003, 0.002, 0.001), ages=(5, 120)),
    _c("K51.90", "primary care", (0.001, 0.003, 0.003, 0.002), ages=(5, 120)),
    _c("K64.9", "primary care", (0, 0.02, 0.03, 0.03), ages=(15, 120)),
    _c("K90.0", "primary care", (0.003, 0.005, 0.004, 0.003)),
    _c("K59.00", "primary care", (0.04, 0.02, 0.02, 0.04), chronic=False),
    _c("R10.9", "primary care", (0.04, 0.04, 0.03, 0.03), chronic=False),
    _c("R11.2", "primary care", (0.03, 0.02, 0.01, 0.01), chronic=False),
    # dermatology, eye, ear
    _c("L20.9", "primary care", (0.08, 0.03, 0.02, 0.01)),
    _c("L40.0", "primary care", (0.003, 0.02, 0.02, 0.02)),
    _c("L70.0", "primary care", (0.06, 0.04, 0.005, 0), ages=(10, 50)),
    _c("L30.9", "primary care", (0.02, 0.02, 0.02, 0.02), chronic=False),
    _c("D22.9", "primary care", (0.01, 0.02, 0.02, 0.02)),
    _c("H10.9", "primary care", (0.04, 0.01, 0.01, 0.01), chronic=False),
    _c("H40.9", "primary care", (0, 0.002, 0.01, 0.04), ages=(18, 120)),
    _c("H25.9", "primary care", (0, 0, 0.01, 0.10), ages=(45, 120)),
    _c("H52.4", "primary care", (0, 0.01, 0.15, 0.20), ages=(38, 120)),
    _c("H35.30", "primary care", (0, 0, 0.003, 0.04), ages=(50, 120)),
    _c("H61.21", "primary care", (0.02, 0.02, 0.02, 0.04), chronic=False),
    _c("H91.90", "primary care", (0.002, 0.005, 0.02, 0.10)),
    # pediatrics
    _c("P59.9", "pediatrics", (0.01, 0, 0, 0), ages=(0, 0), chronic=False),
    _c("J21.9", "pediatrics", (0.02, 0, 0, 0), ages=(0, 2), chronic=False),
    _c("L22", "pediatrics", (0.02, 0, 0, 0), ages=(0, 3), chronic=False),
    _c("R56.00", "pediatrics", (0.003, 0, 0, 0), ages=(0, 5), chronic=False),
    _c("B08.4", "pediatrics", (0.02, 0.001, 0, 0), ages=(0, 30), chronic=False),
    _c("R50.9", "pediatrics", (0.06, 0.01, 0.01, 0.01), chronic=False),
    _c("F80.9", "pediatrics", (0.02, 0, 0, 0), ages=(1, 17), ratio=0.5),
    _c("R62.50", "pediatrics", (0.01, 0, 0, 0), ages=(0, 17)),
    _c("E30.1", "pediatrics", (0.002, 0, 0, 0), ages=(4, 12), ratio=5.0),
    _c("Q90.9", "pediatrics", (0.0015, 0.0015, 0.001, 0.0005)),
    _c("J35.01", "pediatrics", (0.01, 0.003, 0.001, 0), ages=(2, 40)),
]
BY_CODE = {c.code: c for c in CONDITIONS}


# Drugs: (name, dose, frequency, route). A drug may treat several conditions.
def _m(name, dose, freq, route="oral"):
    return (name, dose, freq, route)


LISINOPRIL, AMLODIPINE, HCTZ, LOSARTAN = (
    _m("lisinopril", "10 mg", "once daily"),
    _m("amlodipine", "5 mg", "once daily"),
    _m("hydrochlorothiazide", "25 mg", "once daily"),
    _m("losartan", "50 mg", "once daily"),
)
METFORMIN = _m("metformin", "500 mg", "twice daily")
STATIN = _m("atorvastatin", "20 mg", "once daily")
ASPIRIN = _m("aspirin", "81 mg", "once daily")
METOPROLOL = _m("metoprolol succinate", "25 mg", "once daily")
APIXABAN = _m("apixaban", "5 mg", "twice daily")
CLOPIDOGREL = _m("clopidogrel", "75 mg", "once daily")
ALBUTEROL = _m("albuterol", "90 mcg/actuation, 2 puffs", "every 4 hours as needed", "inhaled")
SERTRALINE, ESCITALOPRAM = _m("sertraline", "50 mg", "once daily"), _m("escitalopram", "10 mg", "once daily")
IBUPROFEN = _m("ibuprofen", "400 mg", "every 6 hours as needed")
NAPROXEN = _m("naproxen", "500 mg", "twice daily as needed")
ACETAMINOPHEN = _m("acetaminophen", "650 mg", "every 6 hours as needed")
GABAPENTIN = _m("gabapentin", "300 mg", "three times daily")
NITROFURANTOIN = _m("nitrofurantoin", "100 mg", "twice daily for 5 days")
TMP_SMX = _m("trimethoprim-sulfamethoxazole", "800/160 mg", "twice daily for 3 days")
TAMSULOSIN = _m("tamsulosin", "0.4 mg", "once daily")
ONDANSETRON = _m("ondansetron", "4 mg", "every 8 hours as needed")
OSELTAMIVIR = _m("oseltamivir", "75 mg", "twice daily for 5 days")
FERROUS = _m("ferrous sulfate", "325 mg", "once daily")
PPI = _m("omeprazole", "20 mg", "once daily")
PRENATAL = _m("prenatal multivitamin", "1 tablet", "once daily")
CEPHALEXIN = _m("cephalexin", "500 mg", "four times daily for 7 days")
AMOXICILLIN = _m("amoxicillin", "500 mg", "twice daily for 10 days")
LEVOTHYROXINE = _m("levothyroxine", "50 mcg", "once daily")

MEDICATIONS: dict[str, list[tuple[str, str, str, str]]] = {
    "I10": [LISINOPRIL, AMLODIPINE, HCTZ, LOSARTAN],
    "I11.9": [LISINOPRIL, LOSARTAN],
    "I25.10": [STATIN, ASPIRIN, METOPROLOL],
    "I48.91": [APIXABAN, METOPROLOL],
    "I50.9": [_m("furosemide", "40 mg", "once daily"), _m("carvedilol", "6.25 mg", "twice daily")],
    "I20.9": [_m("nitroglycerin", "0.4 mg", "every 5 minutes as needed for chest pain", "sublingual")],
    "I21.9": [CLOPIDOGREL, ASPIRIN, STATIN],
    "I63.9": [CLOPIDOGREL, STATIN],
    "I73.9": [_m("cilostazol", "100 mg", "twice daily"), ASPIRIN],
    "I26.99": [APIXABAN, _m("rivaroxaban", "20 mg", "once daily")],
    "I82.409": [APIXABAN, _m("rivaroxaban", "20 mg", "once daily")],
    "I49.9": [METOPROLOL],
    "I47.10": [METOPROLOL],
    "E66.01": [_m("semaglutide", "2.4 mg", "once weekly", "subcutaneous")],
    "E11.9": [METFORMIN, _m("empagliflozin", "10 mg", "once daily"), _m("sitagliptin", "100 mg", "once daily")],
    "E11.65": [
        METFORMIN,
        _m("insulin glargine", "20 units", "at bedtime", "subcutaneous"),
        _m("glipizide", "5 mg", "once daily"),
    ],
    "E11.40": [METFORMIN, GABAPENTIN],
    "E10.9": [
        _m("insulin glargine", "20 units", "at bedtime", "subcutaneous"),
        _m("insulin lispro", "5 units", "with meals", "subcutaneous"),
    ],
    "R73.03": [METFORMIN],
    "E78.5": [STATIN, _m("rosuvastatin", "10 mg", "once daily")],
    "E78.00": [STATIN, _m("simvastatin", "20 mg", "at bedtime")],
    "E78.1": [_m("fenofibrate", "145 mg", "once daily")],
    "E03.9": [LEVOTHYROXINE],
    "E05.90": [_m("methimazole", "10 mg", "once daily")],
    "E55.9": [_m("cholecalciferol", "2000 IU", "once daily")],
    "E28.2": [_m("spironolactone", "100 mg", "once daily")],
    "E29.1": [_m("testosterone cypionate", "100 mg", "once weekly", "intramuscular")],
    "J45.909": [
        ALBUTEROL,
        _m("fluticasone", "110 mcg/actuation, 2 puffs", "twice daily", "inhaled"),
        _m("montelukast", "10 mg", "once daily"),
    ],
    "J45.20": [ALBUTEROL],
    "J44.9": [_m("tiotropium", "18 mcg", "once daily", "inhaled"), ALBUTEROL],
    "J44.1": [_m("prednisone", "40 mg", "once daily for 5 days"), ALBUTEROL],
    "J02.9": [AMOXICILLIN],
    "J01.90": [_m("amoxicillin-clavulanate", "875/125 mg", "twice daily for 7 days")],
    "J18.9": [
        _m("azithromycin", "250 mg", "once daily for 5 days"),
        _m("levofloxacin", "750 mg", "once daily for 5 days"),
    ],
    "J30.9": [
        _m("cetirizine", "10 mg", "once daily"),
        _m("fluticasone nasal", "50 mcg/spray, 2 sprays", "once daily", "nasal"),
    ],
    "F32.9": [SERTRALINE, ESCITALOPRAM, _m("bupropion XL", "150 mg", "once daily")],
    "F32.A": [SERTRALINE, ESCITALOPRAM],
    "F33.1": [SERTRALINE, _m("venlafaxine XR", "75 mg", "once daily")],
    "F41.1": [SERTRALINE, ESCITALOPRAM, _m("buspirone", "10 mg", "twice daily")],
    "F41.9": [ESCITALOPRAM],
    "F43.10": [SERTRALINE, _m("prazosin", "1 mg", "at bedtime")],
    "F90.0": [_m("methylphenidate ER", "18 mg", "once daily in the morning")],
    "F90.2": [_m("lisdexamfetamine", "30 mg", "once daily in the morning")],
    "F31.9": [_m("lithium carbonate", "300 mg", "twice daily"), _m("lamotrigine", "100 mg", "once daily")],
    "F20.9": [_m("risperidone", "2 mg", "once daily"), _m("aripiprazole", "10 mg", "once daily")],
    "F10.20": [_m("naltrexone", "50 mg", "once daily")],
    "F11.20": [_m("buprenorphine-naloxone", "8/2 mg", "once daily", "sublingual")],
    "F17.210": [
        _m("nicotine patch", "21 mg/24 hours", "once daily", "transdermal"),
        _m("varenicline", "1 mg", "twice daily"),
    ],
    "G47.00": [_m("trazodone", "50 mg", "at bedtime")],
    "F03.90": [_m("donepezil", "10 mg", "once daily")],
    "G30.9": [_m("donepezil", "10 mg", "once daily"), _m("memantine", "10 mg", "twice daily")],
    "G43.909": [_m("sumatriptan", "50 mg", "as needed for migraine"), _m("topiramate", "50 mg", "twice daily")],
    "G44.209": [IBUPROFEN, ACETAMINOPHEN],
    "R51.9": [ACETAMINOPHEN],
    "G40.909": [_m("levetiracetam", "500 mg", "twice daily"), _m("lamotrigine", "100 mg", "once daily")],
    "G20.A1": [_m("carbidopa-levodopa", "25/100 mg", "three times daily")],
    "G62.9": [GABAPENTIN],
    "G25.81": [_m("ropinirole", "0.25 mg", "at bedtime")],
    "G45.9": [ASPIRIN, CLOPIDOGREL],
    "M54.50": [IBUPROFEN, _m("cyclobenzaprine", "10 mg", "three times daily as needed")],
    "M54.2": [NAPROXEN],
    "M17.11": [ACETAMINOPHEN, _m("meloxicam", "15 mg", "once daily")],
    "M17.0": [ACETAMINOPHEN, _m("diclofenac gel", "1%, 4 g", "four times daily", "topical")],
    "M16.11": [ACETAMINOPHEN, _m("meloxicam", "15 mg", "once daily")],
    "M19.90": [ACETAMINOPHEN],
    "M81.0": [_m("alendronate", "70 mg", "once weekly")],
    "M10.9": [_m("allopurinol", "300 mg", "once daily"), _m("colchicine", "0.6 mg", "once daily")],
    "M06.9": [_m("methotrexate", "15 mg", "once weekly")],
    "M79.7": [_m("duloxetine", "60 mg", "once daily"), _m("pregabalin", "75 mg", "twice daily")],
    "M35.3": [_m("prednisone", "15 mg", "once daily")],
    "S93.401A": [IBUPROFEN],
    "N18.6": [_m("sevelamer", "800 mg", "three times daily with meals")],
    "N39.0": [NITROFURANTOIN, TMP_SMX, CEPHALEXIN],
    "N30.00": [NITROFURANTOIN, TMP_SMX],
    "N20.0": [TAMSULOSIN],
    "N40.0": [TAMSULOSIN, _m("finasteride", "5 mg", "once daily")],
    "N40.1": [TAMSULOSIN, _m("finasteride", "5 mg", "once daily")],
    "N41.0": [_m("ciprofloxacin", "500 mg", "twice daily for 28 days")],
    "N52.9": [_m("sildenafil", "50 mg", "as needed")],
    "N95.1": [_m("estradiol", "1 mg", "once daily")],
    "N94.6": [IBUPROFEN, NAPROXEN],
    "N92.0": [_m("tranexamic acid", "1300 mg", "three times daily during menses")],
    "Z30.011": [_m("norgestimate-ethinyl estradiol", "0.25/0.035 mg", "once daily")],
    "Z34.00": [PRENATAL],
    "Z34.80": [PRENATAL],
    "O09.90": [PRENATAL],
    "O21.0": [_m("doxylamine-pyridoxine", "10/10 mg", "at bedtime")],
    "O13.9": [_m("labetalol", "200 mg", "twice daily")],
    "O99.019": [FERROUS],
    "A09": [ONDANSETRON],
    "A08.4": [ONDANSETRON],
    "R11.2": [ONDANSETRON],
    "J10.1": [OSELTAMIVIR],
    "J11.1": [OSELTAMIVIR],
    "U07.1": [_m("nirmatrelvir-ritonavir", "300/100 mg", "twice daily for 5 days")],
    "B20": [_m("bictegravir-emtricitabine-tenofovir alafenamide", "50/200/25 mg", "once daily")],
    "B18.2": [_m("sofosbuvir-velpatasvir", "400/100 mg", "once daily for 12 weeks")],
    "A41.9": [
        _m("vancomycin", "1 g", "every 12 hours", "intravenous"),
        _m("piperacillin-tazobactam", "4.5 g", "every 6 hours", "intravenous"),
    ],
    "L03.115": [CEPHALEXIN],
    "B35.1": [_m("terbinafine", "250 mg", "once daily for 12 weeks")],
    "A04.72": [_m("vancomycin", "125 mg", "four times daily for 10 days")],
    "B02.9": [_m("valacyclovir", "1 g", "three times daily for 7 days")],
    "A69.20": [_m("doxycycline", "100 mg", "twice daily for 14 days")],
    "A15.0": [_m("isoniazid", "300 mg", "once daily"), _m("rifampin", "600 mg", "once daily")],
    "H66.90": [AMOXICILLIN],
    "C50.911": [_m("tamoxifen", "20 mg", "once daily"), _m("anastrozole", "1 mg", "once daily")],
    "C50.912": [_m("tamoxifen", "20 mg", "once daily"), _m("anastrozole", "1 mg", "once daily")],
    "Z85.3": [_m("anastrozole", "1 mg", "once daily")],
    "C61": [_m("leuprolide", "22.5 mg", "every 3 months", "intramuscular"), _m("bicalutamide", "50 mg", "once daily")],
    "C91.10": [_m("ibrutinib", "420 mg", "once daily")],
    "C90.00": [_m("lenalidomide", "25 mg", "once daily on days 1-21 of 28")],
    "D64.9": [FERROUS],
    "D50.9": [FERROUS],
    "K21.9": [PPI, _m("famotidine", "20 mg", "twice daily")],
    "K29.70": [PPI],
    "K58.9": [_m("dicyclomine", "20 mg", "four times daily as needed")],
    "K50.90": [_m("adalimumab", "40 mg", "every 2 weeks", "subcutaneous")],
    "K51.90": [_m("mesalamine", "2.4 g", "once daily")],
    "K59.00": [_m("polyethylene glycol 3350", "17 g", "once daily")],
    "L20.9": [_m("hydrocortisone cream", "1%", "twice daily", "topical")],
    "L40.0": [_m("clobetasol ointment", "0.05%", "twice daily", "topical")],
    "L70.0": [_m("tretinoin cream", "0.025%", "at bedtime", "topical")],
    "H10.9": [_m("polymyxin B-trimethoprim ophthalmic", "1 drop", "every 6 hours for 7 days", "ophthalmic")],
    "H40.9": [_m("latanoprost ophthalmic", "0.005%, 1 drop", "at bedtime", "ophthalmic")],
    "R50.9": [ACETAMINOPHEN],
}

DRUG_INDICATIONS: dict[str, set[str]] = {}
for _code, _meds in MEDICATIONS.items():
    for _med in _meds:
        DRUG_INDICATIONS.setdefault(_med[0], set()).add(_code)

# Allergies: (substance, category, reactions, drugs it forbids)
ALLERGIES = [
    (
        "penicillin",
        "medication",
        ("hives", "anaphylaxis", "rash"),
        {"amoxicillin", "amoxicillin-clavulanate", "piperacillin-tazobactam"},
    ),
    ("sulfonamide antibiotics", "medication", ("rash", "hives"), {"trimethoprim-sulfamethoxazole"}),
    (
        "NSAIDs",
        "medication",
        ("angioedema", "bronchospasm"),
        {"ibuprofen", "naproxen", "meloxicam", "diclofenac gel", "aspirin"},
    ),
    ("codeine", "medication", ("nausea", "itching"), set()),
    ("cephalosporins", "medication", ("rash",), {"cephalexin"}),
    ("iodinated contrast", "medication", ("hives",), set()),
    ("latex", "environment", ("contact dermatitis",), set()),
    ("peanut", "food", ("anaphylaxis", "hives"), set()),
    ("shellfish", "food", ("hives", "swelling"), set()),
    ("egg", "food", ("rash",), set()),
    ("bee venom", "environment", ("anaphylaxis", "swelling"), set()),
    ("tree pollen", "environment", ("rhinitis",), set()),
]
ALLERGY_FORBIDS = {a[0]: a[3] for a in ALLERGIES}


@dataclass(frozen=True)
class Measure:
    code: str  # LOINC
    name: str
    unit: str
    low: float | None  # reference range; None where the range depends on age
    high: float | None
    hard_low: float  # outside these no living patient is measured
    hard_high: float
    category: str = "laboratory"


MEASURES = {
    m.code: m
    for m in [
        Measure("8480-6", "Systolic blood pressure", "mm[Hg]", 90, 129, 50, 260, "vital-signs"),
        Measure("8462-4", "Diastolic blood pressure", "mm[Hg]", 60, 80, 25, 160, "vital-signs"),
        Measure("8867-4", "Heart rate", "/min", 60, 100, 25, 250, "vital-signs"),
        Measure("8310-5", "Body temperature", "Cel", 36.1, 37.2, 30, 43, "vital-signs"),
        Measure("59408-5", "Oxygen saturation", "%", 95, 100, 50, 100, "vital-signs"),
        Measure("8302-2", "Body height", "cm", None, None, 40, 230, "vital-signs"),
        Measure("29463-7", "Body weight", "kg", None, None, 2, 350, "vital-signs"),
        Measure("39156-5", "Body mass index", "kg/m2", 18.5, 24.9, 8, 90, "vital-signs"),
        Measure("4548-4", "Hemoglobin A1c", "%", 4.0, 5.6, 3, 20),
        Measure("2345-7", "Glucose", "mg/dL", 70, 99, 20, 1000),
        Measure("2093-3", "Cholesterol, total", "mg/dL", 125, 199, 50, 600),
        Measure("13457-7", "LDL cholesterol", "mg/dL", 0, 99, 10, 400),
        Measure("2085-9", "HDL cholesterol", "mg/dL", 40, 90, 10, 150),
        Measure("2571-8", "Triglycerides", "mg/dL", 0, 149, 20, 3000),
        Measure("2160-0", "Creatinine", "mg/dL", 0.6, 1.3, 0.1, 20),
        Measure("33914-3", "eGFR", "mL/min/1.73m2", 60, 120, 2, 150),
        Measure("3016-3", "TSH", "mIU/L", 0.4, 4.0, 0.005, 100),
        Measure("718-7", "Hemoglobin", "g/dL", 12.0, 17.5, 3, 25),
        Measure("2951-2", "Sodium", "mmol/L", 135, 145, 100, 180),
        Measure("2823-3", "Potassium", "mmol/L", 3.5, 5.1, 1.5, 9),
    ]
}
MEASURE_BY_NAME = {m.name.lower(): m for m in MEASURES.values()}

# Sex-specific codes beyond the catalog, by ICD-10-CM prefix, for judging any record.
FEMALE_ONLY = (
    "O",
    "Z34",
    "Z33",
    "Z3A",
    "Z30.01",
    "N70",
    "N71",
    "N72",
    "N73",
    "N75",
    "N76",
    "N80",
    "N81",
    "N83",
    "N84",
    "N85",
    "N86",
    "N87",
    "N88",
    "N89",
    "N90",
    "N91",
    "N92",
    "N93",
    "N94",
    "N95",
    "N96",
    "N97",
    "E28",
    "D25",
    "D26",
    "D27",
    "C51",
    "C52",
    "C53",
    "C54",
    "C55",
    "C56",
    "C57",
    "C58",
    "C50.01",
    "C50.11",
    "C50.21",
    "C50.31",
    "C50.41",
    "C50.51",
    "C50.61",
    "C50.81",
    "C50.91",
    "Z85.3",
)
MALE_ONLY = (
    "N40",
    "N41",
    "N42",
    "N43",
    "N44",
    "N45",
    "N46",
    "N47",
    "N48",
    "N49",
    "N50",
    "N51",
    "N52",
    "N53",
    "C60",
    "C61",
    "C62",
    "C63",
    "E29",
    "D29",
    "Z12.5",
)
PREGNANCY = ("O", "Z34", "Z33.1", "Z3A")
PREGNANCY_AGES = (12, 55)
DIABETES = ("E08", "E09", "E10", "E11", "E13")
OBESITY = ("E66.0", "E66.1", "E66.2", "E66.8", "E66.9")
CKD_EGFR = {
    "N18.1": (90, 150),
    "N18.2": (60, 89.9),
    "N18.3": (30, 59.9),
    "N18.4": (15, 29.9),
    "N18.5": (0, 14.9),
    "N18.6": (0, 14.9),
}


def band_index(age: int) -> int:
    return next(i for i, (lo, hi) in enumerate(AGE_BANDS) if lo <= age <= hi)


def has_prefix(codes, prefixes) -> bool:
    return any(c.startswith(tuple(prefixes)) for c in codes)
