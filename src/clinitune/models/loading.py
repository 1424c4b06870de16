"""Load a checkpoint dir for training or inference with clinitune's safe defaults."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ..errors import ClinituneError
from .packed_attention import use_packed_attention
from .registry import check_checkpoint_dir

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def refuse_remote_code(path: str | Path, trust_remote_code: bool) -> None:
    """A checkpoint that ships its own Python (an `auto_map` to modeling_*.py) is refused unless the config
    trusts it: transformers would otherwise ask on the terminal, and run the code on a "y"."""
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        f = Path(path) / name
        try:
            meta = json.loads(f.read_text()) if f.is_file() else {}
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("auto_map"):
            raise ClinituneError(
                f"{f}: the model ships its own Python code (auto_map); clinitune does not run it unless "
                "the config says `model: {trust_remote_code: true}`. Set that only for code you have read."
            )


def load_model_config(path: str | Path, trust_remote_code: bool = False):
    refuse_remote_code(path, trust_remote_code)
    return AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    refuse_remote_code(path, trust_remote_code)
    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ClinituneError(
            f"{path}: the tokenizer has no chat template; clinitune renders examples with it, add one to "
            f"tokenizer_config.json"
        )
    return tok


def load_causal_lm(
    path: str | Path, dtype: str = "float32", trust_remote_code: bool = False, allow_pickle: bool = False, **kwargs
):
    """Safetensors only unless `allow_pickle`; remote code only when asked for."""
    path = Path(path)
    check_checkpoint_dir(path, allow_pickle)
    refuse_remote_code(path, trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=getattr(torch, DTYPES.get(dtype, "float32")),
        trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True,
        **kwargs,
    )
    use_packed_attention(model)
    return model


def load_adapter(model, path: str | Path, allow_pickle: bool = False):
    """A LoRA adapter onto `model`, under the same weight-file policy as a base model: safetensors, or a
    pickle `adapter_model.bin` only with allow_pickle."""
    path = Path(path)
    if not (path / "adapter_model.safetensors").is_file():
        if not (path / "adapter_model.bin").is_file():
            raise ClinituneError(f"{path}: no adapter weights (adapter_model.safetensors); pass the adapter directory")
        if not allow_pickle:
            raise ClinituneError(
                f"{path}: the adapter is a pickle file (adapter_model.bin), which can run arbitrary code when "
                "loaded; convert it to safetensors, or set model.allow_pickle (--allow-pickle) if you trust it"
            )
    return PeftModel.from_pretrained(model, str(path))
