"""Load a checkpoint dir for training or inference with clinitune's safe defaults."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ClinituneError
from .registry import check_checkpoint_dir

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
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
    return AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=getattr(torch, DTYPES.get(dtype, "float32")),
        trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True,
        **kwargs,
    )
