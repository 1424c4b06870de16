"""A run directory is clinitune's own: a user's directory is never trained into, and one run writes at a time."""

import os
import subprocess
import sys

import pytest

from clinitune.errors import ClinituneError
from clinitune.layout import RunDir


def test_an_existing_directory_that_is_not_a_run_is_refused_untouched(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "adapter").mkdir(parents=True)
    files = {"README.md": "mine", "config.yaml": "mine: true", "adapter/notes.txt": "keep"}
    for name, text in files.items():
        (project / name).write_text(text)
    with pytest.raises(ClinituneError, match="not a clinitune run"):
        RunDir(project).claim()
    monkeypatch.chdir(project)
    with pytest.raises(ClinituneError, match="not a clinitune run"):
        RunDir("").claim()  # training.output_dir: "" is the working directory
    assert {n: (project / n).read_text() for n in files} == files and not (project / ".clinitune-run").exists()


def test_new_empty_and_existing_runs_are_claimed(tmp_path):
    RunDir(tmp_path / "new").claim()
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty").claim()
    RunDir(tmp_path / "new").claim()  # its own run again (resume)
    legacy = tmp_path / "legacy"
    (legacy / "checkpoint-100").mkdir(parents=True)  # a run from before the marker
    RunDir(legacy).claim()
    assert all((tmp_path / d / ".clinitune-run").is_file() for d in ("new", "empty", "legacy"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ClinituneError, match="is a file"):
        RunDir(tmp_path / "file").claim()


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    run.claim()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.lock_file.write_text(str(other.pid))
        with pytest.raises(ClinituneError, match=f"pid {other.pid}"):
            with run.lock():
                pass
    finally:
        other.kill()
        other.wait()
    # The holder is gone (killed): its lock is stale and the next run takes it.
    with run.lock():
        assert run.lock_file.read_text() == str(os.getpid())
    assert not run.lock_file.exists()


def test_a_second_prepare_into_the_same_out_is_refused(tmp_path):
    from clinitune.data.prepare import prepare

    out = tmp_path / "data"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".data.lock").write_text(str(other.pid))
        with pytest.raises(ClinituneError, match=f"pid {other.pid}"):
            prepare(source="jsonl", db=None, path=tmp_path / "x.jsonl", out=out, tasks=["knowledge"], seed=1)
    finally:
        other.kill()
        other.wait()
    assert not out.exists()


def test_a_data_file_its_manifest_does_not_match_is_refused(tmp_path):
    import hashlib
    import json

    from clinitune.data.manifest import phi_gate

    line = json.dumps({"instruction": "What does ICD-10-CM code I10 describe?", "output": "Essential hypertension."})
    train = tmp_path / "train.jsonl"
    train.write_text(line + "\n")
    sha = hashlib.sha256(train.read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {"train.jsonl": {"sha256": sha}}}))
    assert phi_gate(train, allow_phi=False).status == "manifest"
    train.write_text(line + "\n" + line.replace("I10", "E11.9") + "\n")  # a newer train.jsonl beside the old manifest
    with pytest.raises(ClinituneError, match="mixes two datasets"):
        phi_gate(train, allow_phi=False)


def test_export_of_no_run_or_a_run_without_weights_writes_nothing(tmp_path):
    import json

    from clinitune.export.run import export

    with pytest.raises(ClinituneError, match="not a finished training run"):
        export(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    run = tmp_path / "run"
    run.mkdir()
    summary = {"run_dir": str(run), "output": str(run / "adapter"), "base_model": "x", "method": "lora"}
    (run / "train_summary.json").write_text(json.dumps(summary))
    with pytest.raises(ClinituneError, match="weights .* are missing"):
        export(run)
    assert not (run / "export").exists()


def test_validate_and_prepare_refuse_an_empty_file(tmp_path):
    from typer.testing import CliRunner

    from clinitune.cli import app

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = CliRunner().invoke(app, ["validate", str(empty)])
    assert res.exit_code == 2 and "no examples" in res.output
    res = CliRunner().invoke(app, ["prepare", "--source", "jsonl", "--path", str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nothing to prepare" in res.output and not (tmp_path / "o").exists()
