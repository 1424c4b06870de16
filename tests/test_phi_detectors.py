"""The PHI screen's parts: detectors behind one protocol, the learned model as shipped, redaction that does no
harm, and the training generator's spans. Checks look at spans and values, not at which types appear."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from clinitune.data.privacy import detectors, keys, phi, phi_model, phi_synth, phi_vocab, surrogates
from clinitune.data.privacy.spans import Finding
from clinitune.errors import ClinituneError

KEY = keys.DataKey(b"t" * 32, kept=True)


def redacted(text: str) -> str:
    return phi.deidentify(text, key=KEY)


def test_learned_model_is_pinned_and_within_budget():
    manifest = json.loads((phi_model.MODEL_DIR / phi_model.MANIFEST).read_text())
    assert hashlib.sha256((phi_model.MODEL_DIR / phi_model.MANIFEST).read_bytes()).hexdigest() == phi_model.MODEL_SHA256
    size = sum((phi_model.MODEL_DIR / f).stat().st_size for f in manifest["files"])
    assert size == manifest["bytes"] <= phi_model.SIZE_BUDGET_BYTES
    card = (phi_model.MODEL_DIR / "CARD.md").read_text()
    assert "synthetic" in card and str(manifest["recipe"]["train_notes"]) in card


def test_a_tampered_model_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "phi_model"
    shutil.copytree(phi_model.MODEL_DIR, copy)
    weights = next(p for p in sorted(copy.rglob("model")) if p.is_file())
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(phi_model, "MODEL_DIR", copy)
    phi_model.load.cache_clear()
    try:
        with pytest.raises(ClinituneError, match="does not match its sha256"):
            phi_model.load()
    finally:
        phi_model.load.cache_clear()


def test_learned_detector_finds_identifiers_no_list_holds():
    text = "Pt Oluwaseun Adebayo-Whitfield, passport no. K4471902, lives in Tahlequah near the river."
    found = phi_model.LearnedDetector().detect([text])[0]
    spans = {text[f.start : f.end] for f in found}
    assert any("Adebayo-Whitfield" in s for s in spans)
    assert any("Tahlequah" in s for s in spans)


def test_a_new_detector_is_one_class_and_one_registry_line(monkeypatch):
    class Codeword:
        name = "codeword"

        def version(self) -> str:
            return "1"

        def detect(self, texts):
            return [
                [Finding("OTHER_ID", t.find("ZEBRA-7"), t.find("ZEBRA-7") + 7, 0.9)] if "ZEBRA-7" in t else []
                for t in texts
            ]

    monkeypatch.setitem(detectors.REGISTRY, "codeword", Codeword)
    phi._detectors.cache_clear()
    try:
        text = "Enrolled under ZEBRA-7 today."
        assert [text[f.start : f.end] for f in phi.screen(text)] == ["ZEBRA-7"]
        assert phi.describe()["detectors"]["codeword"] == "1"
    finally:
        phi._detectors.cache_clear()


@pytest.mark.parametrize(
    "text",
    [
        "Warfarin 7.5 mg on Mondays and Fridays, 5 mg other days.",
        "Keppra 500 mg BID. Eliquis resumed after the procedure.",
        "Ottawa ankle rules negative; Lachman and McMurray tests normal.",
        "Lisinopril was held. Dialysis Tue/Thu/Sat continues.",
        "Tdap and Shingrix given; PPSV23 due next year.",
        "Apixaban started for Wells score 4; Homans sign absent.",
        "Rybelsus was switched to Mounjaro because of cost.",
    ],
)
def test_clinical_text_comes_through_unchanged(text):
    assert redacted(text) == text


def test_a_street_line_goes_whole_and_surrogates_keep_no_distinctive_word():
    text = "Lives at 4417 Old Kettle Rd, Fresno, CA 93726 with her son."
    out = redacted(text)
    for word in ("4417", "Kettle", "Fresno", "93726"):
        assert word not in out, out
    assert out.endswith("with her son.")


def test_mask_writes_the_kind_of_each_identifier():
    text = "Seen by Dr. Amara Okonkwo on 03/14/2024, MRN 5583920."
    out = phi.deidentify(text, key=None, mask=True)
    assert "Okonkwo" not in out and "03/14/2024" not in out and "5583920" not in out
    assert "[NAME]" in out and "[DATE]" in out


def test_drug_dictionary_is_read_as_data_only():
    assert {"apixaban", "eliquis", "metoprolol"} <= phi_vocab.drug_words()
    assert phi_vocab.is_clinical_word("Mondays") and not phi_vocab.is_clinical_word("Okonkwo")


def test_generator_spans_are_the_planted_values():
    for note in phi_synth.notes(60, seed=3):
        last = 0
        for start, end, label in note.spans:
            assert label in phi_synth.LABELS
            assert start >= last and end > start and note.text[start:end].strip() == note.text[start:end]
            last = end


def test_surrogate_names_never_come_from_clinical_words():
    fake = surrogates.surrogate("NAME", "Maria Lopez", KEY, "g")
    assert fake != "Maria Lopez" and not any(phi_vocab.is_clinical_word(w) for w in fake.split())


def test_safe_harbor_age_category_is_not_an_identifier_however_the_model_spans_it():
    for text in ("a sample record for a male aged 90+ with atrial fibrillation", "a woman aged 90 or older with CHF"):
        assert not [f for f in phi.screen(text) if f.type == "AGE_OVER_89"], text
    assert "AGE_OVER_89" in phi.types_of(phi.screen("She is aged 93 and lives alone."))
