"""The bad-input matrix: every command that reads a data file, against every class of bad input.

Each case must end with exit code 2 (validate: 1 when it could judge the file line by line and found
problems), one line on stderr that names the file and says what to do, no traceback, and nothing
half-written left behind. Property-based tests check the example parser and the config loader on
arbitrary input: a ClinituneError or a value, never another exception.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.config import load_config
from clinitune.data.example import parse
from clinitune.data.jsonio import MAX_DEPTH, MAX_LINE_CHARS, decode
from clinitune.errors import ClinituneError

GOOD = {"instruction": "Give the ICD-10 code for essential hypertension.", "input": "", "output": "I10 is the code."}


def _bad_files(root: Path) -> dict[str, Path]:
    """One file per class of bad input; `huge` is a single 50 MB line."""
    root.mkdir(exist_ok=True)
    files = {
        "empty": b"",
        "garbage": bytes(range(256)) * 16,
        "latin1": (json.dumps({**GOOD, "output": "Résumé: café"}, ensure_ascii=False) + "\n").encode("latin-1"),
        "deep": ("[" * 10_000 + "]" * 10_000 + "\n").encode(),
        "deep_object": ('{"instruction": ' + '{"a": ' * (MAX_DEPTH + 5) + "1" + "}" * (MAX_DEPTH + 5) + "}\n").encode(),
        "odd_input": (json.dumps({**GOOD, "input": ["a", "b"]}) + "\n").encode(),
        "odd_task": (json.dumps({**GOOD, "task": 7}) + "\n").encode(),
        "odd_messages": (json.dumps({"messages": 5}) + "\n").encode(),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = root / f"{name}.jsonl"
        paths[name].write_bytes(data)
    paths["huge"] = root / "huge.jsonl"
    with open(paths["huge"], "w") as f:
        f.write('{"instruction": "Summarize", "output": "ok", "input": "')
        for _ in range(50):
            f.write("word " * 200_000)
        f.write('"}\n')
    paths["directory"] = root / "a_directory.jsonl"
    paths["directory"].mkdir()
    paths["missing"] = root / "missing.jsonl"
    return paths


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return _bad_files(tmp_path_factory.mktemp("bad"))


CLASSES = ["empty", "garbage", "latin1", "deep", "deep_object", "huge", "odd_input", "odd_task", "odd_messages"]
PATH_KINDS = ["directory", "missing"]


def _one_line_error(res, path: Path) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and path.name in lines[0], lines[0]
    return lines[0]


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*")] if root.exists() else []


@pytest.mark.parametrize("kind", CLASSES + PATH_KINDS)
@pytest.mark.parametrize("source", ["jsonl", "json", "csv", "fhir"])
def test_prepare(bad, kind, source, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["prepare", "--source", source, "--path", str(bad[kind]), "--out", str(out), "-q"])
    assert res.exit_code == 2, res.output
    line = _one_line_error(res, bad[kind])
    assert any(w in line for w in ("fix", "re-save", "create", "expected", "flatten", "give", "is this", "check")), line
    assert _leftovers(out) == []


@pytest.mark.parametrize("kind", CLASSES + PATH_KINDS)
def test_validate(bad, kind):
    res = CliRunner().invoke(app, ["validate", str(bad[kind]), "-q"])
    assert "Traceback" not in res.output
    if res.exit_code == 1:  # judged line by line: each finding names the file and line on stdout
        assert f"{bad[kind].name}:1: " in res.stdout
        assert res.exception is None or isinstance(res.exception, SystemExit)
    else:
        assert res.exit_code == 2, res.output
        _one_line_error(res, bad[kind])
    # The same file, the same verdict as prepare: a class prepare refuses is never a clean pass here.
    assert res.exit_code != 0


@pytest.mark.parametrize("kind", CLASSES + PATH_KINDS)
def test_train_eval_infer(bad, kind, tiny_llama, tmp_path):
    """Commands that take a data file next to a model refuse it before any model work."""
    config = tmp_path / "c.yaml"
    run = tmp_path / "run"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(tiny_llama)},
                "data": {"train": str(bad[kind]), "max_seq_length": 64},
                "training": {"output_dir": str(run), "max_steps": 1},
            }
        )
    )
    cases = [
        (["train", "--config", str(config), "-q"], run),
        (["eval", "--data", str(bad[kind]), "--model", str(tiny_llama), "--out", str(tmp_path / "ev"), "-q"], None),
        (["infer", "--file", str(bad[kind]), "--model", str(tiny_llama), "--out", str(tmp_path / "o.jsonl")], None),
    ]
    for args, out in cases:
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, (args[0], res.output)
        _one_line_error(res, bad[kind])
        assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "ev" / "metrics.json").exists()
        if out is not None:
            assert not (out / "adapter").exists() and not list(out.glob("checkpoint-*"))


def test_outputs_that_are_the_wrong_kind_of_path(bad, tiny_llama, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({**GOOD, "output": "I10 is the code for essential hypertension."}) + "\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    cases = [
        ["prepare", "--source", "jsonl", "--path", str(good), "--out", str(a_file)],
        ["eval", "--data", str(good), "--model", str(tiny_llama), "--out", str(a_file)],
        ["infer", "--file", str(good), "--model", str(tiny_llama), "--out", str(a_dir)],
    ]
    for args in cases:
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        line = _one_line_error(res, a_file if a_file.name in res.stderr else a_dir)
        assert "is a file" in line or "is a directory" in line
    assert a_file.read_text() == "keep me" and _leftovers(a_dir) == []


def test_a_db_that_is_not_a_database(bad, tmp_path):
    not_db = tmp_path / "notes.db"
    not_db.write_text("these are notes, not a database\n")
    url = f"sqlite:///{not_db}"
    for args in (
        ["prepare", "--source", "database", "--db", url, "--out", str(tmp_path / "o")],
        ["validate", "--db", url],
        ["synth", "--db", url, "--patients", "2"],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert "not a SQLite database" in _one_line_error(res, not_db)
    assert not_db.read_text() == "these are notes, not a database\n" and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "value, says",
    [
        ("lora.target_modules=[q_proj", "not valid YAML"),
        ("lora.r={a: [}", "not valid YAML"),
        ("lora..r=3", "empty part in the key"),
        ("lora.r", "expected KEY=VALUE"),
        ("lora.r=true", "lora.r"),
        ("training.seed=99999999999", "training.seed"),
    ],
)
def test_malformed_set(value, says, tiny_llama, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"name_or_path": str(tiny_llama)}}))
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--set", value, "--dry-run"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_disk_full_while_saving_leaves_no_half_file(tmp_path, monkeypatch):
    """A write that runs out of space ends in one line, and no partial file or temp file stays behind."""
    import clinitune.paths as paths

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({**GOOD, "output": "I10 is the code for essential hypertension."}) + "\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "the-file")

    monkeypatch.setattr(paths.os, "fsync", full)
    out = tmp_path / "responses.jsonl"
    with pytest.raises(OSError):
        paths.atomic_write_text(out, "x" * 1000)
    assert _leftovers(tmp_path) == ["in.jsonl"]
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: full(None))
    res = CliRunner().invoke(app, ["prepare", "--source", "jsonl", "--path", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "no space left" in res.stderr and "Traceback" not in res.output
    assert _leftovers(tmp_path) == ["in.jsonl"]


def test_gguf_writer_removes_its_temp_file_when_the_disk_fills(tiny_llama, tmp_path, monkeypatch):
    import gguf

    from clinitune.export.gguf_writer import write_gguf

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    with pytest.raises(OSError):
        write_gguf(tiny_llama, tmp_path / "out" / "model.gguf", dtype="f16")
    assert _leftovers(tmp_path / "out") == []


# ------------------------------------------------------------------ limits, pinned


def test_line_and_depth_limits_name_the_fix(tmp_path):
    from clinitune.data.jsonio import json_lines

    f = tmp_path / "x.jsonl"
    ok = json.dumps(GOOD)
    f.write_text(ok + "\n" + '{"a": "' + "x" * (MAX_LINE_CHARS + 10) + '"}\n' + ok + "\n")
    rows = list(json_lines(f))
    assert [n for n, _, _ in rows] == [1, 2, 3]
    assert rows[0][1] == rows[2][1] == GOOD and "longer than" in rows[1][2]
    nested = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert decode(nested)[0] is None and f"limit is {MAX_DEPTH}" in decode(nested)[1]
    assert decode("[" * MAX_DEPTH + "]" * MAX_DEPTH)[1] is None


def test_infer_truncates_on_request_and_refuses_otherwise():
    from clinitune.config import GenerationConfig
    from clinitune.models.chat import fit_prompt

    count = lambda msgs: sum(len(m["content"].split()) for m in msgs) + 3  # noqa: E731
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "word " * 100}]
    with pytest.raises(ClinituneError, match="pass --truncate"):
        fit_prompt(chat, count, GenerationConfig(max_new_tokens=10), 50)
    cut = fit_prompt(chat, count, GenerationConfig(max_new_tokens=10, truncate_prompt=True), 50)
    assert cut[0] == chat[0] and count(cut) + 10 <= 50 and count(cut) + 10 >= 49
    assert chat[1]["content"].startswith(cut[1]["content"])
    assert fit_prompt(chat, count, GenerationConfig(max_new_tokens=10), 500) is chat


def test_phi_screen_takes_any_length(tmp_path):
    from clinitune.data.privacy import phi

    tail = "Call 555-123-4567 about it. Stable."
    text = "Stable. " * 200_000 + tail
    found = phi.screen_texts([text], use_ner=False)[0]
    alone = phi.screen_texts([tail], use_ner=False)[0]
    shift = len(text) - len(tail)
    assert found and {(f.type, f.start - shift, f.end - shift) for f in found} == {
        (f.type, f.start, f.end) for f in alone
    }


# ------------------------------------------------------------------ properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
example_like = st.fixed_dictionaries(
    {},
    optional={
        "instruction": json_values,
        "input": json_values,
        "output": json_values,
        "messages": json_values
        | st.lists(st.fixed_dictionaries({}, optional={"role": json_values, "content": json_values}), max_size=4),
        "prompt": json_values,
        "completion": json_values,
        "text": json_values,
        "task": json_values,
        "id": json_values,
        "group": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(obj=st.one_of(json_values, example_like))
def test_the_parser_accepts_or_explains(obj):
    """Any JSON value is an example or a ClinituneError naming where it came from, never another exception."""
    try:
        ex = parse(obj, "f.jsonl:1")
    except ClinituneError as exc:
        assert str(exc).startswith("f.jsonl:1")
        return
    assert ex.messages and all(isinstance(m.content, str) for m in ex.messages)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(json_values, st.dictionaries(st.sampled_from(["model", "lora", "training", "x"]), json_values)))
def test_the_config_loader_accepts_or_explains(data, tmp_path):
    """Any YAML document is a config or a one-line ClinituneError, never a traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_config(path)
    except ClinituneError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_decode_accepts_or_explains(text):
    value, error = decode(text)
    assert (error is None) or (value is None and isinstance(error, str))
