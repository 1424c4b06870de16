"""LoRA linear layers computed in one autograd node: base GEMM, then x·A and (x·A)·(s·B) accumulated into it.

PEFT's LoRA forward is `base(x) + lora_B(lora_A(dropout(x))) * scaling`, after casting x to the adapter's
dtype. On a CPU under bf16 autocast that is, per layer and token, a cast of x to fp32 and back, a
multiply and an add over the output, and in backward the same multiply again and an add of the two input
gradients: memory-bound passes over the largest activations, between GEMMs. Here the scaling is folded
into B (an r x out matrix), the LoRA product is accumulated into the base output by `addmm_`, and the
backward accumulates both input gradients into one buffer the same way, so every op left is a GEMM.

Only plain LoRA on a plain `nn.Linear` is fused: no dropout, no DoRA or other variant, one active adapter,
not merged, not sharded. Anything else keeps PEFT's forward (the `fused` count says how many were).
"""

from __future__ import annotations

import types

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch.distributed.tensor import DTensor


def _compute_dtype(device: str, dtype: torch.dtype) -> torch.dtype:
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else dtype


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + (x A^T)(s B)^T, with x, W, A, B already in the compute dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xa = x2 @ lora_a.t()
        sb = lora_b * scaling
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
        y.addmm_(xa, sb.t())
        ctx.save_for_backward(x2, xa, weight, lora_a, sb)
        ctx.scaling, ctx.shape = scaling, shape
        ctx.want_bias = bias is not None and ctx.needs_input_grad[2]
        return y.reshape(*shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, xa, weight, lora_a, sb = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(x2.dtype)
        g_xa = g @ sb  # tokens x r
        grad_x = grad_w = grad_b = grad_a = grad_b_lora = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(g_xa, lora_a).reshape(ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_w = g.t() @ x2
        if ctx.want_bias:
            grad_b = g.sum(0)
        if ctx.needs_input_grad[3]:
            grad_a = g_xa.t() @ x2
        if ctx.needs_input_grad[4]:
            grad_b_lora = (g.t() @ xa) * ctx.scaling
        return grad_x, grad_w, grad_b, grad_a, grad_b_lora, None


def _forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """A fused module's forward; any call PEFT's own forward handles differently goes to it."""
    active = self.active_adapters
    if args or kwargs or self.disable_adapters or self.merged or len(active) != 1:
        return self.peft_forward(x, *args, **kwargs)
    name = active[0]
    base = self.base_layer
    dt = _compute_dtype(x.device.type, x.dtype)
    cast = lambda t: None if t is None else t.to(dt)  # noqa: E731
    with torch.autocast(x.device.type, enabled=False):
        return _LoraLinear.apply(
            x.to(dt),
            cast(base.weight),
            cast(base.bias),
            cast(self.lora_A[name].weight),
            cast(self.lora_B[name].weight),
            float(self.scaling[name]),
        )


def fusable(module) -> bool:
    if type(module) is not LoraLinear or type(module.base_layer) is not torch.nn.Linear or len(module.lora_A) != 1:
        return False
    name = module.active_adapters[0]
    return (
        not module.lora_variant
        and not getattr(module, "lora_bias", {}).get(name)
        and isinstance(module.lora_dropout[name], torch.nn.Identity)
        and not isinstance(module.base_layer.weight, DTensor)
    )


def fuse_lora(model) -> int:
    """Give every fusable LoRA linear of `model` the fused forward; returns how many."""
    n = 0
    for module in model.modules():
        if fusable(module):
            module.peft_forward = module.forward
            module.forward = types.MethodType(_forward, module)
            n += 1
    return n
