"""Experiment tracking in MLflow (`training.report_to: [mlflow]`): params, per-step metrics and the run's
artifacts, in the store teams already use. The store is `training.mlflow_tracking_uri`, else
$MLFLOW_TRACKING_URI, else a local SQLite store `mlflow.db` in the working directory (MLflow 3 refuses its
old plain-file store by default), with artifacts in `mlartifacts/` beside it; nothing leaves the machine
unless the user points it elsewhere. A resumed run continues its own MLflow run (its id is kept in the run
directory)."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config
from ..errors import ClinituneError
from ..layout import RunDir


def _flat(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = str(v)[:500]  # MLflow's limit on a param value
    return out


def start(run: RunDir, cfg: Config):
    """The mlflow module with an active run for this training run; a clear error without the extra."""
    try:
        # Imported here: mlflow is an optional extra, and it takes seconds to import.
        import mlflow
    except ImportError:
        raise ClinituneError(
            "training.report_to: mlflow needs MLflow: pip install 'clinitune[mlflow]' (or remove mlflow)"
        ) from None
    t = cfg.training
    uri = t.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(t.mlflow_experiment) is None:
        # Artifacts beside the database, not in whatever directory training happened to start from.
        where = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        mlflow.create_experiment(t.mlflow_experiment, artifact_location=where.as_uri())
    mlflow.set_experiment(t.mlflow_experiment)
    previous = run.mlflow_run_id.read_text().strip() if run.mlflow_run_id.is_file() else None
    active = mlflow.start_run(run_id=previous) if previous else mlflow.start_run(run_name=run.name)
    run.mlflow_run_id.write_text(active.info.run_id + "\n")
    if not previous:
        mlflow.log_params(_flat(cfg.model_dump(mode="json")))
    return mlflow


def finish(mlflow, run: RunDir) -> None:
    for path in (run.config, run.metrics, run.model_card, run.loss_plot, run.summary_file):
        if path.is_file():
            mlflow.log_artifact(str(path))
    mlflow.end_run()
