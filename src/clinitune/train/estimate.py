"""`clinitune estimate`: peak memory and time per epoch for a config, before spending them.

Memory = process baseline + frozen weights + trainable weights, gradients and AdamW states +
activations (Korthikanti et al. 2022: s*b*h*(34 + 5*a*s/h) bytes per layer at 16-bit, or 2*s*b*h
per layer with checkpointing) + the chunked fp32 logits. Time = training FLOPs / achieved FLOP/s,
the latter from a short GEMM measured here (x an assumed utilisation), or from real steps (--measure).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import torch
from transformers import AutoModelForCausalLM

from ..config import Config
from ..data.example import load as load_examples
from ..data.tokenize import tokenize
from ..errors import ClinituneError
from ..layout import RunDir
from ..models.adapt import plan as make_plan
from ..models.loading import load_model_config, load_tokenizer
from ..models.registry import resolve_model
from .loop import train
from .loss import CE_CHUNK

BASELINE_MB = 1100  # python + torch + transformers + peft, measured RSS before the model loads
ASSUMED_MFU = 0.3
OOM_REMEDIES = [
    "Enable gradient checkpointing (training.gradient_checkpointing: true)",
    "Reduce batch size (training.per_device_train_batch_size)",
    "Increase gradient accumulation (training.gradient_accumulation_steps) to keep the effective batch",
    "Use QLoRA instead of LoRA (lora.method: qlora, CUDA)",
    "Reduce LoRA rank (lora.r)",
    "Use a smaller model",
]
SPEC_TABLE = [
    (3e9, "1-3B", "4-6GB", "12-16GB", "2-4 hrs"),
    (7e9, "7B", "8-12GB", "24-32GB", "4-8 hrs"),
    (13e9, "13B", "12-16GB", "40-48GB", "8-16 hrs"),
    (float("inf"), "70B+", "24GB+", "140GB+", "24+ hrs"),
]


def spec_row(n_params: int) -> dict:
    """The spec's hardware table row for a model of this size."""
    size, qlora, full, hours = next((s, q, f, h) for limit, s, q, f, h in SPEC_TABLE if n_params <= limit * 1.15)
    return {"model_size": size, "vram_qlora": qlora, "vram_full": full, "training_time": hours}


def _meta_model(model_dir, trust_remote_code: bool):
    cfg = load_model_config(model_dir, trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg), cfg


def gemm_peak_gflops(dtype: torch.dtype = torch.bfloat16, n: int = 1536, reps: int = 4) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


@dataclass
class Estimate:
    """What `clinitune estimate` predicts for a config, before any weights load."""

    model: str
    params: int
    trainable_params: int
    device: str
    memory_mb: dict[str, int]  # baseline, weights, trainable_fp32, gradients, adamw_states, activations, logits
    predicted_peak_mb: int
    available_mb: int | None
    fits: bool
    tokens_per_epoch: int | None
    tokens_per_s: float
    seconds_per_epoch: float | None
    time_source: str
    spec_hardware_row: dict[str, str]
    flops_per_token: float = 0.0  # model FLOPs a trained token costs: (4 for LoRA, 6 for full) x parameters
    gemm_peak_gflops: float | None = None  # measured here on a CPU; None where the rate was measured instead

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(cfg: Config, measured_tokens_per_s: float | None = None) -> Estimate:
    """Memory from the architecture, time from a GEMM measured here, or from `measured_tokens_per_s`
    (real steps: train.loop.measure_tokens_per_s)."""
    t = cfg.training
    model_dir = resolve_model(cfg.model.name_or_path, allow_pickle=cfg.model.allow_pickle)
    meta, mcfg = _meta_model(model_dir, cfg.model.trust_remote_code)
    n_params = sum(p.numel() for p in meta.parameters())
    p = make_plan(cfg)
    wbytes = 0.56 if p.four_bit else torch.finfo(p.weight_dtype).bits / 8
    h, L, a = mcfg.hidden_size, mcfg.num_hidden_layers, mcfg.num_attention_heads
    s, b = cfg.data.max_seq_length, t.per_device_train_batch_size
    if cfg.lora.method == "full":
        n_train = n_params
    else:
        targets = cfg.lora.target_modules
        n_train = sum(
            cfg.lora.r * (m.in_features + m.out_features)
            for name, m in meta.named_modules()
            if isinstance(m, torch.nn.Linear)
            and "lm_head" not in name
            and (targets == "all-linear" or name.rsplit(".", 1)[-1] in targets)
        )
    act_bytes = 2 if p.compute_dtype is not None else 4
    per_layer = (2 * s * b * h) if t.gradient_checkpointing else s * b * h * (34 + 5 * a * s / h)
    activations = per_layer * act_bytes / 2 * L
    logits = min(CE_CHUNK, s * b) * mcfg.vocab_size * (4 + 2)  # fp32 chunk logits and their bf16 gradient
    mb = lambda x: round(x / 2**20)  # noqa: E731
    parts = {
        "baseline": BASELINE_MB,
        "weights": mb(n_params * wbytes),
        "trainable_fp32": mb(n_train * 4),
        "gradients": mb(n_train * 4),
        "adamw_states": mb(n_train * 8),
        "activations": mb(activations),
        "logits": mb(logits),
    }
    if cfg.lora.method == "full" and p.weight_dtype == torch.float32:
        parts["weights"] = 0  # the fp32 weights are the trainable ones
    peak = sum(parts.values())

    # Time: tokens per epoch from the real data, FLOPs per token from the parameter count.
    tokens = None
    if cfg.data.train:
        tok = load_tokenizer(model_dir, cfg.model.trust_remote_code)
        data = tokenize(tok, load_examples(cfg.data.train), cfg.data.max_seq_length)
        tokens = sum(len(x) for x in data.input_ids)
    flops_per_token = (6 if cfg.lora.method == "full" else 4) * n_params
    peak_gflops = None
    if measured_tokens_per_s is not None:
        tps = measured_tokens_per_s
        source = "measured over real training steps"
    else:
        peak_gflops = gemm_peak_gflops(p.compute_dtype or torch.float32) if p.device == "cpu" else 100_000.0
        tps = peak_gflops * 1e9 * ASSUMED_MFU / flops_per_token
        source = f"predicted at {ASSUMED_MFU:.0%} of a {peak_gflops:.0f} GFLOP/s GEMM measured here"
    epoch_s = tokens / tps if tokens else None
    avail = _available_mb(p.device)
    return Estimate(
        model=str(model_dir),
        params=n_params,
        trainable_params=n_train,
        device=p.device,
        memory_mb=parts,
        predicted_peak_mb=peak,
        available_mb=avail,
        fits=avail is None or peak < avail,
        tokens_per_epoch=tokens,
        tokens_per_s=round(tps, 1),
        seconds_per_epoch=round(epoch_s, 1) if epoch_s else None,
        time_source=source,
        flops_per_token=flops_per_token,
        gemm_peak_gflops=round(peak_gflops, 1) if peak_gflops and p.device == "cpu" else None,
        spec_hardware_row=spec_row(n_params),
    )


def _available_mb(device: str) -> int:
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free // 2**20
    return psutil.virtual_memory().available // 2**20


def refuse_if_too_big(est: Estimate) -> None:
    if not est.fits:
        remedies = "\n  ".join(f"{i}. {r}" for i, r in enumerate(OOM_REMEDIES, 1))
        raise ClinituneError(
            f"predicted peak memory {est.predicted_peak_mb} MB exceeds the {est.available_mb} MB available on "
            f"{est.device}. Remedies, in order:\n  {remedies}\nor pass --force to try anyway."
        )


def format_estimate(e: Estimate) -> str:
    lines = [
        f"model {e.model}: {e.params:,} parameters, {e.trainable_params:,} trainable, on {e.device}",
        "memory (MB):",
    ]
    lines += [f"  {k:<16}{v:>8}" for k, v in e.memory_mb.items()]
    lines.append(f"  {'predicted peak':<16}{e.predicted_peak_mb:>8}   (available: {e.available_mb})")
    if e.seconds_per_epoch:
        lines.append(
            f"time: {e.tokens_per_epoch:,} tokens per epoch at {e.tokens_per_s:,} tokens/s = "
            f"{e.seconds_per_epoch / 60:.1f} min per epoch ({e.time_source})"
        )
    r = e.spec_hardware_row
    lines.append(
        f"spec hardware table ({r['model_size']}): QLoRA {r['vram_qlora']} VRAM, full {r['vram_full']}, "
        f"{r['training_time']}"
    )
    return "\n".join(lines)


def measure_tokens_per_s(cfg: Config, steps: int = 3) -> float:
    """Training tokens per second over a few real steps (the first, which pays for warm-up, left out)."""
    with tempfile.TemporaryDirectory(prefix="clinitune-measure-") as tmp:
        c = cfg.model_copy(deep=True)
        c.training.output_dir = tmp
        c.training.max_steps = steps + 1
        c.training.logging_steps = 1
        c.training.eval_steps = 10**6
        c.training.save_steps = 10**6
        c.data.eval = None
        train(c, quiet=True)
        rows = [json.loads(line) for line in RunDir(Path(tmp)).metrics.read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]
    if not speeds:
        raise ClinituneError("--measure: no steps completed")
    return sum(speeds) / len(speeds)
