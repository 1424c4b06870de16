"""Attention over packed rows, one layer, forward and backward: SDPA with the block mask against per-example paths.

    .venv/bin/python bench/attention_kernels.py [--repeat 5]

SmolLM2-135M's shapes (9 query heads, 3 KV heads, head dim 64) on 4 packed 512-token rows of 3 to 5
examples each, bf16 where the CPU has it. Prints median milliseconds per call, forward alone and forward
plus backward, for:
- sdpa_block_mask: what transformers does for packed rows (SDPA, boolean block-diagonal causal mask);
- sdpa_causal_row: SDPA with is_causal over the whole row (wrong across examples; the kernel's floor);
- sdpa_per_example: one causal SDPA call per example;
- clinitune: models/packed_attention.packed_sdpa, batched matmuls per example.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from clinitune.models.adapt import cpu_has_bf16
from clinitune.models.packed_attention import packed_sdpa

ROWS, HEADS, KV_HEADS, LENGTH, DIM = 4, 9, 3, 512, 64
STARTS = ((0, 140, 300, 420), (0, 200, 350), (0, 100, 230, 380, 470), (0, 160, 330))


class Layer(torch.nn.Module):
    is_causal = True
    num_key_value_groups = HEADS // KV_HEADS


def block_mask() -> torch.Tensor:
    seg = torch.zeros(ROWS, LENGTH, dtype=torch.long)
    for b, starts in enumerate(STARTS):
        for s in starts[1:]:
            seg[b, s:] += 1
    causal = torch.ones(LENGTH, LENGTH, dtype=torch.bool).tril()
    return ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]


def contenders(mask: torch.Tensor) -> dict:
    layer = Layer()

    def per_example(q, k, v):
        rows = []
        for b, starts in enumerate(STARTS):
            ends = (*starts[1:], LENGTH)
            rows.append(
                torch.cat(
                    [
                        F.scaled_dot_product_attention(
                            q[b : b + 1, :, s:e],
                            k[b : b + 1, :, s:e],
                            v[b : b + 1, :, s:e],
                            is_causal=True,
                            enable_gqa=True,
                        )
                        for s, e in zip(starts, ends)
                    ],
                    dim=2,
                )
            )
        return torch.cat(rows)

    return {
        "sdpa_block_mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True),
        "sdpa_causal_row": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
        "sdpa_per_example": per_example,
        "clinitune": lambda q, k, v: packed_sdpa(layer, q, k, v, None, segments=STARTS)[0],
    }


def timed(fn, dtype, repeat: int, backward: bool) -> float:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(ROWS, HEADS, LENGTH, DIM, generator=g).to(dtype).requires_grad_()
    k = torch.randn(ROWS, KV_HEADS, LENGTH, DIM, generator=g).to(dtype).requires_grad_()
    v = torch.randn(ROWS, KV_HEADS, LENGTH, DIM, generator=g).to(dtype).requires_grad_()
    out = []
    for i in range(repeat + 2):  # two warm-up calls
        t = time.perf_counter()
        o = fn(q, k, v)
        if backward:
            o.float().sum().backward()
        if i >= 2:
            out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    threads = torch.get_num_threads()
    print(f"{ROWS} rows x {LENGTH} tokens, {HEADS}/{KV_HEADS} heads, dim {DIM}, {dtype}, {threads} threads")
    print("| path | forward ms | forward + backward ms |\n|---|---|---|")
    for name, fn in contenders(block_mask()).items():
        fwd, both = timed(fn, dtype, a.repeat, False), timed(fn, dtype, a.repeat, True)
        print(f"| {name} | {fwd:.1f} | {both:.1f} |")


if __name__ == "__main__":
    main()
