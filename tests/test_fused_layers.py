"""The fused RMSNorm and SwiGLU nodes compute what the models' own forwards compute, gradients included."""

import copy

import pytest
import torch
from conftest import tiny_model_dir

from clinitune.models.loading import load_causal_lm
from clinitune.models.packed_attention import packed_hidden
from clinitune.train.fused_layers import fuse_layers


def _run(model, ids, pos, autocast: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        h = packed_hidden(model, ids, pos)
    (h.float().square().mean()).backward()
    return h.detach().float(), {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral", "qwen3"])
def test_fused_norms_and_mlps_match_the_models_own_code(tmp_path, model_type):
    model = load_causal_lm(tiny_model_dir(tmp_path / model_type, model_type))
    ref = copy.deepcopy(model)
    layers = model.config.num_hidden_layers
    norms_per_layer = 4 if model_type == "qwen3" else 2  # qwen3 also normalizes q and k per head
    assert fuse_layers(model) == layers * (norms_per_layer + 1) + 1  # and the final norm
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (2, 20), generator=g)
    pos = torch.tensor([list(range(12)) + list(range(8)), list(range(20))])
    (h, grads), (h_ref, grads_ref) = _run(model, ids, pos, False), _run(ref, ids, pos, False)
    assert torch.allclose(h, h_ref, atol=1e-5, rtol=1e-4)
    assert grads.keys() == grads_ref.keys() and any("norm" in k for k in grads)  # norm weights train here
    for k in grads:
        assert torch.allclose(grads[k], grads_ref[k], atol=1e-5, rtol=1e-3), k


def test_fused_layers_under_bf16_weights_and_autocast_stay_close(tmp_path):
    model = load_causal_lm(tiny_model_dir(tmp_path / "llama"), dtype="bfloat16")
    for p in model.parameters():  # a LoRA-like setup: frozen 16-bit body, one trainable fp32 input
        p.requires_grad_(False)
    ref = copy.deepcopy(model)
    fuse_layers(model)
    ids = torch.randint(3, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    pos = torch.arange(16).repeat(2, 1)
    outs = []
    for m in (model, ref):
        emb = m.get_input_embeddings().weight
        x = emb[ids].float().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = m.get_decoder()(inputs_embeds=x, position_ids=pos, use_cache=False).last_hidden_state
        h.float().square().mean().backward()
        outs.append((h.float(), x.grad))
    (h, gx), (h_ref, gx_ref) = outs
    assert h.dtype == h_ref.dtype
    assert (h - h_ref).abs().max() / h_ref.abs().max() < 1e-2
    assert (gx - gx_ref).abs().max() / gx_ref.abs().max() < 2e-2


def test_other_norms_keep_their_own_forward(tmp_path):
    model = load_causal_lm(tiny_model_dir(tmp_path / "gemma", "gemma"))  # (1 + weight), in fp32 throughout
    assert fuse_layers(model) == 0
