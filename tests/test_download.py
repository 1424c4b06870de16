import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.errors import ClinituneError
from clinitune.export.gguf_writer import write_gguf
from clinitune.models.loading import load_causal_lm, load_tokenizer
from clinitune.models.registry import resolve_model

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_local_dir_is_used_in_place_and_copied_with_out(tiny_llama, tmp_path):
    assert resolve_model(str(tiny_llama)) == tiny_llama.resolve()
    out = resolve_model(str(tiny_llama), out=tmp_path / "copy")
    model = load_causal_lm(out)
    assert model.config.model_type == "llama"
    original = load_causal_lm(tiny_llama).state_dict()
    copied = model.state_dict()
    assert original.keys() == copied.keys() and all(torch.equal(original[k], copied[k]) for k in original)


def test_cli_download_prints_dir_last(tiny_llama):
    res = runner.invoke(app, ["download", str(tiny_llama), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(tiny_llama.resolve())


def test_pickle_weights_refused_unless_allowed(tiny_llama, tmp_path):
    import shutil

    from safetensors.torch import load_file

    d = tmp_path / "pickled"
    shutil.copytree(tiny_llama, d)
    state = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save(state, d / "pytorch_model.bin")
    with pytest.raises(ClinituneError, match="pickle"):
        resolve_model(str(d))
    assert resolve_model(str(d), allow_pickle=True) == d.resolve()


def test_not_a_model_dir_and_unknown_spec(tmp_path):
    with pytest.raises(ClinituneError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ClinituneError, match="not a local path"):
        resolve_model("no such model")


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "clinitune.cli", "download", "stabilityai/stablelm-2-1_6b"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert res.returncode == 2
    assert "stabilityai/stablelm-2-1_6b" in res.stderr and "local directory" in res.stderr
    assert "Traceback" not in res.stderr
    assert time.perf_counter() - t < 60


def test_gguf_import_round_trips_weights_and_tokenizer(tiny_llama, tmp_path):
    gguf_path = write_gguf(tiny_llama, tmp_path / "tiny.gguf")
    out = resolve_model(str(gguf_path))
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg
    src, imported = load_causal_lm(tiny_llama), load_causal_lm(out)
    a, b = src.state_dict(), imported.state_dict()
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)  # includes the Q/K un-permutation
    tok_a, tok_b = load_tokenizer(tiny_llama), load_tokenizer(out)
    text = "Essential hypertension I10 in a 65-year-old male."
    assert tok_a(text).input_ids == tok_b(text).input_ids
    assert tok_b.eos_token == "<|im_end|>"
    # A second call is a cache hit: same dir, not rewritten.
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(str(gguf_path)) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_imported_model_trains_and_saves(tiny_llama, tmp_path):
    out = resolve_model(str(write_gguf(tiny_llama, tmp_path / "t.gguf")))
    model = load_causal_lm(out)
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grad = model.model.layers[0].self_attn.q_proj.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    # the imported weights are the GGUF's own, to its f32 precision
    source = load_causal_lm(tiny_llama).state_dict()
    imported = model.state_dict()
    assert all(torch.allclose(source[k], imported[k], atol=1e-6) for k in source if k in imported)
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("script", "command"),
    [
        ("download_model", "download"),
        ("prepare_data", "prepare"),
        ("train", "train"),
        ("inference", "infer"),
        ("export_model", "export"),
    ],
)
def test_spec_scripts_are_their_commands(script, command):
    """Each Quick Reference script is the clinitune command it names: the same options, the same help."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr
    own = CliRunner().invoke(app, [command, "--help"], terminal_width=200, env={"COLUMNS": "200"})
    options = lambda text: set(re.findall(r"--[a-z][a-z-]+", text))  # noqa: E731
    assert f"scripts/{script}.py" in res.stdout
    assert options(res.stdout) == options(own.output) and len(options(own.output)) >= 3
