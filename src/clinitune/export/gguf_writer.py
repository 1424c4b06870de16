"""Write a plain HF checkpoint as GGUF with the PyPI `gguf` package.

Conventions follow llama.cpp's loader: llama-family Q/K weights are stored with rotary halves
interleaved, tied embeddings are written once as token_embd, and the tokenizer's end-of-turn
token is the EOS so that chat generation stops.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import ClinituneError

log = logging.getLogger(__name__)

# HF model_type -> gguf architecture name. These four share llama.cpp's tensor layout for our purposes.
ARCHES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "stablelm": "stablelm"}
PERMUTE_QK = {"llama"}  # llama.cpp's llama loader expects rotary pairs interleaved; qwen2/stablelm use NEOX order


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores each head's rotary dims as two halves; llama.cpp wants them as interleaved pairs."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_metadata(writer, model_dir: Path, vocab_size: int, model_type: str) -> None:
    import gguf
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tj = json.loads((model_dir / "tokenizer.json").read_text()) if (model_dir / "tokenizer.json").is_file() else None
    if tj is None or tj.get("model", {}).get("type") != "BPE":
        raise ClinituneError(f"{model_dir}: only BPE tokenizers with tokenizer.json are supported by the GGUF writer so far")
    id_to_tok = {i: t for t, i in tok.get_vocab().items()}
    special = set(tok.all_special_ids)
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        text = id_to_tok.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in special or added.get(i, {}).get("special"):
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        elif i in added:
            tokens.append(text)
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(model_dir, model_type))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for name in ("bos", "eos", "unk", "pad"):
        tid = getattr(tok, f"{name}_token_id", None)
        if tid is not None:
            getattr(writer, f"add_{name}_token_id")(tid)
    writer.add_add_bos_token(False)
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template if isinstance(tok.chat_template, str) else json.dumps(tok.chat_template))


def source_pre(model_dir: Path) -> str | None:
    """The pre-tokenizer name of the GGUF this checkpoint was imported from, if any."""
    marker = model_dir / "clinitune_source.json"
    if not marker.is_file():
        return None
    info = json.loads(marker.read_text())
    if info.get("gguf_pre"):
        return info["gguf_pre"]
    src = Path(info.get("gguf", ""))
    if src.is_file():
        from gguf import GGUFReader

        field = GGUFReader(str(src)).fields.get("tokenizer.ggml.pre")
        return bytes(field.parts[-1]).decode() if field else None
    return None


def _pre_tokenizer_name(model_dir: Path, model_type: str) -> str:
    # llama.cpp picks its pre-tokenizer regex by this name. A checkpoint imported from GGUF keeps the
    # original's name; otherwise a byte-level BPE uses the GPT-2 regex, and Qwen2 its own.
    return source_pre(model_dir) or ("qwen2" if model_type == "qwen2" else "gpt-2")


def write_gguf(model_dir: str | Path, out_path: str | Path, dtype: str = "f32") -> Path:
    """Write `model_dir` (HF safetensors checkpoint) to `out_path` as GGUF in f32 or f16."""
    import gguf
    from safetensors.numpy import load_file

    model_dir, out_path = Path(model_dir), Path(out_path)
    cfg = json.loads((model_dir / "config.json").read_text())
    mtype = cfg.get("model_type")
    if mtype not in ARCHES:
        raise ClinituneError(f"{model_dir}: model_type {mtype!r} is not supported by the GGUF writer; supported: {', '.join(ARCHES)}")
    arch = ARCHES[mtype]
    n_layer, n_head = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    hidden = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or hidden // n_head
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_name(cfg.get("_name_or_path") or model_dir.name)
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(int(head_dim * cfg.get("partial_rotary_factor", 1.0)))
    writer.add_rope_freq_base(float(theta))
    if "rms_norm_eps" in cfg:
        writer.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    if "layer_norm_eps" in cfg:
        writer.add_layer_norm_eps(float(cfg["layer_norm_eps"]))
    writer.add_vocab_size(cfg["vocab_size"])
    ftype = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(ftype)
    _tokenizer_metadata(writer, model_dir, cfg["vocab_size"], mtype)

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layer)
    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    tied = cfg.get("tie_word_embeddings", False)
    for name in sorted(state):
        if tied and name == "lm_head.weight":
            continue
        arr = state[name].astype(np.float32)
        if arch in PERMUTE_QK and name.endswith("q_proj.weight"):
            arr = _permute(arr, n_head)
        elif arch in PERMUTE_QK and name.endswith("k_proj.weight"):
            arr = _permute(arr, n_kv)
        gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ClinituneError(f"{model_dir}: tensor {name} has no GGUF name for arch {arch}")
        # 1-D tensors (norms, biases) stay f32: llama.cpp requires it and they are tiny.
        if dtype == "f16" and arr.ndim > 1:
            arr = arr.astype(np.float16)
        writer.add_tensor(gname, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    tmp.replace(out_path)
    return out_path
