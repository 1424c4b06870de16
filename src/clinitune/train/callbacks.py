"""Monitoring for the training loop: metrics.jsonl, TensorBoard, the spec's warnings, plots, model card."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib
import torch
from tqdm import tqdm

from ..card import Curve, model_card
from ..config import Config
from ..layout import RunDir, TrainSummary
from ..paths import atomic_write_text
from . import tracking

matplotlib.use("Agg")  # files only, never a window: training runs headless
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

log = logging.getLogger(__name__)

ADVICE = {
    "overfitting": "Possible overfitting: increase lora_dropout, reduce epochs, add more training data, or use "
    "--augment.",
    "grad_spike": "Gradient-norm spike (> 10) means instability: lower the learning rate (e.g. 1e-4) or keep "
    "max_grad_norm at 1.0.",
    "not_decreasing": "Loss not decreasing: raise the learning rate (e.g. 2e-4), check the data format (clinitune "
    "validate), "
    "confirm parameters are trainable, or increase max_grad_norm.",
}


class Silent:
    """The monitor of ranks other than 0: they train, rank 0 reports."""

    tokens_at_window = 0
    quiet = True

    def __getattr__(self, name):
        return lambda *a, **k: None


class Monitor:
    def __init__(self, run: RunDir, cfg: Config, resume_step: int, quiet: bool, total_steps: int):
        self.run, self.cfg, self.quiet, self.total = run, cfg, quiet, total_steps
        self.path = run.metrics
        self.tokens_at_window = 0
        self.train_losses: list[tuple[int, float]] = []
        self.eval_losses: list[tuple[int, float]] = []
        self.warned: set[str] = set()
        kept = []
        if self.path.is_file():  # a resumed run drops what the crashed run logged after its checkpoint
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line half-written when the run was killed: it is after the checkpoint anyway
                if rec.get("step", 0) <= resume_step:
                    kept.append(line)
                    if "loss" in rec:
                        self.train_losses.append((rec["step"], rec["loss"]))
                    if "eval_loss" in rec:
                        self.eval_losses.append((rec["step"], rec["eval_loss"]))
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.tb = None
        if "tensorboard" in cfg.training.report_to:
            try:
                # Imported here: tensorboard is optional, and without it metrics.jsonl is the record.
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run.tensorboard), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
        self.mlflow = tracking.start(run, cfg) if "mlflow" in cfg.training.report_to else None

    def _write(self, rec: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def note(self, text: str) -> None:
        if self.quiet:
            print(text, flush=True)
        else:
            tqdm.write(text)

    def warn(self, st, kind: str, detail: str) -> None:
        msg = f"warning at step {st.step}: {detail}. {ADVICE[kind]}"
        if kind not in self.warned:
            st.warnings.append(msg)
        self.warned.add(kind)
        tqdm.write(msg) if not self.quiet else print(msg, flush=True)

    def check_grad(self, st, grad_norm: float) -> None:
        if grad_norm > 10:
            self.warn(st, "grad_spike", f"grad_norm {grad_norm:.1f}")

    def log_train(self, st, *, loss, lr, grad_norm, tokens_per_s, peak_rss_mb, bar) -> None:
        rec = {
            "step": st.step,
            "epoch": st.epoch,
            "loss": round(loss, 6),
            "lr": lr,
            "grad_norm": round(grad_norm, 4),
            "tokens_per_s": round(tokens_per_s, 1),
            "peak_rss_mb": round(peak_rss_mb, 1),
        }
        if torch.cuda.is_available():
            rec["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        self._write(rec)
        self.train_losses.append((st.step, loss))
        if self.tb:
            for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
                self.tb.add_scalar(f"train/{k}", rec[k], st.step)
        if self.mlflow:
            self.mlflow.log_metrics(
                {f"train_{k}": rec[k] for k in ("loss", "lr", "grad_norm", "tokens_per_s")}, st.step
            )
        if len(self.train_losses) >= 6:
            first = sum(v for _, v in self.train_losses[:2]) / 2
            last = sum(v for _, v in self.train_losses[-2:]) / 2
            if last >= first:
                self.warn(st, "not_decreasing", f"train loss {last:.3f} is not below its start {first:.3f}")
        if self.quiet:
            print(
                f"step {st.step}/{self.total} loss {loss:.4f} lr {lr:.2e} grad_norm {grad_norm:.2f} tok/s "
                f"{tokens_per_s:.0f}",
                flush=True,
            )
        else:
            bar.set_postfix(
                loss=f"{loss:.3f}",
                eval=f"{self.eval_losses[-1][1]:.3f}" if self.eval_losses else "-",
                tok_s=f"{tokens_per_s:.0f}",
            )

    def log_eval(self, st, eval_loss: float, bar) -> None:
        self._write({"step": st.step, "eval_loss": round(eval_loss, 6)})
        self.eval_losses.append((st.step, eval_loss))
        if self.tb:
            self.tb.add_scalar("eval/loss", eval_loss, st.step)
        if self.mlflow:
            self.mlflow.log_metric("eval_loss", eval_loss, step=st.step)
        recent = [v for _, v in self.train_losses[-3:]]
        if recent and eval_loss > 1.5 * (sum(recent) / len(recent)):
            self.warn(
                st, "overfitting", f"eval_loss {eval_loss:.3f} > 1.5 x train_loss {sum(recent) / len(recent):.3f}"
            )
        if self.quiet:
            print(f"step {st.step}/{self.total} eval_loss {eval_loss:.4f}", flush=True)
        else:
            bar.set_postfix(
                loss=f"{self.train_losses[-1][1]:.3f}" if self.train_losses else "-", eval=f"{eval_loss:.3f}"
            )

    def plot(self) -> Path:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        if self.train_losses:
            ax.plot(*zip(*self.train_losses), label="train loss")
        if self.eval_losses:
            ax.plot(*zip(*self.eval_losses), marker="o", label="eval loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (response tokens)")
        ax.set_title(f"clinitune: {self.cfg.lora.method} on {Path(str(self.cfg.model.name_or_path)).name}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = self.run.loss_plot
        fig.savefig(out)
        plt.close(fig)
        return out

    def finish(self, summary: TrainSummary) -> None:
        if self.tb:
            self.tb.close()
        self.plot()
        curve = Curve(train=list(self.train_losses), eval=list(self.eval_losses))
        card = model_card(self.run, self.cfg, summary, eval_dir=self.run.path / "eval", curve=curve)
        atomic_write_text(self.run.model_card, card)
        if self.mlflow:
            tracking.finish(self.mlflow, self.run)
