"""Completion-only next-token loss with a fused, chunked lm_head + cross-entropy.

The vocabulary projection is the largest activation in a small model's step (SmolLM2: 49k x fp32
per token). The loss here runs the head only on response positions, a chunk at a time, and
computes the gradients of the head's input (and weight, when it trains) in the same pass, so fp32
logits never outlive their chunk and nothing is recomputed in backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..data.tokenize import IGNORE
from ..models.packed_attention import packed_hidden

CE_CHUNK = 128  # response tokens per head chunk: bounds fp32 logits to CHUNK x vocab


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return t.dtype


class _LinearCE(torch.autograd.Function):
    """sum_i CE(h_i W^T, y_i); backward reuses the gradients computed in forward."""

    @staticmethod
    def forward(ctx, h, weight, y, chunk: int):
        dt = _compute_dtype(h)
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        w = weight.to(dt)
        with torch.autocast(h.device.type, enabled=False):
            for i in range(0, y.numel(), chunk):
                hc, yc = h[i : i + chunk].to(dt), y[i : i + chunk]
                logits = (hc @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
                if want_h or want_w:
                    logits.sub_(lse[:, None]).exp_()  # softmax, in place
                    logits[torch.arange(yc.numel(), device=yc.device), yc] -= 1.0
                    d = logits.to(dt)
                    if want_h:
                        grad_h[i : i + chunk] = (d @ w).to(h.dtype)
                    if want_w:
                        grad_w += (d.t() @ hc).float()
                del logits
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, g):
        grad_h, grad_w = ctx.saved_tensors
        return (
            grad_h * g.to(grad_h.dtype) if grad_h is not None else None,
            (grad_w * g).to(ctx.weight_dtype) if grad_w is not None else None,
            None,
            None,
        )


def _fusable(head, model) -> bool:
    cfg = getattr(model, "config", None)
    return (
        type(head) is torch.nn.Linear
        and head.bias is None
        and not getattr(cfg, "final_logit_softcapping", None)
        and not getattr(cfg, "logit_scale", None)
    )


def decoder_and_head(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base, base.get_decoder(), base.get_output_embeddings()


def _ce_plain(head, h, y):
    return F.cross_entropy(head(h).float(), y, reduction="sum")


def head_loss(base, head, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.numel() == 0:
        return h.sum() * 0.0
    if _fusable(head, base):
        return _LinearCE.apply(h, head.weight, y, CE_CHUNK)
    # Heads we cannot fuse (a LoRA-wrapped head, a bias, soft-capped logits) go through autograd, chunked and
    # checkpointed.
    total = h.new_zeros((), dtype=torch.float32)
    for i in range(0, y.numel(), CE_CHUNK):
        hc, yc = h[i : i + CE_CHUNK], y[i : i + CE_CHUNK]
        total = total + (
            checkpoint(_ce_plain, head, hc, yc, use_reentrant=False)
            if torch.is_grad_enabled()
            else _ce_plain(head, hc, yc)
        )
    return total


def _forward(model, batch: dict, device: str):
    base, _, head = decoder_and_head(model)
    hidden = packed_hidden(base, batch["input_ids"].to(device), batch["position_ids"].to(device))
    targets = batch["labels"][:, 1:].to(device)
    return base, head, hidden[:, :-1], targets, targets != IGNORE


def loss_sum(model, batch: dict, device: str) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over response tokens only, and their count."""
    base, head, hidden, targets, keep = _forward(model, batch, device)
    return head_loss(base, head, hidden[keep], targets[keep]), int(keep.sum())
