"""`clinitune quickstart`: database -> PHI-screened data -> LoRA on SmolLM2 -> eval vs base -> GGUF -> llama.cpp.

Each step records a stamp with the hash of its inputs; a re-run skips a step whose inputs and
outputs are unchanged (unless --fresh), so an interrupted quickstart resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer
import yaml

from .config import Config, EvalConfig, load_config, to_yaml
from .data.prepare import prepare
from .data.privacy import keys
from .data.records.synth import write_database
from .data.tasks import TASKS
from .errors import ClinituneError
from .eval.report import EvalResults, console_table, phrasing_line, verdict_line
from .eval.run import evaluate
from .export.run import export
from .layout import DataDir, EvalDir, ExportDir, ExportResult, PrepareManifest, RunDir, TrainSummary
from .models.chat import LlamaChat
from .paths import atomic_write_text
from .stats import BETTER
from .train.estimate import Estimate, estimate
from .train.loop import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Each profile is a config file of the one schema: fast is quickstart.yaml, full changes keys on top of it.
PROFILES = {"fast": CONFIGS / "quickstart.yaml", "full": CONFIGS / "quickstart-full.yaml"}
SPEC_PROMPTS = [
    "Generate a patient record for a 65-year-old male with hypertension.",
    "What ICD-10 code represents essential hypertension?",
]


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            h.update(p.read_bytes() if p.is_file() else str(p).encode())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class Steps:
    """Runs named steps, skipping those whose stamp matches the current inputs."""

    def __init__(self, workdir: Path, fresh: bool):
        self.dir = workdir / ".steps"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fresh = fresh
        self.seconds: dict[str, float] = {}
        self.skipped: list[str] = []

    def run(self, name: str, key: str, outputs: list[Path], fn, kind: type | None = None):
        """`fn()`'s result, or the stamped one when inputs and outputs are unchanged; a `kind` result
        (a dataclass) is stamped as its to_dict() and read back as a `kind`."""
        stamp = self.dir / f"{name}.json"
        fresh_enough = not self.fresh and stamp.is_file() and all(p.exists() for p in outputs)
        if fresh_enough and json.loads(stamp.read_text()).get("key") == key:
            self.seconds[name] = 0.0
            self.skipped.append(name)
            typer.echo(f"[{name}] up to date, skipped")
            stored = json.loads(stamp.read_text()).get("result")
            return kind(**stored) if kind is not None else stored
        typer.echo(f"[{name}] running")
        t = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - t, 2)
        stored = result.to_dict() if kind is not None else result
        atomic_write_text(stamp, json.dumps({"key": key, "result": stored}, default=str))
        return result


def leaf_sets(data: dict, prefix: str = "") -> list[str]:
    """A config dict as `--set` lines, one per leaf, so that a dict (task_weights) is overridden key by key."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += leaf_sets(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def profile_config(profile: str, sets: list[str] | None = None) -> Config:
    """The profile's config (its file validated on its own, then laid over the fast one), then `sets`."""
    if profile not in PROFILES:
        raise ClinituneError(f"--profile {profile!r}: expected one of {', '.join(PROFILES)}")
    layers = []
    if PROFILES[profile] != PROFILES["fast"]:
        load_config(PROFILES[profile])  # its own errors name its own file and line
        layers = leaf_sets(yaml.safe_load(PROFILES[profile].read_text()))
    return load_config(PROFILES["fast"], layers + list(sets or []))


def flag_sets(patients=None, max_steps=None, eval_limit=None, max_minutes=None) -> list[str]:
    """The quickstart's flags as the keys they stand for; an explicit step count replaces the time budget."""
    sets = [f"quickstart.patients={patients}"] if patients else []
    if max_steps:
        sets += [f"training.max_steps={max_steps}", "training.max_minutes=null"]
    sets += [f"eval.limit={eval_limit}"] if eval_limit else []
    return sets + ([f"training.max_minutes={max_minutes}"] if max_minutes else [])


def train_config(workdir: Path, cfg: Config, seed: int) -> Path:
    """The run's config: the profile's, with the data set and run dir under `workdir` and the seed."""
    data = DataDir(workdir / "data")
    cfg = cfg.model_copy(deep=True)
    cfg.data.train, cfg.data.eval, cfg.data.test = (str(data.split(s)) for s in ("train", "eval", "test"))
    cfg.training.output_dir, cfg.training.seed = str(workdir / "run"), seed
    path = workdir / "train_config.yaml"
    atomic_write_text(path, to_yaml(cfg))
    return path


@dataclass
class QuickstartSummary:
    """What `clinitune quickstart` did and measured; summary.json is its `to_dict()`."""

    seconds: dict[str, float]
    skipped: list[str]
    profile: str
    seed: int
    paths: dict[str, str]
    data: dict
    estimate: dict
    metrics: dict[str, dict[str, dict[str, float]]]  # candidate -> task -> metric -> mean
    comparison: list[dict]
    answers: dict[str, str]
    behind_base: list[str]
    training: dict = field(default_factory=dict)  # steps, tokens, seconds and rate of the training loop

    def to_dict(self) -> dict:
        return asdict(self)


def ask(gguf: Path, cfg: Config) -> dict[str, str]:
    """The spec's prompts, answered greedily by the exported GGUF."""
    chat = LlamaChat(gguf)
    gen = cfg.generation.model_copy(update={"temperature": 0.0, "max_new_tokens": 200})
    return {p: chat.chat([{"role": "user", "content": p}], gen, stream=False) for p in SPEC_PROMPTS}


def evaluate_run(test: Path, out: Path, run: Path, ec: EvalConfig, seed: int) -> EvalResults:
    """eval as the profile's `eval:` section sets it."""
    return evaluate(
        data=test,
        out=out,
        run=run,
        limit=ec.limit,
        seed=seed,
        cache_baselines=ec.cache_baselines,
        backend=ec.backend,
    )


def run_quickstart(
    workdir: Path,
    patients: int | None,
    profile: str,
    fresh: bool,
    seed: int,
    steps: int | None = None,
    eval_limit: int | None = None,
    minutes: float | None = None,
) -> QuickstartSummary:
    prof = profile_config(profile, flag_sets(patients, steps, eval_limit, minutes))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Steps(workdir, fresh)
    t_all = time.perf_counter()
    db_path = workdir / "clinic.db"
    db = f"sqlite:///{db_path}"
    data, run, eval_dir = DataDir(workdir / "data"), RunDir(workdir / "run"), workdir / "eval"

    runner.run(
        "synth",
        _sha(prof.quickstart.patients, seed, "v1"),
        [db_path],
        lambda: write_database(db, prof.quickstart.patients, seed, progress=True),
    )
    manifest = runner.run(
        "prepare",
        _sha(db_path, seed, "phrasings-held-out", tuple(prof.prepare.split)),
        [data.manifest],
        # The key sits beside the data set, not in it: synthetic patients, and a re-run must repeat the split.
        lambda: prepare(
            source="database",
            db=db,
            path=None,
            out=data.path,
            tasks=list(TASKS),
            seed=seed,
            ratios=tuple(prof.prepare.split),
            key=keys.load_or_create(workdir / "data.key"),
        ),  # fmt: skip
        kind=PrepareManifest,
    )
    cfg_path = train_config(workdir, prof, seed)
    cfg = load_config(cfg_path)
    est = runner.run("estimate", _sha(cfg_path, data.manifest), [], lambda: estimate(cfg), kind=Estimate)

    def _train():
        if run.path.exists():
            shutil.rmtree(run.path)  # inputs changed: a stale run must not be resumed
        return train(cfg, quiet=False)

    trained = runner.run("train", _sha(cfg_path, data.manifest), [run.summary_file], _train, kind=TrainSummary)
    results = runner.run(
        "eval",
        _sha(run.summary_file, data.split("test"), prof.eval.limit, prof.eval.backend),
        [EvalDir(eval_dir).metrics],
        lambda: evaluate_run(data.split("test"), eval_dir, run.path, prof.eval, seed),
        kind=EvalResults,
    )
    # export runs after eval, so its model card carries the eval table
    out = {"out_dir": str(workdir / "export"), "eval_dir": str(eval_dir)}
    export_cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update=out)})
    exported = runner.run(
        "export",
        _sha(run.summary_file, run.output_for("lora") / "adapter_model.safetensors"),
        [ExportDir(workdir / "export").record],
        lambda: export(run.path, export_cfg),
        kind=ExportResult,
    )

    answers = runner.run("ask", _sha(Path(exported.gguf)), [], lambda: ask(Path(exported.gguf), cfg))
    runner.seconds["total"] = round(time.perf_counter() - t_all, 2)
    paths = {"db": str(db_path), "data": str(data.path), "run": str(run.path), "eval": str(eval_dir)}
    paths.update(gguf=exported.gguf, modelfile=exported.modelfile, report=str(EvalDir(eval_dir).report))
    summary = QuickstartSummary(
        seconds=runner.seconds,
        skipped=runner.skipped,
        profile=profile,
        seed=seed,
        paths=paths,
        data={
            "examples": manifest.counts["total"],
            "quarantined": manifest.counts["quarantined"],
            "phi_findings_by_type": manifest.phi_findings_by_type,
        },
        estimate=est.to_dict(),
        metrics={
            c: {t: {k: v for k, v in vals.items() if k != "n"} for t, vals in e["tasks"].items()}
            for c, e in results.candidates.items()
        },
        comparison=results.comparison,
        answers=answers,
        behind_base=behind_base(results.comparison),
        training=training_speed(trained, est),
    )
    atomic_write_text(workdir / "summary.json", json.dumps(summary.to_dict(), indent=2))
    _print_summary(summary, results, cfg)
    return summary


def training_speed(t: TrainSummary, est: Estimate) -> dict:
    """The training loop's rate (its evals and checkpoints included), and the share of the GEMM peak that
    `estimate` measured on this machine it reached, at the estimate's model FLOPs per token."""
    rate = t.loop_tokens / t.loop_seconds if t.loop_seconds else 0.0
    out = {"steps": t.steps, "tokens": t.loop_tokens, "seconds": t.loop_seconds, "tokens_per_s": round(rate, 1)}
    if est.gemm_peak_gflops:
        out["mfu"] = round(rate * est.flops_per_token / (est.gemm_peak_gflops * 1e9), 3)
        out["gemm_peak_gflops"] = est.gemm_peak_gflops
    return out


def behind_base(comparison: list[dict]) -> list[str]:
    """Tasks where the fine-tuned model is not significantly better than every baseline: a win on
    overlapping noise is not a win."""
    return [r["task"] for r in comparison if r.get("verdict") is not None and r["verdict"] != BETTER]


def _print_summary(s: QuickstartSummary, results: EvalResults, cfg: Config) -> None:
    typer.echo("\n=== clinitune quickstart ===")
    typer.echo("step        seconds")
    for step, sec in s.seconds.items():
        typer.echo(f"  {step:<10}{sec:>8.1f}" + ("  (skipped)" if step in s.skipped else ""))
    d = s.data
    if tr := s.training:
        mfu = f", MFU {tr['mfu']:.2f} of a {tr['gemm_peak_gflops']:.0f} GFLOP/s GEMM" if "mfu" in tr else ""
        typer.echo(
            f"training: {tr['steps']} steps, {tr['tokens']:,} tokens at {tr['tokens_per_s']:.0f} tokens/s with its "
            f"evals{mfu}; against TRL side by side: bench/train_throughput.py"
        )
    typer.echo(
        f"data: train {d['examples']['train']}, eval {d['examples']['eval']}, test {d['examples']['test']}; "
        f"PHI findings quarantined: {d['quarantined']}"
    )
    typer.echo("")
    for line in console_table(results):
        typer.echo(line)
    longer = "--minutes N" if s.profile == "full" else "--profile full, or --minutes N"
    typer.echo(verdict_line(results) + (f": train longer ({longer})" if s.behind_base else ""))
    if line := phrasing_line(results):
        typer.echo(line)
    typer.echo("\nllama.cpp answers (q4_k_m GGUF):")
    for p, a in s.answers.items():
        typer.echo(f"  Q: {p}\n  A: {a[:300]}")
    p = s.paths
    typer.echo(
        f"\nreport:    {p['report']}\nadapter:   {p['run']}/adapter\ngguf:      {p['gguf']}\nmodelfile: "
        f"{p['modelfile']}"
    )
    typer.echo(
        f"run it in Ollama:  ollama create {cfg.export.ollama_name or 'clinitune'} -f {p['modelfile']} && "
        f"ollama run {cfg.export.ollama_name or 'clinitune'}"
    )
    typer.echo(f"summary:   {Path(p['run']).parent / 'summary.json'}")
