"""Per-example attention over packed rows computes what SDPA with the block-diagonal mask computes."""

import copy

import pytest
import torch
from conftest import tiny_model_dir

from clinitune.data.tokenize import Row, collate
from clinitune.models.loading import load_causal_lm
from clinitune.models.packed_attention import NAME, packed_hidden, segments


def _rows(vocab: int) -> dict:
    g = torch.Generator().manual_seed(0)
    rows = []
    for lengths in ((7, 12, 5), (20,), (3, 3, 9, 4)):
        r = Row()
        for n in lengths:
            r.ids += torch.randint(3, vocab, (n,), generator=g).tolist()
            r.labels += r.ids[-n:]
            r.positions += list(range(n))
        rows.append(r)
    return collate(rows, pad_id=0)  # rows of 24, 20 and 19 tokens: two are padded to 24


def test_segments_start_where_positions_restart():
    batch = _rows(50)
    assert segments(batch["position_ids"]) == ((0, 7, 19), (0, 20), (0, 3, 6, 15, 19))


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral"])
def test_packed_attention_matches_sdpa_with_the_block_mask(tmp_path, model_type, monkeypatch):
    import clinitune.models.packed_attention as P

    model = load_causal_lm(tiny_model_dir(tmp_path / model_type, model_type))
    assert model.config._attn_implementation == NAME
    fallbacks = []
    sdpa = P.sdpa_attention_forward
    monkeypatch.setattr(P, "sdpa_attention_forward", lambda *a, **k: fallbacks.append(1) or sdpa(*a, **k))
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("sdpa")
    batch = _rows(model.config.vocab_size)
    outs = []
    for m, packed in ((model, True), (ref, False)):
        m.zero_grad(set_to_none=True)
        if packed:
            h = packed_hidden(m, batch["input_ids"], batch["position_ids"])
        else:  # without a cache, HF builds the block-diagonal causal mask from the restarting positions
            h = m.get_decoder()(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            ).last_hidden_state
        (h.float().square().mean()).backward()
        outs.append((h.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (h_p, g_p), (h_r, g_r) = outs
    assert not fallbacks  # every layer took the per-example path (mistral's 4096 window is longer than the rows)
    assert torch.allclose(h_p, h_r, atol=1e-5, rtol=1e-4)
    assert g_p.keys() == g_r.keys()
    for k in g_p:
        assert torch.allclose(g_p[k], g_r[k], atol=1e-5, rtol=1e-3), k


def test_each_example_in_a_row_sees_only_itself(tiny_llama):
    model = load_causal_lm(tiny_llama).eval()
    batch = _rows(model.config.vocab_size)
    with torch.no_grad():
        h = packed_hidden(model, batch["input_ids"], batch["position_ids"])
        alone = model.get_decoder()(input_ids=batch["input_ids"][2:3, 6:15]).last_hidden_state
    assert torch.allclose(h[2:3, 6:15], alone, atol=1e-5, rtol=1e-4)


def test_generation_keeps_sdpa_with_its_padding_mask(tiny_llama):
    model = load_causal_lm(tiny_llama).eval()
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("sdpa")
    ids = torch.randint(3, model.config.vocab_size, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding, as batched generation writes it
    with torch.no_grad():
        a = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
        b = ref.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
    assert torch.equal(a, b)


def test_packed_attention_under_bf16_autocast_stays_close_to_sdpa(tiny_llama):
    model = load_causal_lm(tiny_llama).eval()
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("sdpa")
    batch = _rows(model.config.vocab_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        h = packed_hidden(model, batch["input_ids"], batch["position_ids"]).float()
        r = ref.get_decoder()(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state.float()
    assert (h - r).abs().max() / r.abs().max() < 2e-2  # bf16 scores, as HF's eager attention rounds them
