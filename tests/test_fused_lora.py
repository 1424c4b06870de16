"""The fused LoRA layer computes what PEFT's does: the same outputs and the same gradients."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from clinitune.train.fused_lora import fuse_lora


def _pair(tiny_llama, dropout: float = 0.0):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM")
    peft = get_peft_model(base, cfg)
    for n, p in peft.named_parameters():  # B starts at zero: give it values, or its product is trivially equal
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return peft, copy.deepcopy(peft)


def _loss_and_grads(model, ids, autocast: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("autocast", [False, True])
def test_fused_lora_matches_peft_outputs_and_gradients(tiny_llama, autocast):
    plain, fused = _pair(tiny_llama)
    n = fuse_lora(fused)
    linears = sum(1 for m in plain.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A"))
    assert n == linears > 0
    ids = torch.randint(0, plain.config.vocab_size, (2, 24))
    loss_p, grads_p = _loss_and_grads(plain, ids, autocast)
    loss_f, grads_f = _loss_and_grads(fused, ids, autocast)
    tol = 2e-2 if autocast else 1e-5  # bf16 sums in another order
    assert torch.allclose(loss_p, loss_f, rtol=tol, atol=tol)
    assert grads_p.keys() == grads_f.keys() and any("lora_A" in k for k in grads_p)
    for k in grads_p:
        scale = grads_p[k].abs().max().clamp_min(1e-6)
        assert (grads_p[k] - grads_f[k]).abs().max() / scale < (5e-2 if autocast else 1e-4), k


def test_dropout_keeps_peft_forward(tiny_llama):
    _, model = _pair(tiny_llama, dropout=0.1)
    assert fuse_lora(model) == 0
