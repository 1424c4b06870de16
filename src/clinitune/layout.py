"""The files a training run and a prepared dataset hold, and the one way to read them.

Every module that opens a run directory or a data directory goes through `RunDir` / `DataDir`, so
a file's name is written once and a missing file gets one message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from .config import Config, load_config
from .errors import ClinituneError
from .paths import exclusive

SPLITS = ("train", "eval", "test")
SPLIT_FILES = tuple(f"{s}.jsonl" for s in SPLITS)  # the only files a prepare manifest vouches for


@dataclass
class TrainSummary:
    """What `clinitune train` leaves in train_summary.json: where the weights are and how the run went."""

    run_dir: str
    output: str  # adapter/ for LoRA and QLoRA, model/ for full fine-tuning
    base_model: str
    method: str
    steps: int = 0
    epochs_started: int = 0
    stopped_early: bool = False
    best_eval_loss: float | None = None
    best_step: int | None = None
    trainable_params: int = 0
    total_params: int = 0
    truncated: int = 0
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    data_manifest: str | None = None  # sha256 of the data's manifest.json
    phi_gate: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    loop_seconds: float = 0.0
    loop_tokens: int = 0
    loop_response_tokens: int = 0
    first_step_seconds: float | None = None  # the first step pays for allocations: kept apart for steady rates
    first_step_tokens: int | None = None
    task_mixture: dict = field(default_factory=dict)  # task -> examples, weight, share of an epoch
    privacy: dict | None = None  # DP-SGD: the plan (epsilon, delta, noise, sampling rate, unit) and epsilon spent

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class RunDir:
    """A `training.output_dir`: config, metrics, checkpoints, best weights, the adapter or model, exports."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.resolve().name or "model"

    @property
    def marker(self) -> Path:
        """Present in every directory clinitune made a run: only those may be written into."""
        return self.path / ".clinitune-run"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def claim(self) -> None:
        """Make `path` a run directory, or refuse: an existing directory that is neither empty nor a run (a
        user's project, `output_dir: ""`) is never written into."""
        if self.path.exists() and not self.path.is_dir():
            raise ClinituneError(f"training.output_dir {self.path}: is a file; give a directory for the run")
        # A run from before the marker existed is still a run: it has a summary or checkpoints.
        legacy = self.summary_file.is_file() or bool(self.checkpoints())
        if self.path.is_dir() and not self.marker.is_file() and not legacy and any(self.path.iterdir()):
            raise ClinituneError(
                f"training.output_dir {str(self.path) or '.'}: an existing directory that is not a clinitune run "
                "(no .clinitune-run); set training.output_dir to a new or empty directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.marker.touch()

    def lock(self):
        """Hold the run for this process: a second `train` into the same directory is refused while it runs."""
        return exclusive(self.lock_file, "writing this run")

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def summary_file(self) -> Path:
        return self.path / "train_summary.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def model_card(self) -> Path:
        return self.path / "README.md"

    @property
    def loss_plot(self) -> Path:
        return self.path / "loss.png"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def best_weights(self) -> Path:
        return self.path / "best" / "trainable.safetensors"

    @property
    def log(self) -> Path:
        """Everything logged while training, third-party libraries' lines included (logs.py)."""
        return self.path / "train.log"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    @property
    def mlflow_run_id(self) -> Path:
        """The MLflow run this training run logs to, so that a resume continues it."""
        return self.path / "mlflow_run_id"

    @property
    def eval_dir(self) -> Path:
        """Where `clinitune eval --run RUN --out RUN/eval` writes; export's model card reads it from here."""
        return self.path / "eval"

    def output_for(self, method: str) -> Path:
        """Where the trained weights go: the whole model for full fine-tuning, else the adapter."""
        return self.path / ("model" if method == "full" else "adapter")

    def checkpoint(self, step: int) -> Path:
        return self.path / f"checkpoint-{step}"

    def checkpoints(self, complete_only: bool = False) -> list[Path]:
        """Checkpoint dirs by step; `complete_only` keeps those whose state.json was written (the last file in)."""
        found = [p for p in self.path.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()]
        if complete_only:
            found = [p for p in found if (p / "state.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))

    def read_config(self, overrides: list[str] | None = None) -> Config:
        """The resolved config the run trained with (the defaults for a directory without one), plus `--set`s."""
        return load_config(self.config if self.config.is_file() else None, overrides)

    def read_summary(self) -> TrainSummary:
        if not self.summary_file.is_file():
            raise ClinituneError(
                f"{self.path}: not a finished training run (no train_summary.json); train one with clinitune train"
            )
        return TrainSummary.from_dict(json.loads(self.summary_file.read_text()))


@dataclass
class PrepareManifest:
    """What prepare was asked, read and wrote: manifest.json is its `to_dict()`, in this order."""

    tool: str
    tool_version: str
    seed: int
    key: dict  # which key made the data set (keys.describe), never the key
    source: dict
    source_counts: dict | None  # read = used + rejected + skipped, per source item
    tasks: list[str]
    augment: bool
    max_examples: int | None
    codebook: bool
    group_by: str | None
    split: list[float]
    limits: dict
    counts: dict  # built, deduplicated, quarantined...; per_split and total
    balance: dict
    phi: dict  # the screen's findings and what screened
    phi_findings_by_type: dict
    carried_fields: dict  # screened, never written to the splits
    test_phrasings: dict  # test examples per task in a seen and in a held-out phrasing
    files: dict  # name -> sha256 and lines of each split: what the PHI gate accepts
    unscreened_files: dict  # quarantine, invalid and rejected lines: never vouched for

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrepareManifest:
        """A manifest as written; a key an older prepare did not write reads as None."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class DataDir:
    """A `clinitune prepare --out` dir: the splits, quarantine, manifest, canaries and report."""

    path: Path
    # File names, for prepare, which writes them into a fresh directory before it swaps it in.
    MANIFEST: ClassVar[str] = "manifest.json"
    REPORT: ClassVar[str] = "report.md"
    QUARANTINE: ClassVar[str] = "quarantine.jsonl"
    INVALID: ClassVar[str] = "invalid.jsonl"
    REJECTS: ClassVar[str] = "rejects.jsonl"
    CANARIES: ClassVar[str] = "canaries.json"
    BASELINES: ClassVar[str] = "baselines"  # eval's cache of the base model's answers (eval/cache.py)

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def baseline_answers(self, key: str) -> Path:
        return self.path / self.BASELINES / f"{key}.json"

    def split(self, name: str) -> Path:
        return self.path / f"{name}.jsonl"

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def canaries(self) -> Path:
        return self.path / self.CANARIES

    @property
    def quarantine(self) -> Path:
        return self.path / self.QUARANTINE

    def read_manifest(self) -> PrepareManifest | None:
        return PrepareManifest.from_dict(json.loads(self.manifest.read_text())) if self.manifest.is_file() else None

    def source_url(self) -> str | None:
        """The database prepare read from, as recorded (with any password masked) in the manifest."""
        m = self.read_manifest()
        return (m.source or {}).get("url") if m else None


@dataclass(frozen=True)
class EvalDir:
    """A `clinitune eval --out` dir: results, reports, every prediction, the plots."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def html(self) -> Path:
        return self.path / "report.html"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.jsonl"

    @property
    def worst(self) -> Path:
        return self.path / "worst_outputs.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def loss_plot(self) -> Path:
        return self.path / "loss.png"


@dataclass
class ExportResult:
    """What `clinitune export` wrote, as export.json records it (None: not written by this export)."""

    merged: str
    lora_gguf: str | None = None
    modelfile_lora: str | None = None
    model_card: str | None = None
    gguf: str | None = None
    modelfile: str | None = None
    verify: dict | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> ExportResult:
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class ExportDir:
    """A `clinitune export --out` dir (RUN/export by default): the merged model, GGUF files and their checks."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def record(self) -> Path:
        """export.json: what was written; serve and the quickstart find the shipped GGUF here."""
        return self.path / "export.json"

    @property
    def verify(self) -> Path:
        return self.path / "verify.json"

    @property
    def report(self) -> Path:
        return self.path / "export_report.md"

    @property
    def card(self) -> Path:
        return self.path / "README.md"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def log(self) -> Path:
        """llama.cpp's own output while quantizing."""
        return self.path / "export.log"

    def gguf(self, name: str, kind: str) -> Path:
        return self.path / f"{name}-{kind}.gguf"

    def modelfile(self, lora: bool = False) -> Path:
        return self.path / ("Modelfile.lora" if lora else "Modelfile")

    def read_record(self) -> ExportResult | None:
        return ExportResult.from_dict(json.loads(self.record.read_text())) if self.record.is_file() else None
