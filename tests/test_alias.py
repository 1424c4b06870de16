"""The embedded SmolLM2-135M-Instruct: materialized once, offline, trainable, a cache hit afterwards."""

import json
import time

from clinitune.models.loading import load_causal_lm, load_tokenizer
from clinitune.models.registry import resolve_model


def test_alias_materializes_offline_and_is_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_model("smollm2-135m-instruct")
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["model_type"] == "llama"
    assert list(path.glob("*.safetensors"))

    t = time.perf_counter()
    assert resolve_model("smollm2-135m-instruct") == path
    assert time.perf_counter() - t < 10

    tok = load_tokenizer(path)
    model = load_causal_lm(path)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text
