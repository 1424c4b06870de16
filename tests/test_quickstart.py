"""The main job end to end, on a small budget: synth -> prepare -> estimate -> train -> eval -> export -> ask."""

import json

import pytest
from typer.testing import CliRunner

from clinitune.cli import app


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path):
    work = tmp_path / "qs"
    work.mkdir()
    # A fixed data key: the same surrogates and split on every machine (a fresh key would draw new ones).
    (work / "data.key").write_text("5e" * 32)
    (work / "data.key").chmod(0o600)
    args = ["quickstart", "--workdir", str(work), "--patients", "60", "--steps", "12", "--eval-limit", "8"]
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
    tr = s["training"]
    assert tr["steps"] == 12 and tr["tokens"] > 0 and tr["tokens_per_s"] == round(tr["tokens"] / tr["seconds"], 1)
    assert 0 < tr["mfu"] < 1 and f"training: 12 steps, {tr['tokens']:,} tokens" in res.output
    ft, zs = s["metrics"]["fine_tuned"], s["metrics"]["zero_shot"]
    # What 12 steps must show is learning on the test split's answers: a lower loss than the base model's.
    # (Task scores at n = 1-4 per task are noise at this budget; their verdicts are checked for form below.)
    losses = {
        c: e["loss"]
        for c, e in json.loads((work / "eval" / "metrics.json").read_text())["candidates"].items()
        if "loss" in e
    }
    assert losses["fine_tuned"] < 0.8 * losses["zero_shot"], losses
    assert set(ft) == set(zs)
    verdicts = {r["task"]: r["verdict"] for r in s["comparison"]}
    assert set(verdicts.values()) <= {"better", "worse", "no significant difference"}
    assert s["behind_base"] == [t for t, v in verdicts.items() if v != "better"]
    assert all(
        len(r["ci95"]["fine_tuned"]) == 2 and r["ci95"]["fine_tuned"][0] <= r["fine_tuned"] for r in s["comparison"]
    )
    better = [t for t, v in verdicts.items() if v == "better"]
    assert f"significantly better than every baseline on {len(better)} of {len(verdicts)} tasks" in res.output
    preds = [json.loads(line) for line in (work / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {p["task"] for p in preds} == set(ft) and all({"prediction", "reference", "score"} <= set(p) for p in preds)
    assert "Modelfile" in s["paths"]["modelfile"] and len(s["answers"]) == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert set(json.loads((work / "summary.json").read_text())["skipped"]) >= {
        "synth",
        "prepare",
        "train",
        "eval",
        "export",
    }


def test_verdicts_need_a_significant_paired_difference():
    from clinitune.eval.metrics import primary
    from clinitune.eval.report import comparison_rows
    from clinitune.eval.run import summarize
    from clinitune.quickstart import behind_base

    n = 30
    per_example = {  # candidate -> task -> 0/1 scores on the same n examples
        "zero_shot": {"extraction": [0.0] * n, "validation": [0.0] * n, "knowledge": [1.0] * n},
        "few_shot": {"extraction": [0.0] * n, "validation": [1.0] * 2 + [0.0] * (n - 2), "knowledge": [1.0] * n},
        "fine_tuned": {"extraction": [1.0] * n, "validation": [1.0] * 3 + [0.0] * (n - 3), "knowledge": [0.0] * n},
    }
    scores = {c: {t: [{primary(t): v} for v in vals] for t, vals in per.items()} for c, per in per_example.items()}
    cands = {c: summarize(scores[c], None, seed=0) for c in scores}
    rows = {r["task"]: r for r in comparison_rows(cands, per_example, seed=0)}
    # all right against all wrong: significant; one example more than few-shot: noise; the reverse: worse
    assert rows["extraction"]["verdict"] == "better" and rows["extraction"]["vs"]["few_shot"]["p"] < 1e-6
    assert rows["validation"]["verdict"] == "no significant difference" and rows["validation"]["delta"] > 0
    assert rows["knowledge"]["verdict"] == "worse"
    assert behind_base(list(rows.values())) == ["knowledge", "validation"]
    assert rows["extraction"]["ci95"]["fine_tuned"] == [1.0, 1.0]
