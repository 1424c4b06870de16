"""The main job end to end, on a small budget: synth -> prepare -> estimate -> train -> eval -> export -> ask."""

import json

import pytest
from typer.testing import CliRunner

from clinitune.cli import app


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path):
    work = tmp_path / "qs"
    args = ["quickstart", "--workdir", str(work), "--patients", "60", "--steps", "24", "--eval-limit", "8"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    s = json.loads((work / "summary.json").read_text())
    for step in ("synth", "prepare", "estimate", "train", "eval", "export", "ask", "total"):
        assert step in s["seconds"]
    for key in ("db", "data", "run", "eval", "gguf", "modelfile", "report"):
        assert (
            (work / s["paths"][key]).exists()
            if not s["paths"][key].startswith("/")
            else __import__("pathlib").Path(s["paths"][key]).exists()
        )
    assert s["data"]["quarantined"] == 0
    ft, zs = s["metrics"]["fine_tuned"], s["metrics"]["zero_shot"]
    # Direction of the metrics on this small budget: summed over tasks, fine-tuning beats the base model.
    assert sum(r["fine_tuned"] for r in s["comparison"]) > sum(r["zero_shot"] for r in s["comparison"])
    assert set(ft) == set(zs)
    assert s["behind_base"] == [
        r["task"] for r in s["comparison"] if r["fine_tuned"] <= max(r["zero_shot"], r["few_shot"])
    ]
    n, behind = len(s["comparison"]), s["behind_base"]
    assert (
        f"beats both baselines on {n - len(behind)} of {n} tasks; not on {', '.join(behind)}:"
        if behind
        else f"beats both baselines on all {n} tasks"
    ) in res.output
    preds = [json.loads(line) for line in (work / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {p["task"] for p in preds} == set(ft) and all({"prediction", "reference", "score"} <= set(p) for p in preds)
    assert "Modelfile" in s["paths"]["modelfile"] and len(s["answers"]) == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert set(json.loads((work / "summary.json").read_text())["skipped"]) >= {
        "synth",
        "prepare",
        "train",
        "eval",
        "export",
    }


def test_behind_base_names_tasks_the_fine_tuned_model_does_not_beat():
    from clinitune.eval.metrics import PRIMARY
    from clinitune.eval.report import comparison_rows
    from clinitune.quickstart import behind_base

    def cand(**scores):
        return {"tasks": {task: {PRIMARY[task]: v} for task, v in scores.items() if v is not None}}

    cands = {
        "zero_shot": cand(extraction=0.0, validation=0.0, knowledge=0.3),
        "few_shot": cand(extraction=0.2, validation=0.2, knowledge=None),
        "fine_tuned": cand(extraction=0.9, validation=0.2, knowledge=0.1),
    }
    # validation ties the few-shot base (a tie is not a win); knowledge loses to zero-shot, its only baseline
    assert behind_base(comparison_rows(cands)) == ["knowledge", "validation"]
    assert behind_base(comparison_rows({"fine_tuned": cand(extraction=0.0)})) == []  # no baselines run
