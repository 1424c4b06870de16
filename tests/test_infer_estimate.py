"""`clinitune infer` and `clinitune estimate` on tiny models: real generation, real counts."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.config import load_config
from clinitune.errors import ClinituneError
from clinitune.models.adapt import apply_method, load_for_training
from clinitune.models.adapt import plan as make_plan
from clinitune.models.generate import eos_ids, load_for_inference
from clinitune.train.estimate import Estimate, estimate, format_estimate, refuse_if_too_big

PROMPTS = ["Code essential hypertension.", "Code type 2 diabetes.", "List the ICD-10 chapter for asthma."]


def _greedy_reference(model_dir, prompts: list[str], n: int) -> list[str]:
    """What transformers' own greedy generate says for each prompt, for comparison with infer's answers."""
    model, tok, _ = load_for_inference(None, str(model_dir), None)
    out = []
    for prompt in prompts:
        enc = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        ids = model.generate(
            **enc,
            max_new_tokens=n,
            do_sample=False,
            repetition_penalty=1.0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=eos_ids(tok),
        )
        out.append(tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return out


def _gen_config(tmp_path, n: int = 6):
    path = tmp_path / "gen.yaml"
    path.write_text(
        yaml.safe_dump({"generation": {"temperature": 0.0, "max_new_tokens": n, "repetition_penalty": 1.0}})
    )
    return path


def test_infer_file_answers_every_prompt_in_order(tmp_path, tiny_llama):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "ref": i}) + "\n" for i, p in enumerate(PROMPTS)))
    out = tmp_path / "answers.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "infer",
            "--model",
            str(tiny_llama),
            "--file",
            str(prompts),
            "--out",
            str(out),
            "--config",
            str(_gen_config(tmp_path)),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["ref"] for r in rows] == [0, 1, 2]  # the input line is kept, in order, with its answer added
    # Greedy answers are transformers' own greedy answers: the runtime layer renders the same chat template.
    assert [r["response"] for r in rows] == _greedy_reference(tiny_llama, PROMPTS, 6)


def test_infer_refuses_a_prompt_with_phi_before_loading_a_model(tmp_path):
    missing_model = tmp_path / "no-such-model"
    res = CliRunner().invoke(
        app, ["infer", "--model", str(missing_model), "--prompt", "Summarize the chart of John Smith, SSN 123-45-6789."]
    )
    assert res.exit_code == 2
    assert "PHI screen found" in res.output and "--allow-phi" in res.output
    assert "no-such-model" not in res.output  # refused before any model was looked for


def test_infer_needs_exactly_one_input(tmp_path, tiny_llama):
    res = CliRunner().invoke(app, ["infer", "--model", str(tiny_llama)])
    assert res.exit_code == 2 and "exactly one of --prompt" in res.output


def _cfg(tmp_path, model_dir, **lora):
    rows = [
        {"instruction": f"What ICD-10 code represents condition {i}?", "output": f"Code {i} is I10."} for i in range(20)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 8, **lora},
        "data": {"train": str(train), "max_seq_length": 64},
        "training": {"per_device_train_batch_size": 2, "precision": "fp32", "output_dir": str(tmp_path / "run")},
    }
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in _flatten(data).items()])


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("method", ["lora", "full"])
def test_estimate_counts_the_parameters_training_will_train(tmp_path, tiny_llama, method):
    cfg = _cfg(tmp_path, tiny_llama, method=method)
    e = estimate(cfg)
    p = make_plan(cfg)
    model = apply_method(cfg, load_for_training(cfg, tiny_llama, p), p)
    assert e.params == sum(x.numel() for x in load_for_training(cfg, tiny_llama, p).parameters())
    assert e.trainable_params == sum(x.numel() for x in model.parameters() if x.requires_grad)
    # Gradients and AdamW's two moments are fp32 copies of exactly the trainable weights.
    assert e.memory_mb["adamw_states"] == round(e.trainable_params * 8 / 2**20)
    assert e.predicted_peak_mb == sum(e.memory_mb.values())


def test_estimate_tracks_batch_size_and_checkpointing(tmp_path, tiny_llama):
    base = _cfg(tmp_path, tiny_llama)
    base.data.max_seq_length = 1024  # long rows: activations in whole megabytes even for a tiny model
    base.training.gradient_checkpointing = False
    small = estimate(base).memory_mb["activations"]
    base.training.per_device_train_batch_size = 8
    big = estimate(base).memory_mb["activations"]
    base.training.gradient_checkpointing = True
    ckpt = estimate(base).memory_mb["activations"]
    assert big > small and ckpt < big


def test_estimate_counts_the_tokens_of_the_training_file(tmp_path, tiny_llama):
    from clinitune.data.example import load
    from clinitune.data.tokenize import tokenize
    from clinitune.models.loading import load_tokenizer

    cfg = _cfg(tmp_path, tiny_llama)
    e = estimate(cfg, measured_tokens_per_s=1000.0)
    data = tokenize(load_tokenizer(tiny_llama), load(cfg.data.train), cfg.data.max_seq_length)
    assert e.tokens_per_epoch == sum(map(len, data.input_ids))
    assert e.seconds_per_epoch == pytest.approx(e.tokens_per_epoch / 1000.0, abs=0.1)
    assert "measured" in e.time_source and "tokens per epoch" in format_estimate(e)


def test_too_big_is_refused_with_the_remedies(tmp_path, tiny_llama):
    e = estimate(_cfg(tmp_path, tiny_llama))
    refuse_if_too_big(e)  # a tiny model fits
    too_big = Estimate(**{**e.to_dict(), "fits": False, "available_mb": 10})
    with pytest.raises(ClinituneError, match="gradient checkpointing"):
        refuse_if_too_big(too_big)


def test_estimate_cli_prints_table_and_json(tmp_path, tiny_llama):
    cfg = _cfg(tmp_path, tiny_llama)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    res = CliRunner().invoke(app, ["estimate", "--config", str(path), "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output.strip().splitlines()[-1])
    assert printed == estimate(cfg).to_dict() | {
        "tokens_per_s": printed["tokens_per_s"],
        "available_mb": printed["available_mb"],
        "seconds_per_epoch": printed["seconds_per_epoch"],
        "time_source": printed["time_source"],
        "fits": printed["fits"],
        "gemm_peak_gflops": printed["gemm_peak_gflops"],  # measured on each call
    }
    assert "predicted peak" in res.output


def test_estimate_bounds_the_peak_measured_over_real_steps(tmp_path, tiny_llama):
    """The predicted peak is what `train` refuses on, so it must not fall below what training really takes:
    measured in a fresh process (ru_maxrss is a process's lifetime peak) over real steps with long packed rows,
    where activations, not the weights, are most of the memory."""
    import subprocess
    import sys

    text = "Essential hypertension, ICD-10 I10, on lisinopril 10 mg daily; A1c 7.2 %. " * 4
    rows = [{"instruction": f"Summarize note {i}.", "output": f"{i}: {text}"} for i in range(200)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "model": {"name_or_path": str(tiny_llama)},
        "lora": {"r": 8},
        "data": {"train": str(tmp_path / "train.jsonl"), "max_seq_length": 1024, "packing": True},
        "training": {
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1,
            "gradient_checkpointing": False,
            "precision": "fp32",
            "max_steps": 2,
            "save_steps": 1000,
            "early_stopping_patience": None,
            "output_dir": str(tmp_path / "run"),
        },
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    predicted = estimate(load_config(tmp_path / "cfg.yaml")).predicted_peak_mb
    cmd = [sys.executable, "-m", "clinitune.cli", "train", "--quiet", "--config", str(tmp_path / "cfg.yaml")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    measured = json.loads((tmp_path / "run" / "train_summary.json").read_text())["peak_rss_mb"]
    # Conservative, not wild: 971 MB measured against 1,808 predicted on a 2-core AMD EPYC (its 1,100 MB
    # baseline for the interpreter and libraries is most of the gap on a model this small). Measured with
    # VmHWM: ru_maxrss would carry this test runner's own peak into the child (2,744 MB in the full suite).
    assert measured <= predicted <= 2.5 * measured, (measured, predicted)
