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


HOLD = (
    "import sys, time\n"
    "from clinitune.paths import exclusive\n"
    "with exclusive(sys.argv[1], 'holding'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def holder(lock_file) -> subprocess.Popen:
    """A real process that holds the lock until killed."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_and_a_killed_holders_lock_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    run.claim()
    other = holder(run.lock_file)
    try:
        with pytest.raises(ClinituneError, match=f"pid {other.pid}"):
            with run.lock():
                pass
    finally:
        other.kill()
        other.wait()
    # The holder is gone (killed) and its file is still there: the kernel released its lock, the next run takes it.
    assert run.lock_file.exists()
    with run.lock():
        assert run.lock_file.read_text() == str(os.getpid())
    assert not run.lock_file.exists()


RACE = (
    "import sys, time\n"
    "from clinitune.errors import ClinituneError\n"
    "from clinitune.paths import exclusive\n"
    "start = float(sys.argv[2])\n"
    "time.sleep(max(0.0, start - time.time()))\n"
    "try:\n"
    "    with exclusive(sys.argv[1], 'racing'):\n"
    "        print('won', flush=True)\n"
    "        time.sleep(5)\n"
    "except ClinituneError:\n"
    "    print('refused', flush=True)\n"
)


def test_processes_racing_for_one_lock_one_wins(tmp_path):
    import time

    for round_ in range(3):
        lock = tmp_path / f".run{round_}.lock"
        if round_ == 2:
            lock.write_text("999999")  # a stale file left by a crash: the racers still elect exactly one
        start = time.time() + 3.0  # after every interpreter has started, so that they ask at the same moment
        procs = [
            subprocess.Popen([sys.executable, "-c", RACE, str(lock), str(start)], stdout=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        assert results == ["refused", "refused", "refused", "won"], (round_, results)


def test_a_second_prepare_into_the_same_out_is_refused(tmp_path):
    from clinitune.data.prepare import prepare

    out = tmp_path / "data"
    other = holder(tmp_path / ".data.lock")
    try:
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
