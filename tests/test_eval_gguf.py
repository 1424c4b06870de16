"""`clinitune eval --gguf`: the shipped file scored on the same tasks, paired against the HF model it came from."""

import json
from pathlib import Path

import yaml
from conftest import knowledge_rows
from typer.testing import CliRunner

from clinitune.card import model_card
from clinitune.cli import app
from clinitune.config import load_config
from clinitune.export.run import export
from clinitune.layout import RunDir
from clinitune.models.generate import llama_batched_greedy, llama_greedy, load_llama
from clinitune.train.loop import train


def test_eval_gguf_scores_the_exported_file_beside_the_hf_model(tmp_path, tiny_llama):
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 8), ("test", 6)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge_rows(split, n)))
    cfg = {
        "model": {"name_or_path": str(tiny_llama)},
        "data": {"train": str(d / "train.jsonl"), "max_seq_length": 64},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 24,  # enough to answer in words: an empty reply would make the comparison below vacuous
            "learning_rate": 5e-3,
            "precision": "fp32",
            "save_steps": 1000,
            "early_stopping_patience": None,
            "gradient_checkpointing": False,
        },
        "export": {"quantize": "f16"},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(tmp_path / "cfg.yaml")
    train(config, quiet=True)
    gguf = export(tmp_path / "run", config).gguf

    args = [
        "eval",
        "--run",
        str(tmp_path / "run"),
        "--gguf",
        gguf,
        "--data",
        str(d / "test.jsonl"),
        "--baseline",
        "none",
    ]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "e"), "-q"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(m["candidates"]) == {"fine_tuned", "gguf"} and m["gguf"] == gguf
    row = m["comparison"][0]
    assert row["n"] == 6 and len(row["ci95"]["gguf"]) == 2
    # An f16 file of the same weights answers as the HF model does, example by example (greedy decoding).
    preds = [json.loads(line) for line in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and all(p["prediction"] for p in preds)
    assert [p["gguf_prediction"] for p in preds] == [p["prediction"] for p in preds]
    assert row["gguf_vs_hf"]["verdict"] == "no significant difference"
    assert "What the GGUF costs on the tasks" in (tmp_path / "e" / "report.md").read_text()

    # eval.backend llama_cpp: the model written from memory as f16 and decoded by llama.cpp answers as the HF model
    # did, example by example; losses stay the HF model's.
    hf_args = ["eval", "--run", str(tmp_path / "run"), "--data", str(d / "test.jsonl"), "--baseline", "none"]
    res = CliRunner().invoke(app, [*hf_args, "--backend", "llama_cpp", "--out", str(tmp_path / "b"), "-q"])
    assert res.exit_code == 0, res.output
    by_llama = [json.loads(line) for line in (tmp_path / "b" / "predictions.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in by_llama] == [p["prediction"] for p in preds]
    assert (
        json.loads((tmp_path / "b" / "metrics.json").read_text())["candidates"]["fine_tuned"]["loss"]
        == (m["candidates"]["fine_tuned"]["loss"])
    )
    bad = CliRunner().invoke(app, [*hf_args, "--backend", "vllm", "--out", str(tmp_path / "x"), "-q"])
    assert bad.exit_code != 0 and "eval.backend" in bad.output and "llama_cpp" in bad.output

    # Batched llama.cpp decoding (what eval --gguf runs) gives the one-at-a-time replies on this f16 file.
    llm = load_llama(Path(gguf))
    prompts = [[{"role": "user", "content": f"State coding rule {i}."}] for i in range(7)]
    budgets = [3, 12, 1, 30, 7, 0, 20]
    assert llama_batched_greedy(llm, prompts, budgets, n_seq=3) == [
        llama_greedy(llm, p, n) if n else "" for p, n in zip(prompts, budgets)
    ]
    llm.close()

    alone = CliRunner().invoke(
        app, ["eval", "--gguf", gguf, "--data", str(d / "test.jsonl"), "--out", str(tmp_path / "g"), "-q"]
    )
    assert alone.exit_code == 0, alone.output
    g = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert set(g["candidates"]) == {"gguf"} and g["comparison"][0]["verdict"] is None
    assert len((tmp_path / "g" / "predictions.jsonl").read_text().splitlines()) == 6

    # export wrote a model card; with the eval beside the run, its header carries the table as model-index
    card = (Path(gguf).parent / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["base_model"] and "clinitune" in header["tags"] and header["model-index"] == []
    assert "Not for clinical decision-making without review" in card
    rd = RunDir(tmp_path / "run")
    report = json.loads((Path(gguf).parent / "verify.json").read_text())
    card = model_card(rd, config, rd.read_summary(), report, tmp_path / "e")
    header = yaml.safe_load(card.split("---\n")[1])
    result = header["model-index"][0]["results"][0]
    assert result["task"]["name"] == row["task"] and "95% CI" in result["metrics"][0]["name"]
    assert f"| {row['task']} | {row['metric']} | 6 |" in card
