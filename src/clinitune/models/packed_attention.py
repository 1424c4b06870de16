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
import torch.nn.functional as F
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


def block_attention(q, k, v, upper, scale: float, dropout: float) -> torch.Tensor:
    """Causal attention within one example: q [H, n, D], k and v [Hkv, n, D] -> [H, n, D]. As HF's eager
    attention computes it (scores in the compute dtype, softmax in fp32), with the query heads of one KV
    head as a batch dimension instead of copies of K and V."""
    hkv, n, d = k.shape
    scores = (q.reshape(hkv, -1, n, d) * scale) @ k.unsqueeze(1).transpose(-1, -2)  # [Hkv, G, n, n]
    probs = scores.float().masked_fill(upper[:n, :n], float("-inf")).softmax(-1).to(v.dtype)
    if dropout:
        probs = F.dropout(probs, dropout)
    return (probs @ v.unsqueeze(1)).reshape(-1, n, v.shape[-1])


def packed_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, segments=None, **kwargs):
    """HF's attention-function signature: query [B, H, L, D], key and value [B, Hkv, L, D]; returns [B, L, H, D].

    Each example is a few hundred tokens, where SDPA's CPU flash kernel is far from the GEMM peak
    (bench/train_ab.py): plain batched matmuls per example run the forward and backward in half its time."""
    length = query.shape[2]
    if (
        segments is None
        or key.shape[2] != length
        or not getattr(module, "is_causal", True)
        or any(kwargs.get(k) is not None for k in UNSUPPORTED)
        or (kwargs.get("sliding_window") or length) < length
    ):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    upper = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
    rows = []
    for b, starts in enumerate(segments):
        ends = (*starts[1:], length)
        blocks = [
            block_attention(query[b, :, s:e], key[b, :, s:e], value[b, :, s:e], upper, scale, dropout)
            for s, e in zip(starts, ends)
        ]
        rows.append(torch.cat(blocks, dim=1))
    return torch.stack(rows).transpose(1, 2).contiguous(), None


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
