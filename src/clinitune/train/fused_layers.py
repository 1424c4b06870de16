"""RMSNorm and the SwiGLU activation as single autograd nodes that keep only their 16-bit inputs.

HF's RMSNorm upcasts its input to fp32 and multiplies in separate ops, and autograd keeps each op's
inputs: per norm and token, an fp32 copy of the hidden state and a 16-bit normalized one. `silu(gate) *
up` keeps gate, up and silu(gate). On a CPU, where a step's elementwise passes run at memory speed
(bench/results/train_profile.md), these are the largest activations after attention's. Here each norm
keeps its input and an fp32 scalar per token, the activation keeps gate and up, and backward recomputes
the rest in the same pass that needs it. The arithmetic is the models' own (tests/test_fused_layers.py
compares outputs and gradients), in the same dtypes.

Only the norms and MLPs of the families listed are fused, identified by class: their code is the
formula below. Anything else keeps its own forward.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

# The classes whose forward is `weight * (x.float() * rsqrt(mean(x.float()^2) + eps)).to(x.dtype)`.
RMS_NORMS = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Phi3RMSNorm"}
# The classes whose forward is `down_proj(act_fn(gate_proj(x)) * up_proj(x))`; fused when act_fn is SiLU.
GATED_MLPS = {"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"}


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps: float):
        x32 = x.float()
        rstd = torch.rsqrt(x32.square().mean(-1, keepdim=True).add_(eps))
        h = (x32 * rstd).to(x.dtype)
        ctx.save_for_backward(x, weight, rstd)
        return weight * h

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        grad_w = None
        if ctx.needs_input_grad[1]:
            h = xhat.to(x.dtype)
            grad_w = (grad * h).reshape(-1, h.shape[-1]).sum(0).to(weight.dtype)
        gh = (grad * weight).float()
        # d/dx of x * rstd(x): rstd * (gh - xhat * mean(gh * xhat))
        proj = (gh * xhat).mean(-1, keepdim=True)
        grad_x = gh.sub_(xhat.mul_(proj)).mul_(rstd).to(x.dtype)
        return grad_x, grad_w, None


class _SiluMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up):
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad):
        gate, up = ctx.saved_tensors
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up


def _norm_forward(self, x: torch.Tensor) -> torch.Tensor:
    return _RMSNorm.apply(x, self.weight, float(self.variance_epsilon))


def _mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(_SiluMul.apply(self.gate_proj(x), self.up_proj(x)))


def _silu(module) -> bool:
    act = getattr(module, "act_fn", None)
    return isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"


def fuse_layers(model) -> int:
    """Give every known RMSNorm and SiLU-gated MLP of `model` the fused forward; returns how many."""
    n = 0
    for module in model.modules():
        name = type(module).__name__
        if name in RMS_NORMS:
            module.forward = types.MethodType(_norm_forward, module)
            n += 1
        elif name in GATED_MLPS and _silu(module):
            module.forward = types.MethodType(_mlp_forward, module)
            n += 1
    return n
