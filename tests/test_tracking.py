"""training.report_to: [mlflow] logs params, metrics and artifacts to a local MLflow store."""

import json

import yaml
from conftest import knowledge_rows
from mlflow.tracking import MlflowClient

from clinitune.config import load_config
from clinitune.layout import RunDir
from clinitune.train.loop import train


def test_mlflow_gets_params_metrics_and_artifacts(tmp_path, tiny_llama):
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 8), ("eval", 4)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge_rows(split, n)))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "model": {"name_or_path": str(tiny_llama)},
        "data": {"train": str(d / "train.jsonl"), "eval": str(d / "eval.jsonl"), "max_seq_length": 64},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "logging_steps": 1,
            "eval_steps": 1,
            "precision": "fp32",
            "early_stopping_patience": None,
            "gradient_checkpointing": False,
            "report_to": ["mlflow"],
            "mlflow_tracking_uri": store,
            "mlflow_experiment": "clinitune-test",
        },
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "cfg.yaml"), quiet=True)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("clinitune-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == RunDir(tmp_path / "run").mlflow_run_id.read_text().strip()
    assert run.info.status == "FINISHED"
    assert run.data.params["lora.r"] == "64" and run.data.params["training.max_steps"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert client.get_metric_history(run.info.run_id, "eval_loss")
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.jsonl", "README.md"} <= names
    assert not (tmp_path / "run" / "tensorboard").exists()  # report_to names every destination
    assert (tmp_path / "mlartifacts").is_dir()  # beside the store, not in the working directory
