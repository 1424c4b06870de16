"""The optimizer and its schedule: AdamW (or 8-bit AdamW on CUDA) with LoRA+ groups, and four LR shapes."""

from __future__ import annotations

import logging
import math

import torch

from ..config import Config

log = logging.getLogger(__name__)


def lr_lambda(kind: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        if kind == "warmup_stable_decay":  # full rate until the last 20 % of steps, then linear to zero
            decay = max(1, round(0.2 * (total - warmup)))
            return min(1.0, max(0.0, (total - step) / decay))
        progress = min(1.0, (step - warmup) / max(1, total - warmup))  # past the end: stays at the end
        return max(0.0, 0.5 * (1 + math.cos(math.pi * progress))) if kind == "cosine" else max(0.0, 1 - progress)

    return f


def make_optimizer(cfg: Config, model, device: str):
    t = cfg.training
    # B starts at zero, so at A's learning rate it grows slowly; LoRA+ (Hayou et al. 2024) gives it a larger one.
    ratio = cfg.lora.loraplus_lr_ratio
    decay, no_decay, lora_b = [], [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            if ratio and ".lora_B." in n:
                lora_b.append(p)
            else:
                (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": lora_b, "weight_decay": t.weight_decay, "lr": t.learning_rate * (ratio or 1.0)},
    ]
    groups = [g for g in groups if g["params"]]
    if t.optim in ("paged_adamw_8bit", "adamw_8bit"):
        if device != "cuda":
            log.warning("training.optim=%s needs CUDA; using adamw_torch on this CPU", t.optim)
        else:
            # Imported here: bitsandbytes exists only on CUDA machines.
            import bitsandbytes as bnb

            cls = bnb.optim.PagedAdamW8bit if t.optim == "paged_adamw_8bit" else bnb.optim.AdamW8bit
            return cls(groups, lr=t.learning_rate)
    return torch.optim.AdamW(groups, lr=t.learning_rate, fused=device == "cuda")
