"""The PHI screen against text its authors never wrote: the held-out notes through the real `prepare`, and
deidgate's outside corpus through its own oracle.

The notes (tests/data/phi_heldout/) were written by helpers who read none of clinitune's code; dev/ is the set
the screen was tuned against, final/ the one scored for the claim (docs/data-and-phi.md). Each planted value is
searched for in every split prepare writes, eval.jsonl included: a test that re-screened the output with the
same screen would pass whatever the screen missed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from deidgate import check_sample

from clinitune.data.privacy import keys, phi

ROOT = Path(__file__).parent / "data" / "phi_heldout"
sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
import phi_heldout  # noqa: E402  (bench/ is not a package; its scorer is the one the README's numbers come from)

# Safe Harbor folds every age over 89 into one category: "a 94-year-old" becomes "a 90+-year-old", which Safe Harbor
# allows. deidgate's token check still sees "year" and "old" survive and calls it a leak; that one case, and no
# other, is expected (docs/data-and-phi.md).
SAFE_HARBOR_AGE = ("date", "94-year-old")


def deidgate_scrub(text: str) -> str:
    return phi.deidentify(text, key=keys.DataKey(b"deidgate".ljust(32), kept=True))


def test_deidgate_corpus_leaks_nothing(deid_sample):
    leaks = [lk for lk in check_sample(deidgate_scrub, deid_sample) if not lk.warning]
    found = [(lk.cat.value, lk.value) for lk in leaks]
    if found == [SAFE_HARBOR_AGE]:
        assert "90+-year-old" in deidgate_scrub(deid_sample["text"])  # the category Safe Harbor allows
        return
    assert not found


@pytest.fixture(scope="module")
def dev_through_prepare(tmp_path_factory):
    notes = phi_heldout.load(sorted((ROOT / "dev").glob("*.jsonl")))
    got, _ = phi_heldout.run_prepare(notes, "redact", tmp_path_factory.mktemp("heldout"))
    return notes, got


def test_every_note_reaches_a_split(dev_through_prepare):
    notes, got = dev_through_prepare
    assert set(got) == {n["id"] for n in notes}


def test_planted_identifiers_are_gone_from_every_split(dev_through_prepare):
    notes, got = dev_through_prepare
    s = phi_heldout.score(notes, got)
    planted = sum(s["per_kind"].values())
    assert planted >= 300
    # A regression floor a little under the dev set's measured 0.969 (308 of 318), not the goal of 0.99: a change
    # that loses recall fails. The claim is measured on the fresh sets (docs/data-and-phi.md).
    assert 1 - sum(s["leaks"].values()) / planted >= 0.96, s["misses"][:20]


def test_clean_notes_come_through_unchanged(dev_through_prepare):
    notes, got = dev_through_prepare
    s = phi_heldout.score(notes, got)
    assert s["clean"] >= 40
    assert len(s["changed"]) <= 4, [c[0] for c in s["changed"]]  # measured 3 of 40; the goal is 2 % (not met)


def test_mask_leaves_typed_placeholders(tmp_path):
    notes = [
        {
            "id": "m1",
            "text": "Pt Chidi Okafor (DOB 4/2/1951) seen with daughter Ngozi; lives in Tahlequah. Keppra 500 mg BID.",
            "phi": [],
        }
    ]
    got, _ = phi_heldout.run_prepare(notes, "mask", tmp_path)
    out = got["m1"]
    for value in ("Chidi", "Okafor", "4/2/1951", "Ngozi", "Tahlequah"):
        assert value not in out
    assert "[NAME]" in out and "[DATE]" in out and "Keppra 500 mg BID." in out


def test_sets_follow_their_spec():
    for path in sorted(ROOT.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for item in row.get("phi", []):
                assert item["value"] in row["text"], (path.name, row["id"])


def test_report_is_a_table_per_kind_with_intervals(dev_through_prepare):
    notes, got = dev_through_prepare
    text = phi_heldout.table(phi_heldout.score(notes, got))
    assert "| NAME |" in text and "| **all** |" in text and "Clean notes changed" in text
