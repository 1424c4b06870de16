"""One policy for every file that could run code on load: custom model code and pickle weights are refused
unless the config allows them, whichever command loads them."""

import json

import pytest
from peft import LoraConfig, get_peft_model

from clinitune.config import Config
from clinitune.errors import ClinituneError
from clinitune.models.loading import load_adapter, load_causal_lm, load_model_config, load_tokenizer
from clinitune.train.estimate import estimate


def _with_remote_code(model_dir):
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.Evil"}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    marker = model_dir / "ran.txt"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (model_dir / "configuration_evil.py").write_text(code)
    (model_dir / "modeling_evil.py").write_text(code)
    return marker


def test_custom_model_code_is_refused_on_every_load_path(tiny_llama):
    marker = _with_remote_code(tiny_llama)
    for load in (load_model_config, load_tokenizer, load_causal_lm):
        with pytest.raises(ClinituneError, match="trust_remote_code"):
            load(tiny_llama)
    with pytest.raises(ClinituneError, match="trust_remote_code"):
        estimate(Config.model_validate({"model": {"name_or_path": str(tiny_llama)}}))
    assert not marker.exists()


def test_a_pickle_adapter_needs_allow_pickle_like_a_pickle_model(tiny_llama, tmp_path):
    model = load_causal_lm(tiny_llama)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(tmp_path / "adapter", safe_serialization=False)
    assert (tmp_path / "adapter" / "adapter_model.bin").is_file()
    with pytest.raises(ClinituneError, match="allow_pickle"):
        load_adapter(load_causal_lm(tiny_llama), tmp_path / "adapter")
    loaded = load_adapter(load_causal_lm(tiny_llama), tmp_path / "adapter", allow_pickle=True)
    assert any("lora_A" in n for n, _ in loaded.named_parameters())
    with pytest.raises(ClinituneError, match="no adapter weights"):
        load_adapter(load_causal_lm(tiny_llama), tmp_path)
