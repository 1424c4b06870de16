"""Train for a budget: steps and schedule planned from a measured step time; tasks mixed by temperature."""

import json
import re
import time

import pytest
import yaml
from conftest import knowledge_rows

from clinitune.config import load_config
from clinitune.layout import RunDir
from clinitune.train import loop
from clinitune.train.budget import FINISH_SECONDS, BudgetPlan, plan
from clinitune.train.collate import mixture, mixture_report


def test_plan_fits_steps_and_evals_into_what_is_left():
    # 10 min, 60 s gone, 1 s/step; an eval of 40 rows at 4 rows/step costs 10 x 1 / 3 s, every 50 steps
    p = plan(10, 60, 1.0, eval_rows=40, rows_per_step=4, eval_steps=50)
    assert f"~{p.steps} steps at 1.00 s/step" in p.describe()
    per_eval = 10 / 3
    assert p.steps == int((600 - 60 - FINISH_SECONDS - per_eval) / (1 + per_eval / 50))
    assert plan(1, 120, 1.0, 0, 4, 50).steps == 1  # over budget already: one step, never zero


def test_temperature_evens_out_the_task_mix():
    tasks = ["record"] * 90 + ["lookup"] * 10
    assert mixture(tasks, {}, None) == {}
    assert mixture(tasks, {}, 1.0) == {"lookup": 1.0, "record": 1.0}
    even = mixture_report(tasks, mixture(tasks, {}, 100.0))
    assert abs(even["lookup"]["share"] - 0.5) < 0.02  # a large T gives each task about the same share
    mid = mixture_report(tasks, mixture(tasks, {}, 2.0))
    assert 0.1 < mid["lookup"]["share"] < 0.5
    assert mixture(tasks, {"lookup": 3.0}, 2.0)["lookup"] == 3.0  # the config's own weight wins


def _cfg(tmp_path, tiny_llama, lora=None, **training):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    for split, n in (("train", 16), ("eval", 4)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge_rows(split, n)))
    cfg = {
        "model": {"name_or_path": str(tiny_llama)},
        **({"lora": lora} if lora else {}),
        "data": {"train": str(d / "train.jsonl"), "eval": str(d / "eval.jsonl"), "max_seq_length": 64},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "precision": "fp32",
            "early_stopping_patience": None,
            "gradient_checkpointing": False,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "eval_steps": 1000,
            "save_steps": 1000,
            "logging_steps": 1000,
            **training,
        },
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(tmp_path / "cfg.yaml")


def test_budget_plans_the_schedule_and_records_it(tmp_path, tiny_llama, capsys):
    cfg = _cfg(tmp_path, tiny_llama, max_minutes=0.5, lr_scheduler_type="cosine")
    start = time.monotonic()
    summary = loop.train(cfg, quiet=True)
    # The budget is the whole call's: setup, steps, evals and the finish (a margin for a slow disk at the end).
    assert time.monotonic() - start <= 0.5 * 60 + 10
    planned = RunDir(tmp_path / "run").read_config().training.max_steps
    assert planned > 1 and summary.steps <= planned
    out = capsys.readouterr().out
    assert "budget 0.5 min: ~" in out
    # config.yaml holds the plan in force: the first one, or the one re-made from the steps really taken
    replans = re.findall(r"re-planned at step \d+: (\d+) steps", out)
    assert (replans and int(replans[-1]) == planned) or (not replans and f"~{planned} steps at" in out)
    if summary.steps == planned:  # a busy machine may stop it at the deadline instead, which the next test covers
        lrs = [json.loads(line).get("lr") for line in (tmp_path / "run" / "metrics.jsonl").open()]
        assert [x for x in lrs if x is not None][-1] < 0.05 * 2e-4  # the cosine decayed to its end on time
    assert summary.task_mixture["knowledge"]["share"] == 1.0


def test_a_wrong_plan_is_corrected_from_the_steps_really_taken(tmp_path, tiny_llama, monkeypatch, capsys):
    monkeypatch.setattr(loop, "plan_steps", lambda *a, **k: BudgetPlan(10**7, 0.001, 0.0, 0.5))
    # LoRA+ gives the optimizer two parameter groups: the new schedule must cover both
    summary = loop.train(_cfg(tmp_path, tiny_llama, lora={"loraplus_lr_ratio": 4}, max_minutes=0.5), quiet=True)
    out = capsys.readouterr().out
    assert f"budget re-planned at step {loop.REPLAN_AT}:" in out
    planned = RunDir(tmp_path / "run").read_config().training.max_steps
    assert planned < 10**7 and summary.steps <= planned


def test_a_run_that_overruns_stops_at_the_deadline(tmp_path, tiny_llama, monkeypatch, capsys):
    monkeypatch.setattr(loop, "plan_steps", lambda *a, **k: BudgetPlan(10**7, 0.001, 0.0, 0.5))
    monkeypatch.setattr(loop, "REPLAN_AT", 10**9)  # no re-plan: the deadline alone must stop it
    summary = loop.train(_cfg(tmp_path, tiny_llama, max_minutes=0.5), quiet=True)
    assert 1 <= summary.steps < 10**7
    assert f"budget reached at step {summary.steps} of 10000000" in capsys.readouterr().out
    assert RunDir(tmp_path / "run").checkpoints()  # the last step saved, as at a planned end


def test_budget_refuses_deepspeed(tmp_path, tiny_llama):
    cfg = _cfg(tmp_path, tiny_llama, max_minutes=1)
    with pytest.raises(Exception, match="not with DeepSpeed"):
        loop.plan_budget(cfg, None, type("D", (), {"deepspeed": {}})(), None, [], [], 0, 0.0)
