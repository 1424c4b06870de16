"""The one model card writer: a Hugging Face README.md with YAML metadata (base_model, license, tags, the eval
table as model-index) and what a clinical reviewer asks before a model is deployed: the data it learned from
(manifest hash, PHI screen counts), how it scored (each task with its interval and verdict against the base
model), what the privacy probes found, and where it must not be used.

`train` writes it into the run (with the hyperparameters and the loss curve); `export` writes it beside the
GGUF (with the eval table and each file's verification)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import Config
from .layout import DataDir, EvalDir, RunDir, TrainSummary
from .models.registry import ALIASES

# The embedded and common bases' licenses; anything else is "other", for the reviewer to fill in.
LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}
LIMITS = (
    "Not for clinical decision-making without review by a qualified clinician: answers can be wrong, "
    "incomplete or out of date, and read as confident.",
    "Scored only on the tasks and data below, synthetic or de-identified; performance on another population, "
    "site or note style is unmeasured.",
    "Intervals are 95 % bootstrap intervals over the examples scored; with small n, a difference inside them "
    "is not evidence.",
    "The PHI screen reduces, but does not prove the absence of, identifiers in the training data.",
)


def _eval_metrics(eval_dir: Path | None) -> dict | None:
    path = EvalDir(eval_dir).metrics if eval_dir else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def model_index(name: str, metrics: dict | None) -> list[dict]:
    """The eval table in the Hub's model-index form: one result per task, on its primary metric."""
    results = []
    for row in (metrics or {}).get("comparison", []):
        subject = "fine_tuned" if row.get("fine_tuned") is not None else "gguf"
        ci = (row.get("ci95") or {}).get(subject)
        shown = f"{row['metric']} (95% CI {ci[0]:.3f}-{ci[1]:.3f}, n={row['n']})" if ci else row["metric"]
        results.append(
            {
                "task": {"type": "text-generation", "name": row["task"]},
                "dataset": {"name": "clinitune test split", "type": "clinitune-prepared", "split": "test"},
                "metrics": [{"type": row["metric"], "value": row[subject], "name": shown}],
            }
        )
    return [{"name": name, "results": results}] if results else []


def _eval_section(metrics: dict | None) -> list[str]:
    if not metrics:
        return ["Not evaluated: run `clinitune eval --run RUN --out RUN/eval` before export to include the table."]
    lines = ["| task | metric | n | fine-tuned [95% CI] | best baseline | verdict |", "|---|---|---|---|---|---|"]
    for row in metrics.get("comparison", []):
        subject = "fine_tuned" if row.get("fine_tuned") is not None else "gguf"
        ci = (row.get("ci95") or {}).get(subject)
        value = f"{row[subject]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        base = [(row[b], b) for b in ("zero_shot", "few_shot") if row.get(b) is not None]
        best = f"{max(base)[0]:.3f} ({max(base)[1].replace('_', '-')})" if base else "-"
        lines.append(
            f"| {row['task']} | {row['metric']} | {row['n']} | {value} | {best} | {row.get('verdict') or '-'} |"
        )
    return lines


def _privacy_section(metrics: dict | None) -> list[str]:
    p = (metrics or {}).get("privacy") or {}
    if not p:
        return ["No privacy probes were run."]
    lines = []
    mi = p.get("membership_inference")
    if mi:
        lines.append(
            f"- Membership inference AUC {mi['auc']} (95% CI {mi['auc_ci95'][0]}-{mi['auc_ci95'][1]}; "
            f"{mi['n_members']} training and {mi['n_nonmembers']} held-out examples; 0.5 is chance)"
        )
    ex = p.get("extraction")
    if ex and "leaks" in ex:
        lines.append(f"- Extraction probe: {ex['leaks']} leaks in {ex['prompts']} prompts")
    elif ex:
        lines.append(f"- Extraction probe: skipped ({ex.get('skipped')})")
    can = p.get("canary_exposure")
    if can:
        lines.append(
            f"- Canary exposure: at most {can['max_exposure_bits']} bits (warning above {can['warn_threshold_bits']})"
        )
    return lines


def _dp_line(dp: dict | None) -> str:
    if not dp:
        return "- differential privacy: none (the PHI screen alone stands between the data and the weights)"
    return (
        f"- differential privacy (DP-SGD, the patient as the unit): epsilon {dp['epsilon_spent']:.2f} spent of "
        f"{dp['target_epsilon']:g}, delta {dp['delta']:.2g}, {dp['accountant']} accountant, noise multiplier "
        f"{dp['noise_multiplier']:.3f}, sampling rate {dp['sample_rate']:.4f}, clip {dp['max_grad_norm']:g}"
    )


HYPERPARAMETERS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "num_train_epochs",
    "max_steps",
    "seed",
)


@dataclass
class Curve:
    """What the training loop logged, for the run's card: (step, loss) pairs."""

    train: list[tuple[int, float]]
    eval: list[tuple[int, float]]


def _training_section(cfg: Config, summary: TrainSummary, curve: Curve) -> list[str]:
    c = cfg.lora
    method = f" (r={c.r}, alpha={c.lora_alpha:g}, dropout={c.lora_dropout}, targets={c.target_modules})"
    lines = [
        "## Hyperparameters",
        "",
        f"- method: {c.method}" + (method if c.method != "full" else ""),
        f"- stopped early: {summary.stopped_early}",
        "",
        "| key | value |",
        "|---|---|",
        *[f"| {k} | {getattr(cfg.training, k)} |" for k in HYPERPARAMETERS],
        "",
        "## Training curve",
        "",
        "| step | train loss | eval loss |",
        "|---|---|---|",
    ]
    evals = dict(curve.eval)
    for step, loss in curve.train:
        lines.append(f"| {step} | {loss:.4f} | {evals.get(step, ''):{'.4f' if step in evals else ''}} |")
    lines += ["", "![loss curve](loss.png)"]
    if summary.warnings:
        lines += ["", "## Warnings", "", *[f"- {w}" for w in summary.warnings]]
    return lines


def model_card(
    rd: RunDir,
    cfg: Config,
    summary: TrainSummary,
    report: dict | None = None,
    eval_dir: Path | None = None,
    curve: Curve | None = None,
) -> str:
    """The card of a run (`curve`: what training logged) or of its export (`report`: each file's verification)."""
    metrics = _eval_metrics(eval_dir)
    manifest = DataDir(Path(cfg.data.train).parent).read_manifest() if cfg.data.train else None
    phi = (manifest.phi if manifest else None) or {}
    name = cfg.model.name_or_path
    base = ALIASES[name].hub_id if name in ALIASES else name  # the hub id, not a path in this machine's cache
    library = "gguf" if report is not None else "peft" if summary.method != "full" else "transformers"
    meta = {
        "base_model": base,
        "license": LICENSES.get(base, "other"),
        "library_name": library,
        "pipeline_tag": "text-generation",
        "tags": ["clinitune", "healthcare", "medical", *(["gguf"] if report is not None else []), summary.method]
        + (["differential-privacy"] if summary.privacy else []),
        "model-index": model_index(rd.name, metrics),
    }
    made = (
        "exported to GGUF for llama.cpp and Ollama (`clinitune serve` offers it as an OpenAI-compatible API)."
        if report is not None
        else f"trained in `{rd.path}` (`clinitune export --run` writes its GGUF, verified)."
    )
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {rd.name}",
        "",
        f"A {summary.method} fine-tune of `{base}` made with clinitune, {made}",
        "",
        "## Intended use",
        "",
        "Drafting and structuring support for trained staff on the tasks evaluated below (coding suggestions, "
        "record structuring, extraction from notes), with a person reviewing every output.",
        "",
        "## Limits",
        "",
        *[f"- {x}" for x in LIMITS],
        "",
        "## Training data",
        "",
        f"- data: `{cfg.data.train}`, manifest sha256 `{summary.data_manifest}`",
        f"- PHI screen: {phi.get('examples_flagged', 'unknown')} examples flagged, action "
        f"{phi.get('action', 'unknown')}; by type: "
        + (", ".join(f"{k} {n}" for k, n in (phi.get("examples_by_type") or {}).items()) or "none"),
        f"- steps: {summary.steps}; best eval loss {summary.best_eval_loss or float('nan'):.4f} "
        f"at step {summary.best_step}",
        _dp_line(summary.privacy),
        "",
        *(_training_section(cfg, summary, curve) + [""] if curve else []),
        "## Evaluation (test split, 95 % intervals, paired against the base model)",
        "",
        *_eval_section(metrics),
        "",
        "## Privacy probes",
        "",
        *_privacy_section(metrics),
    ]
    return "\n".join(lines + (_files_section(report) if report is not None else [])) + "\n"


def _files_section(report: dict) -> list[str]:
    return [
        "",
        "## Files (each verified against the HF model it came from)",
        "",
        "| file | size MB | top-1 agreement with the HF model [95 % CI] | floor (refused below) | examples | mean KL |",
        "|---|---|---|---|---|---|",
        *[
            f"| {kind} | {v['size_mb']} | {v['top1_agreement']} [{v['top1_ci95'][0]}, {v['top1_ci95'][1]}] | "
            f"{v['floor']} | {v['examples']} | {v['mean_kl']} |"
            for kind, v in report.items()
        ],
    ]
