"""The data set's secret key (issue 35, item 2): pseudonyms, surrogates, date shifts and groups derive from a key the
user keeps, never from the seed, and the key is in no file prepare writes."""

import hashlib
import json
import os
import stat

import pytest
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.example import group_of
from clinitune.data.prepare import prepare
from clinitune.data.privacy import keys, surrogates
from clinitune.data.privacy.deid import deidentify, pseudonym
from clinitune.data.records.patient import Patient
from clinitune.errors import ClinituneError

NOTE = "Ms. Maria Lopez (MRN 5583920) was seen on 03/14/2024 with chest pain."


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def notes(tmp_path):
    rows = [
        {"patient_id": str(i), "instruction": "Summarize this clinical note.", "input": NOTE, "output": "Chest pain."}
        for i in range(1, 13)
    ]
    return _write(tmp_path / "notes.jsonl", rows)


def _run(src, out, key, action="redact"):
    return prepare(
        source="jsonl", db=None, path=src, out=out, tasks=["knowledge"], seed=1, progress=False,
        phi_action=action, group_by="patient_id", key=key,
    )  # fmt: skip


def _rows(d):
    return [json.loads(x) for s in ("train", "eval", "test") for x in (d / f"{s}.jsonl").read_text().splitlines()]


def _all_bytes(d):
    return b"".join(p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file())


def test_key_file_is_created_private_and_read_back(tmp_path):
    path = tmp_path / "k"
    a = keys.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    b = keys.load_or_create(path)
    assert a.secret == b.secret and len(a.secret) == keys.KEY_BYTES and a.kept
    assert keys.load_or_create(tmp_path / "other").secret != a.secret  # from the CSPRNG, not from a seed


def test_world_readable_key_file_is_refused(tmp_path):
    path = tmp_path / "k"
    keys.load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(ClinituneError, match="chmod 600"):
        keys.load_or_create(path)


def test_key_file_inside_the_data_set_is_refused(tmp_path, notes):
    out = tmp_path / "data"
    res = CliRunner().invoke(
        app, ["prepare", "--source", "jsonl", "--path", str(notes), "--out", str(out), "--key-file", str(out / "k")]
    )
    assert res.exit_code != 0 and "next to the data it protects" in res.output
    assert not (out / "k").exists()


def test_a_key_file_that_is_not_a_key_is_refused(tmp_path):
    path = tmp_path / "k"
    path.write_text("hunter2\n")
    os.chmod(path, 0o600)
    with pytest.raises(ClinituneError, match="hex digits"):
        keys.load_or_create(path)


def test_same_source_id_gets_different_pseudonyms_under_two_keys():
    k1, k2 = keys.DataKey(b"1" * 32, kept=True), keys.DataKey(b"2" * 32, kept=True)
    assert pseudonym(7, k1) != pseudonym(7, k2)
    assert pseudonym(7, k1) == pseudonym(7, k1)
    # The old salt was the seed: anyone could enumerate ids 1..N and match. Under a key, no seed reproduces it.
    p = Patient(id=7, sex="F")
    assert all(deidentify(p, k1)["patient_id"] != pseudonym(7, keys.DataKey(f"clinitune:{s}".encode(), True))
               for s in range(100))  # fmt: skip


def test_surrogates_and_date_shift_depend_on_the_key():
    k1, k2 = keys.DataKey(b"1" * 32, kept=True), keys.DataKey(b"2" * 32, kept=True)
    assert surrogates.date_offset(k1, "g") != surrogates.date_offset(k2, "g") or surrogates.surrogate(
        "NAME", "Maria Lopez", k1, "g"
    ) != surrogates.surrogate("NAME", "Maria Lopez", k2, "g")
    offsets = {surrogates.date_offset(keys.DataKey(bytes([i]) * 32, True), "g") for i in range(20)}
    assert len(offsets) > 10


def test_prepare_under_two_keys_differs_and_the_key_is_in_no_output(tmp_path, notes):
    k1 = keys.load_or_create(tmp_path / "k1")
    k2 = keys.load_or_create(tmp_path / "k2")
    m1 = _run(notes, tmp_path / "a", k1)
    _run(notes, tmp_path / "b", k2)
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert {e["group"] for e in a}.isdisjoint({e["group"] for e in b})
    assert {e["input"] for e in a} != {e["input"] for e in b}  # surrogates differ
    # A group is not the public hash of the patient id that anyone could compute.
    public = {group_of(str(i)) for i in range(1, 13)}
    public |= {"g:" + hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(13)}
    assert not {e["group"] for e in a} & public
    blob = _all_bytes(tmp_path / "a")
    for secret in (k1.secret, k1.secret.hex().encode(), k1.secret.hex().upper().encode()):
        assert secret not in blob
    assert m1.key["kept_by_user"] and m1.key["key_id"] == k1.key_id


def test_same_key_file_reproduces_the_data_set(tmp_path, notes):
    k = keys.load_or_create(tmp_path / "k")
    _run(notes, tmp_path / "a", k)
    _run(notes, tmp_path / "b", keys.load_or_create(tmp_path / "k"))
    for name in ("train.jsonl", "eval.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_without_a_key_file_the_manifest_says_a_rerun_differs(tmp_path, notes):
    res = CliRunner().invoke(
        app,
        ["prepare", "--source", "jsonl", "--path", str(notes), "--out", str(tmp_path / "a"),
         "--group-by", "patient_id", "--tasks", "knowledge", "--phi-action", "redact", "-q"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "one-time" in res.output
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["key"]["kept_by_user"] is False and "no" in m["key"]["reproducible"]
    m2 = _run(notes, tmp_path / "b", None)
    assert m2.key["kept_by_user"] is False
    first = (tmp_path / "a" / "train.jsonl").read_text() + (tmp_path / "a" / "test.jsonl").read_text()
    again = (tmp_path / "b" / "train.jsonl").read_text() + (tmp_path / "b" / "test.jsonl").read_text()
    assert first != again
