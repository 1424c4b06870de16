"""The PHI screen's learned detector: a small spaCy NER the project trains itself and ships in the package.

Trained from scratch on synthetic notes (phi_synth; `make phi-model`), so nothing downloads at run time. The
model directory carries a card (CARD.md: recipe, data sizes, scores) and manifest.json with each file's
sha256; the manifest's own sha256 is pinned below, so a model that differs from the one reviewed is refused
instead of screening data. Six labels; `finding_type` turns them into the screen's Safe Harbor types.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
from pathlib import Path

from ...errors import ClinituneError
from .spans import Finding

MODEL_DIR = Path(__file__).resolve().parents[2] / "resources" / "phi_model"
MANIFEST = "manifest.json"
MODEL_SHA256 = "d0b947286347a1121b797d4f50e4bbd8342abb270a68389592c5bf4c74bc2b00"
SIZE_BUDGET_BYTES = 12 * 2**20
VERSION = "1"
IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (MANIFEST, "CARD.md"))


def write_model(src: Path, out: Path, recipe: dict) -> str:
    """Copy a trained spaCy directory to `out` with its manifest and card; returns the manifest's sha256."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    files = {str(p.relative_to(out)): _sha256(p) for p in _model_files(out)}
    size = sum(p.stat().st_size for p in _model_files(out))
    manifest = {"version": VERSION, "files": files, "bytes": size, "recipe": recipe}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "CARD.md").write_text(card(manifest))
    return _sha256(out / MANIFEST)


def card(manifest: dict) -> str:
    rec = manifest["recipe"]
    last = next(h for h in rec["history"] if h["epoch"] == rec["best_epoch"])
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in sorted(last["per_type"].items()))
    return f"""# clinitune PHI detector, version {manifest["version"]}

A spaCy {rec["spacy"]} NER trained from scratch (no pretrained vectors, no downloaded weights) to find the
identifiers of HIPAA Safe Harbor in clinical free text. One of the PHI screen's detectors: the screen takes the
union of its spans with Presidio's validated recognizers, clinitune's patterns and the name rules.

- Labels: {", ".join(rec["labels"])}
- Training data: {rec["train_notes"]} synthetic notes ({rec["train_spans"]} identifier spans) from
  `clinitune.data.privacy.phi_synth`, seed {rec["args"]["seed"]}; dev: {rec["dev_notes"]} notes
  ({rec["dev_spans"]} spans) from another seed.
- Recipe: `{rec["script"]}` ({rec["args"]["epochs"]} epochs, best epoch {rec["best_epoch"]}, {rec["train_minutes"]}
  minutes on one CPU core); architecture in manifest.json.
- Size: {manifest["bytes"] / 2**20:.1f} MiB; each file's sha256 in manifest.json.

## Scores on the synthetic dev split (best epoch)
Precision {last["p"]:.3f}, recall {last["r"]:.3f}, F {last["f"]:.3f}. Recall per label:

| label | recall |
|---|---|
{rows}

These are scores on text from the same generator; the screen's evidence on text its authors never wrote is
in docs/data-and-phi.md (bench/phi_heldout.py).
"""


@functools.lru_cache(maxsize=1)
def load():
    """The verified model: every file's sha256 as the manifest says, and the manifest as pinned."""
    manifest = MODEL_DIR / MANIFEST
    if not manifest.exists():
        raise ClinituneError(f"the PHI model is missing ({MODEL_DIR}); reinstall clinitune or run make phi-model")
    if _sha256(manifest) != MODEL_SHA256:
        raise ClinituneError(f"the PHI model's manifest ({manifest}) is not the pinned one; reinstall clinitune")
    listed = json.loads(manifest.read_text())["files"]
    for rel, digest in listed.items():
        if _sha256(MODEL_DIR / rel) != digest:
            raise ClinituneError(f"the PHI model file {rel} does not match its sha256; reinstall clinitune")
    import spacy  # here: spaCy costs a second at import, paid only when a screen runs

    return spacy.load(MODEL_DIR)


def finding_type(label: str, span: str) -> str | None:
    """The screen's type for a learned span, or None for a contact that has no contact's shape ("6/10")."""
    if label == "AGE":
        return "AGE_OVER_89"
    if label == "ID":
        return "OTHER_ID"
    if label == "CONTACT":
        if "@" in span:
            return "EMAIL"
        if re.search(r"(?i)https?://|www\.|\w\.(?:com|org|net|edu|gov|io|me|us|co)\b", span):
            return "URL"
        if IPV4.match(span) or span.count(":") >= 4:
            return "IP"
        return "PHONE" if len(re.sub(r"\D", "", span)) >= 7 else None
    return label


def describe() -> str:
    return f"clinitune-phi {VERSION} ({MODEL_SHA256[:12]})"


class LearnedDetector:
    """The shipped model's spans, typed for the screen."""

    name = "learned"

    def version(self) -> str:
        return describe()

    def detect(self, texts: list[str]) -> list[list[Finding]]:
        nlp = load()
        out = []
        for text, doc in zip(texts, nlp.pipe(texts, batch_size=128)):
            typed = [(finding_type(e.label_, e.text), e) for e in doc.ents]
            out.append([Finding(t, e.start_char, e.end_char, 0.8) for t, e in typed if t])
        return out
