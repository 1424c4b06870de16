"""Write a plain HF checkpoint as GGUF with the PyPI `gguf` package.

Conventions follow llama.cpp's loader: llama-family Q/K weights are stored with rotary halves
interleaved, tied embeddings are written once as token_embd, and the tokenizer's end-of-turn
token is the EOS so that chat generation stops.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gguf
import numpy as np
from gguf import GGUFReader
from safetensors.numpy import load_file
from transformers import AutoTokenizer

from ..errors import ClinituneError
from ..models.loading import refuse_remote_code

log = logging.getLogger(__name__)

# HF model_type -> gguf architecture name. These four share llama.cpp's tensor layout for our purposes.
ARCHES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "stablelm": "stablelm"}
PERMUTE_QK = {"llama"}
UNTIED_OUTPUT = {
    "stablelm"
    # llama.cpp's stablelm loader requires output.weight even when HF ties it  # llama.cpp's llama loader expects rotary
    # pairs interleaved; qwen2/stablelm use NEOX order
}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores each head's rotary dims as two halves; llama.cpp wants them as interleaved pairs."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _is_sentencepiece_bpe(tj: dict) -> bool:
    """A BPE converted from SentencePiece (Llama, Mistral): byte fallback and the ▁ word marker, no byte-level
    alphabet."""
    model = tj.get("model", {})
    blob = json.dumps([tj.get("pre_tokenizer"), tj.get("normalizer"), tj.get("decoder")])
    return (
        model.get("type") == "BPE"
        and (model.get("byte_fallback") or "Metaspace" in blob or "\u2581" in blob)
        and "ByteLevel" not in blob
    )


def _tokenizer_metadata(writer, model_dir: Path, vocab_size: int, model_type: str) -> None:
    refuse_remote_code(model_dir, False)  # the writer runs on clinitune's own merged export, never custom code
    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    tj = json.loads((model_dir / "tokenizer.json").read_text()) if (model_dir / "tokenizer.json").is_file() else None
    if tj is None or tj.get("model", {}).get("type") != "BPE":
        kind = tj.get("model", {}).get("type") if tj else "no tokenizer.json"
        raise ClinituneError(
            f"{model_dir}: tokenizer {kind}: the GGUF writer supports byte-level BPE (GPT-2 style) and "
            "SentencePiece BPE (Llama style) saved as tokenizer.json; re-save the tokenizer with a fast tokenizer"
        )
    spm = _is_sentencepiece_bpe(tj)
    id_to_tok = {i: t for t, i in tok.get_vocab().items()}
    special = set(tok.all_special_ids)
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"].get("merges", [])]
    # llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined text has the highest
    # score; a piece's score is minus the rank of the merge that makes it, as in SentencePiece BPE.
    rank = {}
    for i, m in enumerate(merges):
        rank.setdefault(m.replace(" ", ""), i)
    tokens, types, scores = [], [], []
    for i in range(vocab_size):
        text = id_to_tok.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif spm and i == tok.unk_token_id:
            tokens.append(text)
            types.append(gguf.TokenType.UNKNOWN)
        elif i in special or added.get(i, {}).get("special"):
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        elif i in added:
            tokens.append(text)
            types.append(gguf.TokenType.USER_DEFINED)
        elif spm and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            tokens.append(text)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
        scores.append(-float(rank[text]) if text in rank else 0.0)
    if spm:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        # llama.cpp puts the ▁ prefix before every text run that follows a special token (SentencePiece's
        # "legacy" way). HF's prepend_scheme "always" does the same; "first" (Llama 2 non-legacy, Mistral)
        # never does it after a special token, so chat prompts, which always start with one, match only without it.
        prepend = json.dumps([tj.get("pre_tokenizer"), tj.get("normalizer")])
        writer.add_add_space_prefix('"prepend_scheme": "always"' in prepend or "Prepend" in prepend)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_pre_tokenizer_name(model_dir, model_type))
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
    for name in ("bos", "eos", "unk", "pad"):
        tid = getattr(tok, f"{name}_token_id", None)
        if tid is not None:
            getattr(writer, f"add_{name}_token_id")(tid)
    # Whatever the HF tokenizer does with BOS, llama.cpp must do the same, or every prompt differs by a token.
    probe = tok("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id)
    if tok.chat_template:
        writer.add_chat_template(
            tok.chat_template if isinstance(tok.chat_template, str) else json.dumps(tok.chat_template)
        )


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
        field = GGUFReader(str(src)).fields.get("tokenizer.ggml.pre")
        return bytes(field.parts[-1]).decode() if field else None
    return None


def _pre_tokenizer_name(model_dir: Path, model_type: str) -> str:
    # llama.cpp picks its pre-tokenizer regex by this name. A checkpoint imported from GGUF keeps the
    # original's name; otherwise a byte-level BPE uses the GPT-2 regex, and Qwen2 its own.
    return source_pre(model_dir) or ("qwen2" if model_type == "qwen2" else "gpt-2")


def _arch(model_dir: Path) -> tuple[dict, str]:
    """The checkpoint's config and its GGUF architecture name, or a clear refusal."""
    cfg = json.loads((model_dir / "config.json").read_text())
    mtype = cfg.get("model_type")
    if mtype not in ARCHES:
        raise ClinituneError(
            f"{model_dir}: model_type {mtype!r} is not supported by the GGUF writer; supported: {', '.join(ARCHES)}"
        )
    return cfg, ARCHES[mtype]


def _rotary_layout(arr: np.ndarray, name: str, arch: str, cfg: dict) -> np.ndarray:
    """Rows of a Q/K projection (or of a LoRA B feeding one) in llama.cpp's rotary order."""
    if arch in PERMUTE_QK and name.endswith(("q_proj.weight", "k_proj.weight")):
        n_head = cfg["num_attention_heads"]
        return _permute(arr, n_head if name.endswith("q_proj.weight") else cfg.get("num_key_value_heads") or n_head)
    return arr


def _write_atomically(writer, tmp: Path, out_path: Path) -> Path:
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk that filled up mid-file leaves no half GGUF behind
        raise
    return out_path


def write_gguf(model_dir: str | Path, out_path: str | Path, dtype: str = "f32") -> Path:
    """Write `model_dir` (HF safetensors checkpoint) to `out_path` as GGUF in f32 or f16."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    cfg, arch = _arch(model_dir)
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
    _tokenizer_metadata(writer, model_dir, cfg["vocab_size"], cfg["model_type"])

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layer)
    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    tied = cfg.get("tie_word_embeddings", False)
    if tied and arch in UNTIED_OUTPUT:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
        tied = False
    for name in sorted(state):
        if tied and name == "lm_head.weight":
            continue
        arr = _rotary_layout(state[name].astype(np.float32), name, arch, cfg)
        gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ClinituneError(f"{model_dir}: tensor {name} has no GGUF name for arch {arch}")
        # 1-D tensors (norms, biases) stay f32: llama.cpp requires it and they are tiny.
        if dtype == "f16" and arr.ndim > 1:
            arr = arr.astype(np.float16)
        writer.add_tensor(gname, arr)
    return _write_atomically(writer, tmp, out_path)


def write_lora_gguf(adapter_dir: str | Path, base_dir: str | Path, out_path: str | Path) -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp GGUF adapter for the GGUF of `base_dir`.

    llama.cpp applies `scale * alpha / r * B @ A` to the base tensor named by the adapter tensor's prefix,
    so A stays (r, in), B stays (out, r), and for llama-family Q/K the rows of B get the same rotary
    interleave as the base weights. rsLoRA's alpha / sqrt(r) scale is folded into alpha.
    """
    adapter_dir, base_dir, out_path = Path(adapter_dir), Path(base_dir), Path(out_path)
    acfg_path = adapter_dir / "adapter_config.json"
    if not acfg_path.is_file():
        raise ClinituneError(
            f"{adapter_dir}: no adapter_config.json; --lora-gguf needs a LoRA run (method lora or qlora)"
        )
    acfg = json.loads(acfg_path.read_text())
    if acfg.get("peft_type", "LORA") != "LORA":
        raise ClinituneError(
            f"{adapter_dir}: peft_type {acfg.get('peft_type')!r}; only LoRA adapters can be written as GGUF"
        )
    if acfg.get("modules_to_save"):
        raise ClinituneError(
            f"{adapter_dir}: the adapter also trains full modules {acfg['modules_to_save']}; "
            "a GGUF LoRA cannot carry them, export the merged model instead (--format gguf without --lora-gguf)"
        )
    cfg, arch = _arch(base_dir)
    r, alpha = int(acfg["r"]), float(acfg.get("lora_alpha", acfg["r"]))
    if acfg.get("use_rslora"):
        alpha = alpha * r**0.5  # llama.cpp divides by r; rsLoRA divides by sqrt(r)
    if acfg.get("rank_pattern") or acfg.get("alpha_pattern"):
        raise ClinituneError(
            f"{adapter_dir}: per-module rank_pattern/alpha_pattern cannot be expressed in one GGUF alpha"
        )

    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg["num_hidden_layers"])
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in state.items():
        base, _, part = key.rpartition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise ClinituneError(f"{adapter_dir}: tensor {key} is not a LoRA A/B matrix; a GGUF LoRA cannot carry it")
        base = base.removeprefix("base_model.model.") + ".weight"
        pairs.setdefault(base, {})[part[0]] = arr.astype(np.float32)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(f"{cfg.get('_name_or_path') or base_dir.name} LoRA")
    for base in sorted(pairs):
        a, b = pairs[base]["A"], pairs[base]["B"]
        gname = tmap.get_name(base, try_suffixes=(".weight",))
        if gname is None:
            raise ClinituneError(
                f"{adapter_dir}: LoRA on {base} has no GGUF tensor for arch {arch} (embeddings and lm_head are not "
                f"supported)"
            )
        b = _rotary_layout(b, base, arch, cfg)  # f32: the adapter is small, and llama.cpp applies it exactly
        writer.add_tensor(f"{gname}.lora_a", a)
        writer.add_tensor(f"{gname}.lora_b", b)
    return _write_atomically(writer, tmp, out_path)
