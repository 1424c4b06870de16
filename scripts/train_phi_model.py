"""Train the PHI screen's learned detector: a spaCy NER from scratch on synthetic notes (`make phi-model`).

    python scripts/train_phi_model.py [--docs 12000] [--epochs 6] [--seed 13] [--out src/clinitune/resources/phi_model]

The notes come from clinitune.data.privacy.phi_synth (many genres, voices and cultures, every Safe Harbor
kind, hard negatives from the drug-name package). A tenth of them, from another seed, is the synthetic
dev split scored after each epoch; the best epoch is kept. The model is written with its card (recipe, data
sizes, scores) and a manifest of sha256 per file that the screen checks before it loads the model.
Single-threaded by design: spaCy's CPU training uses one core, and the machine has two.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import spacy
from spacy.training import Example
from spacy.util import filter_spans, minibatch

from clinitune.data.privacy import phi_model, phi_synth

MODEL_CONFIG = {
    "@architectures": "spacy.TransitionBasedParser.v2",
    "state_type": "ner",
    "extra_state_tokens": False,
    "hidden_width": 64,
    "maxout_pieces": 2,
    "use_upper": True,
    "tok2vec": {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "pretrained_vectors": None,
        "width": 96,
        "depth": 4,
        "embed_size": 4000,
        "window_size": 1,
        "maxout_pieces": 3,
        "subword_features": True,
    },
}


def to_examples(nlp, notes) -> list[Example]:
    out = []
    for note in notes:
        ref = nlp.make_doc(note.text)
        spans = [ref.char_span(s, e, label=lab, alignment_mode="expand") for s, e, lab in note.spans]
        ref.ents = filter_spans([sp for sp in spans if sp is not None])
        out.append(Example(nlp.make_doc(note.text), ref))
    return out


def pin(digest: str) -> None:
    """The screen loads only the model whose manifest it pins: a new model is pinned in the same step."""
    src = Path(phi_model.__file__)
    text = re.sub(r'^MODEL_SHA256 = ".*"$', f'MODEL_SHA256 = "{digest}"', src.read_text(), count=1, flags=re.M)
    src.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=phi_model.MODEL_DIR)
    args = ap.parse_args()
    spacy.util.fix_random_seed(args.seed)
    t0 = time.time()
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner", config={"model": MODEL_CONFIG})
    for label in phi_synth.LABELS:
        ner.add_label(label)
    train = to_examples(nlp, phi_synth.notes(args.docs, args.seed))
    dev_notes = phi_synth.notes(max(args.docs // 10, 200), args.seed + 1000)
    dev = to_examples(nlp, dev_notes)
    print(f"generated {len(train)} train / {len(dev)} dev notes in {time.time() - t0:.0f}s", flush=True)
    optimizer = nlp.initialize(lambda: train[:1000])
    rng = random.Random(args.seed)
    best, best_dir, history = -1.0, Path(tempfile.mkdtemp()), []
    for epoch in range(args.epochs):
        rng.shuffle(train)
        losses: dict = {}
        t1 = time.time()
        for batch in minibatch(train, size=args.batch):
            nlp.update(batch, drop=0.15, sgd=optimizer, losses=losses)
        with nlp.use_params(optimizer.averages):
            scores = nlp.evaluate(dev)
            row = {
                "epoch": epoch + 1,
                "loss": round(float(losses.get("ner", 0.0)), 1),
                "p": round(float(scores["ents_p"]), 4),
                "r": round(float(scores["ents_r"]), 4),
                "f": round(float(scores["ents_f"]), 4),
                "per_type": {k: round(float(v["r"]), 4) for k, v in (scores.get("ents_per_type") or {}).items()},
                "seconds": round(time.time() - t1),
            }
            history.append(row)
            print(json.dumps(row), flush=True)
            if scores["ents_f"] > best:
                best = scores["ents_f"]
                shutil.rmtree(best_dir, ignore_errors=True)
                nlp.to_disk(best_dir)
    best_row = max(history, key=lambda h: h["f"])
    digest = phi_model.write_model(
        best_dir,
        args.out,
        recipe={
            "script": "scripts/train_phi_model.py",
            "args": {k: str(v) for k, v in vars(args).items()},
            "spacy": spacy.__version__,
            "architecture": MODEL_CONFIG,
            "labels": list(phi_synth.LABELS),
            "train_notes": len(train),
            "train_spans": sum(len(e.reference.ents) for e in train),
            "dev_notes": len(dev),
            "dev_spans": sum(len(e.reference.ents) for e in dev),
            "history": history,
            "best_epoch": best_row["epoch"],
            "train_minutes": round((time.time() - t0) / 60, 1),
        },
    )
    shutil.rmtree(best_dir, ignore_errors=True)
    if args.out.resolve() == phi_model.MODEL_DIR:
        pin(digest)
    print(f"wrote {args.out} (best epoch {best_row['epoch']}, synthetic dev F {best_row['f']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
