"""Attention over packed rows, one causal block per example.

A packed row holds several examples, its positions restarting at 0 at each one. HF's SDPA path gives
such a row a block-diagonal causal mask over the whole row, and SDPA computes every score under a mask:
a 512-token row of 3.5 examples costs 512 x 512 scores where the examples need about 3.5 x 146^2 / 2,
a seventh of that. Here each example attends within itself, its own small causal block. The attention
is the same (tests/test_packed_attention.py checks outputs and gradients against SDPA).

Only a forward that passes `segments` (through `packed_hidden`) takes this path: training and the
teacher-forced losses of eval. Every other call (generation, with its padding masks and KV cache) is
HF's SDPA unchanged, with SDPA's own mask.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "clinitune_packed"
# Attention variants this path does not implement: with any of them set, SDPA runs instead. A sliding
# window at least as long as the row changes nothing, so only a shorter one counts (Mistral's is 4096).
UNSUPPORTED = ("softcap", "position_bias", "s_aux")


def segments(position_ids: torch.Tensor) -> tuple[tuple[int, ...], ...]:
    """Per row, where each example starts: its positions restart at 0 (a row's padding is one more)."""
    return tuple(tuple(torch.nonzero(row == 0).flatten().tolist()) for row in position_ids)


def _probs(q, k, upper, scale: float) -> torch.Tensor:
    """One example's attention probabilities, fp32: q [Hkv, G, n, D] (the query heads of each KV head as a
    batch dimension instead of copies of K), k [Hkv, n, D] -> [Hkv, G, n, n]. Scores in the compute dtype and
    the softmax in fp32, as HF's eager attention computes them."""
    n = k.shape[1]
    scores = (q * scale) @ k.unsqueeze(1).transpose(-1, -2)
    return scores.masked_fill_(upper[:n, :n], float("-inf")).softmax(-1, dtype=torch.float32)


def _blocks(segments, length: int):
    for b, starts in enumerate(segments):
        for s, e in zip(starts, (*starts[1:], length)):
            yield b, s, e


class _PackedAttention(torch.autograd.Function):
    """Causal attention within each example of packed rows, as one autograd node.

    Backward recomputes each example's probabilities from q and k instead of keeping them: they are the
    largest activation of a step (heads x n^2 fp32 per example, per layer), and recomputing them is one
    small matmul and a softmax. Forward and backward write their results into whole-row tensors, so no
    per-example slice costs a zero-filled row-sized gradient in backward."""

    @staticmethod
    def forward(ctx, q, k, v, segments, scale: float):
        batch, heads, length, dim = q.shape
        hkv = k.shape[1]
        out = q.new_empty(batch, length, heads, dim)
        upper = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
        with torch.autocast(q.device.type, enabled=False):
            for b, s, e in _blocks(segments, length):
                qb = q[b, :, s:e].reshape(hkv, -1, e - s, dim)
                p = _probs(qb, k[b, :, s:e], upper, scale).to(v.dtype)
                out[b, s:e] = (p @ v[b, :, s:e].unsqueeze(1)).reshape(heads, e - s, dim).transpose(0, 1)
        ctx.save_for_backward(q, k, v)
        ctx.segments, ctx.scale, ctx.upper = segments, scale, upper
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors
        _, heads, length, dim = q.shape
        hkv = k.shape[1]
        scale = ctx.scale
        grad = grad.to(q.dtype)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        upper = ctx.upper
        with torch.autocast(q.device.type, enabled=False):
            for b, s, e in _blocks(ctx.segments, length):
                n = e - s
                qb, kb, vb = q[b, :, s:e].reshape(hkv, -1, n, dim), k[b, :, s:e], v[b, :, s:e]
                p32 = _probs(qb, kb, upper, scale)
                go = grad[b, s:e].transpose(0, 1).reshape(hkv, -1, n, dim)
                dv[b, :, s:e] = (p32.to(v.dtype).transpose(-1, -2) @ go).sum(1)
                dp = (go @ vb.unsqueeze(1).transpose(-1, -2)).float()
                ds = (p32 * (dp - (dp * p32).sum(-1, keepdim=True))).to(q.dtype)
                dq[b, :, s:e] = (ds @ kb.unsqueeze(1)).reshape(heads, n, dim) * scale
                dk[b, :, s:e] = (ds.transpose(-1, -2) @ (qb * scale)).sum(1)
        return dq, dk, dv, None, None


def packed_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, segments=None, **kwargs):
    """HF's attention-function signature: query [B, H, L, D], key and value [B, Hkv, L, D]; returns [B, L, H, D].

    Each example is a few hundred tokens, where SDPA's CPU flash kernel is far from the GEMM peak
    (bench/attention_kernels.py): plain batched matmuls per example run the forward and backward in half its
    time. Attention dropout (no model this project trains uses it) takes SDPA."""
    length = query.shape[2]
    if (
        segments is None
        or key.shape[2] != length
        or not getattr(module, "is_causal", True)
        or dropout
        or any(kwargs.get(k) is not None for k in UNSUPPORTED)
        or (kwargs.get("sliding_window") or length) < length
    ):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    dt = query.dtype
    return _PackedAttention.apply(query, key.to(dt), value.to(dt), segments, scale), None


AttentionInterface.register(NAME, packed_sdpa)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_packed_attention(model) -> None:
    """Switch a model on SDPA to this attention (SDPA itself, except where a forward passes segments)."""
    if model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(NAME)


def packed_hidden(model, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden states for packed rows: [B, L, d]. `model` is a PreTrainedModel (not a PEFT
    wrapper); positions restart at 0 at each example, as data.tokenize.collate writes them."""
    extra = {"segments": segments(position_ids)} if model.config._attn_implementation == NAME else {}
    return model.get_decoder()(
        input_ids=input_ids, position_ids=position_ids, use_cache=False, **extra
    ).last_hidden_state
