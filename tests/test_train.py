import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_model_dir
from safetensors.torch import load_file

from clinitune.config import load_config
from clinitune.data import tokenize as T
from clinitune.data.example import parse
from clinitune.errors import ClinituneError
from clinitune.train.collate import weighted_order
from clinitune.train.loop import train
from clinitune.train.loss import loss_sum

ROOT = Path(__file__).resolve().parents[1]


def _data(tmp_path: Path, n: int = 48) -> tuple[Path, Path]:
    rows = [
        {
            "id": str(i),
            "task": "icd10_coding",
            "group": f"p{i}",
            "instruction": f"What ICD-10 code represents condition number {i}?",
            "input": "",
            "output": f"The ICD-10-CM code for condition {i} is {'I10' if i % 2 else 'E11.9'}.",
        }
        for i in range(n)
    ]
    train_p, eval_p = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_p.write_text("".join(json.dumps(r) + "\n" for r in rows[: n - 8]))
    eval_p.write_text("".join(json.dumps(r) + "\n" for r in rows[n - 8 :]))
    return train_p, eval_p


def _cfg(tmp_path, model_dir, method="lora", **training):
    train_p, eval_p = _data(tmp_path)
    t = {
        "output_dir": str(tmp_path / "run"),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "learning_rate": 3e-4,
        "max_steps": 4,
        "logging_steps": 1,
        "eval_steps": 2,
        "save_steps": 2,
        "warmup_ratio": 0.0,
        "gradient_checkpointing": False,
        "precision": "fp32",
        "early_stopping_patience": None,
        **training,
    }
    data = {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"method": method, "r": 8, "lora_alpha": 16, "lora_dropout": 0.1},
        "data": {"train": str(train_p), "eval": str(eval_p), "max_seq_length": 128, "packing": True},
        "training": t,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("arch", ["llama", "mistral", "stablelm", "qwen2"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_tiny_architectures_train(tmp_path, arch, method):
    """Each architecture learns: the saved weights load on their own and score the training data better than the
    base."""
    from clinitune.data.example import load
    from clinitune.models.generate import example_losses, load_for_inference

    model_dir = tiny_model_dir(tmp_path / arch, arch, tied=arch != "mistral")
    lr = 1e-2 if method == "lora" else 1e-3
    summary = train(load_config(_cfg(tmp_path, model_dir, method, learning_rate=lr)), quiet=True)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 4 and all(x == x for x in losses)
    for f in ("config.yaml", "README.md", "loss.png", "train_summary.json"):
        assert (tmp_path / "run" / f).is_file()
    examples = load(tmp_path / "train.jsonl")[:16]
    base, tok, _ = load_for_inference(None, str(model_dir), None)
    trained, _, has_adapter = load_for_inference(tmp_path / "run", None, None)
    assert has_adapter == (method == "lora") and Path(summary.output).name == (
        "adapter" if method == "lora" else "model"
    )
    before, after = example_losses(base, tok, examples), example_losses(trained, tok, examples)
    assert sum(after) < sum(before) - 0.01 * len(examples), (sum(before), sum(after))


def test_completion_only_labels_and_truncation(tiny_llama):
    from clinitune.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_llama)
    ex = {
        "instruction": "What ICD-10 code represents essential hypertension?",
        "input": "",
        "output": "I10 essential hypertension.",
    }
    data = T.tokenize(tok, [parse(ex, "t")], 512)
    prompt = tok.apply_chat_template([{"role": "user", "content": ex["instruction"]}], add_generation_prompt=True)
    prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    assert data.n_prompt[0] == len(prompt)
    row = T.pack(data, [0], 512, True)[0]
    assert all(y == T.IGNORE for y in row.labels[: len(prompt)])
    assert tok.decode([y for y in row.labels if y != T.IGNORE]).startswith("I10 essential hypertension.")
    short = T.tokenize(tok, [parse(ex, "t"), parse({**ex, "output": "x " * 400}, "t")], 60)
    assert short.truncated == 1


def test_packing_has_no_cross_contamination(tiny_llama):
    """The loss of a packed row equals the losses of its examples run alone."""
    from clinitune.models.loading import load_causal_lm, load_tokenizer

    tok, model = load_tokenizer(tiny_llama), load_causal_lm(tiny_llama)
    exs = [
        {"instruction": f"Question number {i} about coding?", "input": "", "output": f"Answer {i}: code E11.{i}."}
        for i in range(3)
    ]
    data = T.tokenize(tok, [parse(e, "t") for e in exs], 256)
    packed = T.pack(data, [0, 1, 2], 256, packing=True)
    assert len(packed) == 1
    alone = T.pack(data, [0, 1, 2], 256, packing=False)
    with torch.no_grad():
        s_packed, n_packed = loss_sum(model, T.collate(packed, tok.pad_token_id), "cpu")
        s_alone, n_alone = loss_sum(model, T.collate(alone, tok.pad_token_id), "cpu")
    assert n_packed == n_alone
    torch.testing.assert_close(s_packed, s_alone, rtol=1e-4, atol=1e-4)


def _final_loss(run: Path) -> float:
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [m for m in metrics if "loss" in m][-1]["loss"]


class _Payload:
    """Unpickling this runs a command: what a tampered checkpoint file would carry."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_kill_and_resume_matches_uninterrupted(tmp_path, tiny_llama):
    cfg_path = _cfg(tmp_path, tiny_llama, max_steps=8, save_steps=4, eval_steps=4)
    cmd = [sys.executable, "-m", "clinitune.cli", "train", "--config", str(cfg_path), "--quiet"]
    env = {**os.environ, "CLINITUNE_FAULT_AFTER_STEP": "6"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "run"
    assert (run / "checkpoint-4").is_dir() and not (run / "adapter").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite checkpoints silently
    # A checkpoint holds no pickle (RNG, optimizer and scheduler state are JSON and safetensors), and pickles
    # planted where the old format kept them are never loaded.
    files = [p for p in (run / "checkpoint-4").rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".safetensors", ".json") for p in files), files
    for p in files:  # no pickle under any name: a pickle stream starts with the PROTO opcode 0x80
        assert not p.read_bytes().startswith(b"\x80"), p
    marker = tmp_path / "pwned"
    for name in ("rng.pt", "optimizer.pt", "scheduler.pt"):
        (run / "checkpoint-4" / name).write_bytes(pickle.dumps(_Payload(str(marker))))
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not marker.exists()
    steps = [m["step"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert steps == list(range(1, 9))
    resumed_loss = _final_loss(run)

    ref_cfg = yaml.safe_load(cfg_path.read_text())
    ref_cfg["training"]["output_dir"] = str(tmp_path / "ref")
    ref_path = tmp_path / "ref.yaml"
    ref_path.write_text(yaml.safe_dump(ref_cfg))
    train(load_config(ref_path), quiet=True)
    assert abs(_final_loss(tmp_path / "ref") - resumed_loss) < 1e-4


def test_early_stopping_restores_best(tmp_path, tiny_llama):
    # A learning rate this high overfits 40 examples within a few evals.
    cfg = load_config(
        _cfg(
            tmp_path,
            tiny_llama,
            learning_rate=5e-2,
            max_steps=40,
            eval_steps=1,
            save_steps=100,
            early_stopping_patience=2,
            lr_scheduler_type="constant",
        )
    )
    summary = train(cfg, quiet=True)
    assert summary.stopped_early and summary.steps < 40
    evals = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if "eval_loss" in line
    ]
    best = min(evals, key=lambda e: e["eval_loss"])
    assert summary.best_step == best["step"]
    from safetensors.torch import load_file

    best_w = load_file(str(tmp_path / "run" / "best" / "trainable.safetensors"))
    saved = load_file(str(Path(summary.output) / "adapter_model.safetensors"))
    some = next(k for k in best_w if "lora_A" in k)
    saved_key = next(
        k for k in saved if k.split("lora_A")[0].endswith(some.split("lora_A")[0].split("base_model.model.")[-1])
    )
    torch.testing.assert_close(saved[saved_key], best_w[some])


def test_qlora_on_cpu_says_what_to_do(tmp_path, tiny_llama):
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU message; CUDA runs QLoRA for real")
    cfg = load_config(_cfg(tmp_path, tiny_llama, method="qlora"))
    with pytest.raises(ClinituneError, match="lora.method: lora"):
        train(cfg, quiet=True)


DS = ROOT / "configs" / "accelerate"


TRAIN_CMD = [sys.executable, "-m", "clinitune.cli", "train", "--quiet", "--config"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The single-process reference run per method, trained once for all the sharding variants."""
    root = tmp_path_factory.mktemp("one")
    model = tiny_model_dir(root / "tiny-llama")
    runs: dict[str, Path] = {}

    def run(method: str) -> tuple[Path, Path]:
        if method not in runs:
            d = root / method
            d.mkdir()
            cfg = _cfg(d, model, method, max_steps=6, eval_steps=3, save_steps=100)
            res = subprocess.run(TRAIN_CMD + [str(cfg)], capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stderr
            runs[method] = d
        return runs[method], model

    return run


@pytest.mark.parametrize(
    ("method", "sharding"),
    [
        ("lora", {}),  # DDP
        ("lora", {"fsdp": "full_shard"}),
        ("full", {"fsdp": "shard_grad_op"}),
        ("lora", {"deepspeed": str(DS / "ds_zero2.json")}),
        ("full", {"deepspeed": str(DS / "ds_zero3.json")}),
    ],
    ids=["ddp", "fsdp-full_shard", "fsdp-shard_grad_op-full", "zero2", "zero3-full"],
)
def test_two_processes_match_one(tmp_path, one_process, method, sharding):
    """2 processes x batch 4 x accumulation 1 log the same loss curve as 1 process x 4 x 2 (gloo on CPU),
    replicated (DDP) or sharded (FSDP2, DeepSpeed ZeRO); the saved weights are whole; a checkpoint resumes."""
    cmd = TRAIN_CMD
    one_dir, tiny_llama = one_process(method)
    (tmp_path / "two").mkdir()
    two = _cfg(
        tmp_path / "two",
        tiny_llama,
        method,
        max_steps=6,
        eval_steps=3,
        save_steps=3,
        gradient_accumulation_steps=1,
        **sharding,
    )
    res = subprocess.run(cmd + [str(two), "--nproc", "2"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr

    def curve(d, key):
        return [m[key] for m in map(json.loads, (d / "run" / "metrics.jsonl").read_text().splitlines()) if key in m]

    a, b = curve(one_dir, "loss"), curve(tmp_path / "two", "loss")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.05
    assert max(abs(x - y) for x, y in zip(curve(one_dir, "eval_loss"), curve(tmp_path / "two", "eval_loss"))) < 0.05
    out = "adapter/adapter_model.safetensors" if method == "lora" else "model/model.safetensors"
    one_w, two_w = (load_file(str(d / "run" / out)) for d in (one_dir, tmp_path / "two"))
    assert one_w.keys() == two_w.keys()
    assert all(one_w[k].shape == two_w[k].shape for k in one_w)
    assert max(float((one_w[k].float() - two_w[k].float()).abs().max()) for k in one_w) < 0.05

    (tmp_path / "three").mkdir()
    shutil.copytree(tmp_path / "two" / "run" / "checkpoint-3", tmp_path / "three" / "run" / "checkpoint-3")
    if "deepspeed" in sharding:  # DeepSpeed's optimizer partitions are pickles: never written, and a resume refused
        ckpt = tmp_path / "two" / "run" / "checkpoint-3"
        assert not [p for p in ckpt.rglob("*") if p.suffix in (".pt", ".pkl", ".bin")]
        three = _cfg(
            tmp_path / "three",
            tiny_llama,
            method,
            max_steps=6,
            eval_steps=3,
            save_steps=100,
            gradient_accumulation_steps=1,
            **sharding,
        )
        res = subprocess.run(
            cmd + [str(three), "--resume", "--nproc", "2"], capture_output=True, text=True, timeout=300
        )
        assert res.returncode != 0 and "DeepSpeed keeps its optimizer state in pickles" in res.stderr + res.stdout
    else:  # whole tensors keyed by name: one process resumes what two processes began
        three = _cfg(tmp_path / "three", tiny_llama, method, max_steps=6, eval_steps=3, save_steps=100)
        res = subprocess.run(cmd + [str(three), "--resume"], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert abs(curve(tmp_path / "three", "loss")[-1] - a[-1]) < 0.05


@pytest.mark.parametrize("head_trains", [False, True])
def test_fused_head_loss_matches_autograd(head_trains):
    from clinitune.train import loss as L

    torch.manual_seed(0)
    head = torch.nn.Linear(32, 300, bias=False)
    head.weight.requires_grad_(head_trains)
    h = torch.randn(37, 32, requires_grad=True)
    y = torch.randint(0, 300, (37,))
    ref = torch.nn.functional.cross_entropy(head(h), y, reduction="sum")
    ref.backward()
    ref_h, ref_w = h.grad.clone(), head.weight.grad.clone() if head_trains else None
    h.grad, head.weight.grad = None, None
    old = L.CE_CHUNK
    L.CE_CHUNK = 10  # several chunks, the last one partial
    try:
        got = L.head_loss(head, head, h, y)
    finally:
        L.CE_CHUNK = old
    (got * 0.5).backward()  # the incoming gradient must scale both results
    assert torch.allclose(got, ref, rtol=1e-5)
    assert torch.allclose(h.grad, 0.5 * ref_h, atol=1e-6)
    if head_trains:
        assert torch.allclose(head.weight.grad, 0.5 * ref_w, atol=1e-6)
    else:
        assert head.weight.grad is None


def test_task_weights_repeat_and_subsample():
    import random

    data = T.Tokenized(input_ids=[[1, 2]] * 30, n_prompt=[1] * 30, tasks=["a"] * 10 + ["b"] * 20)
    order = weighted_order(data, {"a": 2.0, "b": 0.25}, random.Random(0))
    a = [i for i in order if i < 10]
    b = [i for i in order if i >= 10]
    assert sorted(a) == sorted(list(range(10)) * 2)  # every "a" example exactly twice
    assert len(b) == 5 and len(set(b)) == 5  # a quarter of "b", no repeats
    other = weighted_order(data, {"a": 2.0, "b": 0.25}, random.Random(1))
    assert sorted(i for i in other if i >= 10) != sorted(b)  # a fresh quarter each epoch


def test_unknown_task_weight_is_a_clear_error(tmp_path):
    model_dir = tiny_model_dir(tmp_path / "m", "llama")
    cfg = load_config(_cfg(tmp_path, model_dir))
    cfg.data.task_weights = {"icd10_codng": 2.0}
    with pytest.raises(ClinituneError, match="icd10_codng.*its tasks are icd10_coding"):
        train(cfg, quiet=True)


def test_export_lora_gguf_end_to_end(tmp_path, tiny_llama):
    from clinitune.export.run import export

    cfg = load_config(_cfg(tmp_path, tiny_llama, learning_rate=1e-2))
    train(cfg, quiet=True)
    cfg.export.quantize, cfg.export.out_dir, cfg.export.lora_gguf = "bf16", str(tmp_path / "export"), True
    res = export(tmp_path / "run", cfg)
    v = res.verify
    assert set(v) == {"f16", "bf16", "base+lora"} and v["bf16"]["tensor_types"].get("BF16")
    # The base GGUF with the adapter applied in llama.cpp reproduces the merged HF model, as the merged GGUF does.
    assert v["base+lora"]["top1_agreement"] >= 0.99 and v["f16"]["top1_agreement"] >= 0.99
    lines = Path(res.modelfile_lora).read_text().splitlines()
    assert lines[:2] == ["FROM ./base-f16.gguf", "ADAPTER ./run-lora.gguf"]
    assert Path(res.lora_gguf).stat().st_size < (tmp_path / "export" / "base-f16.gguf").stat().st_size


@pytest.mark.parametrize(
    ("launch_config", "says"), [("fsdp.yaml", "FSDP2 full_shard"), ("ds_zero3.yaml", "DeepSpeed ZeRO-3")]
)
def test_accelerate_launch_with_shipped_configs(tmp_path, tiny_llama, launch_config, says):
    cfg = _cfg(tmp_path, tiny_llama, max_steps=2, eval_steps=2, save_steps=2, gradient_accumulation_steps=1)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(DS / launch_config),
            "--num_processes",
            "2",
            "-m",
            "clinitune.cli",
            "train",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"2 processes, {says}" in res.stdout + res.stderr
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    # ranks leave without interpreter teardown (os._exit): rank 0's summary must still be flushed out
    assert "best eval loss" in res.stdout and res.stdout.rstrip().endswith(str(tmp_path / "run" / "adapter"))


def test_a_launched_run_reports_a_rank_error_in_one_line(tmp_path, tiny_llama):
    """An error inside the ranks (here a DeepSpeed config that sets its own optimizer) exits non-zero with
    the rank's own message and one line naming the rank, not the launcher's per-rank traceback."""
    bad = tmp_path / "ds.json"
    bad.write_text(json.dumps({"zero_optimization": {"stage": 2}, "optimizer": {"type": "AdamW"}}))
    cfg = _cfg(tmp_path, tiny_llama, deepspeed=str(bad))
    res = subprocess.run(
        [sys.executable, "-m", "clinitune.cli", "train", "--config", str(cfg), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert f'error: {bad}: remove the "optimizer" section' in res.stderr
    assert re.search(r"error: rank [01] of 2 exited with code 2; its own message is above", res.stderr)
    assert "Traceback" not in res.stderr and "ChildFailedError" not in res.stderr
    assert not (tmp_path / "run" / "adapter").exists()


def test_deepspeed_config_is_checked_and_filled(tmp_path):
    from clinitune.config import TrainingConfig
    from clinitune.train.distributed import deepspeed_config

    t = TrainingConfig(per_device_train_batch_size=4, gradient_accumulation_steps=2, max_grad_norm=0.5)
    filled = deepspeed_config(t, str(DS / "ds_zero2.json"))
    assert (
        filled["train_micro_batch_size_per_gpu"],
        filled["gradient_accumulation_steps"],
        filled["gradient_clipping"],
    ) == (4, 2, 0.5)
    assert filled["bf16"] == {"enabled": False} and filled["zero_optimization"]["stage"] == 2
    bad = tmp_path / "ds.json"
    for content, message in [
        ({"zero_optimization": {"stage": 2}, "optimizer": {"type": "AdamW"}}, 'remove the "optimizer" section'),
        (
            {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": 8},
            "train_micro_batch_size_per_gpu is 8",
        ),
        ({"zero_optimization": {"stage": 4}}, "stage must be 1, 2 or 3"),
        ({"zero_optimization": {"stage": 3}, "bf16": {"enabled": True}}, "training.precision"),
    ]:
        bad.write_text(json.dumps(content))
        with pytest.raises(ClinituneError, match=message):
            deepspeed_config(t, str(bad))
    bad.write_text("{not json")
    with pytest.raises(ClinituneError, match="cannot read"):
        deepspeed_config(t, str(bad))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "off"),
        ({"ACCELERATE_USE_FSDP": "true"}, "full_shard"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_RESHARD_AFTER_FORWARD": "false"}, "shard_grad_op"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}, "shard_grad_op"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "NO_SHARD"}, "off"),
    ],
)
def test_fsdp_settings_from_accelerate_launch(monkeypatch, env, expected):
    from clinitune.train.distributed import sharding_from_launcher

    for key in ("ACCELERATE_USE_FSDP", "FSDP_RESHARD_AFTER_FORWARD", "FSDP_SHARDING_STRATEGY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert sharding_from_launcher("off") == expected
    assert sharding_from_launcher("shard_grad_op") == "shard_grad_op"  # the config wins over the launcher


def test_loraplus_trains_b_faster(tmp_path, tiny_llama):
    def run(name, ratio):
        path = _cfg(tmp_path / name, tiny_llama, learning_rate=1e-3, output_dir=str(tmp_path / name / "run"))
        data = yaml.safe_load(path.read_text())
        data["lora"]["loraplus_lr_ratio"] = ratio
        path.write_text(yaml.safe_dump(data))
        out = Path(train(load_config(path), quiet=True).output)
        w = load_file(out / "adapter_model.safetensors")
        b = torch.stack([v.float().abs().mean() for k, v in w.items() if "lora_B" in k]).mean().item()
        a = torch.stack([v.float().abs().mean() for k, v in w.items() if "lora_A" in k]).mean().item()
        return a, b

    (tmp_path / "plain").mkdir()
    (tmp_path / "plus").mkdir()
    a0, b0 = run("plain", None)
    a1, b1 = run("plus", 16.0)
    # B starts at zero and Adam moves it ~lr per step, so 16x the rate shows as several times the size.
    assert b1 > 4 * b0
    assert a1 < 2 * a0


def test_loraplus_ratio_is_validated(tmp_path, tiny_llama):
    path = _cfg(tmp_path, tiny_llama)
    data = yaml.safe_load(path.read_text())
    data["lora"]["loraplus_lr_ratio"] = 0.5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ClinituneError, match="loraplus_lr_ratio"):
        load_config(path)
    data["lora"].update(loraplus_lr_ratio=16, method="full")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ClinituneError, match="full fine-tuning has none"):
        load_config(path)


def test_lr_schedules_shape():
    from clinitune.train.loop import lr_lambda

    for kind in ("cosine", "linear", "constant", "warmup_stable_decay"):
        f = lr_lambda(kind, 10, 110)
        assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0), kind
    wsd = lr_lambda("warmup_stable_decay", 10, 110)
    assert [wsd(s) for s in (10, 50, 90)] == [1.0, 1.0, 1.0]  # stable until the last 20 of 100 steps
    assert wsd(100) == pytest.approx(0.5) and wsd(110) == 0.0
    assert all(wsd(s) >= wsd(s + 1) for s in range(10, 110))
    cos = lr_lambda("cosine", 10, 110)
    assert cos(60) == pytest.approx(0.5) and cos(110) == pytest.approx(0.0)


def test_resume_passes_over_a_damaged_checkpoint_and_a_half_written_metrics_line(tmp_path, tiny_llama, caplog):
    cfg = load_config(_cfg(tmp_path, tiny_llama, max_steps=6, save_steps=2, eval_steps=6, save_total_limit=3))
    train(cfg, quiet=True)
    run = tmp_path / "run"
    assert [p.name for p in sorted(run.glob("checkpoint-*"))] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    weights = run / "checkpoint-6" / "trainable.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-64:] = bytes(64)  # finite garbage in place: still loads, but is not what was written
    weights.write_bytes(bytes(blob))
    (run / "checkpoint-4" / "optimizer.safetensors").unlink()
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "lo')  # killed mid-append
    with caplog.at_level("WARNING"):
        train(cfg, resume=True, quiet=True)
    assert "checkpoint-6 is damaged" in caplog.text and "checkpoint-4 is damaged" in caplog.text
    steps = [m["step"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert steps == list(range(1, 7))  # resumed from checkpoint-2: steps 3-6 again, none twice


def test_resume_refuses_a_config_that_changes_the_run_and_records_one_that_does_not(tmp_path, tiny_llama):
    cfg = load_config(_cfg(tmp_path, tiny_llama, max_steps=4, save_steps=2, eval_steps=4))
    train(cfg, quiet=True)
    changed = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"r": 16})})
    with pytest.raises(ClinituneError, match=r"lora.r 8 -> 16"):
        train(changed, resume=True, quiet=True)
    longer = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_steps": 6})})
    summary = train(longer, resume=True, quiet=True)
    assert summary.steps == 6
    assert "resumed with training.max_steps changed from 4 to 6" in summary.warnings
