"""The base model's baseline answers, kept beside the data set they answer, so that a second fine-tune on the
same data pays only for its own model.

A cache entry is keyed by everything that decides the answers: the base model's files (sha256 of each), the
exact prompts (test examples and their few-shot examples), each row's token budget, the backend and batch size (batched
decoding is not bit-for-bit batch-invariant), the dtype and device, and the versions of clinitune, torch and
transformers. A change in any of them is a miss, never a stale hit. Entries live in the data set's
`baselines/` dir (layout.DataDir), so they go where the data goes and a re-prepare clears them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import transformers

from .. import __version__
from ..layout import DataDir
from ..paths import atomic_write_text, cache_dir, sha256_file

# Files that are not the model: they change no answer.
NOT_MODEL = (".md", ".txt", ".gitattributes", ".lock")


def file_sha256(path: Path) -> str:
    """A file's sha256, remembered per (path, size, mtime) in the user cache: a 7B model's weights are hashed
    once, not at every eval."""
    st = path.stat()
    memo_file = cache_dir() / "sha256.json"
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo = json.loads(memo_file.read_text()) if memo_file.is_file() else {}
    if stamp not in memo:
        memo[stamp] = sha256_file(path)
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo_file, json.dumps(memo, indent=0, sort_keys=True))
    return memo[stamp]


def model_sha256(model_dir: str | os.PathLike) -> str:
    """One digest of every file of a model dir that can change an answer (weights, config, tokenizer)."""
    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(NOT_MODEL))
    parts = [f"{p.relative_to(root)}:{file_sha256(p)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def baseline_key(
    model, prompts: list, budgets: list[int], batch_size: int, candidates: list[str], backend: str = "hf"
) -> str:
    """The cache key of the base model's answers to `prompts`; `model` is the loaded base model."""
    parts = {
        "model": model_sha256(model.name_or_path),
        "candidates": candidates,
        "prompts": prompts,
        "budgets": budgets,
        "batch_size": batch_size,
        "backend": backend,
        "dtype": str(model.dtype),
        "device": str(model.device),
        "versions": [__version__, torch.__version__, transformers.__version__],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def load(data_dir: Path, key: str) -> dict | None:
    """{"outputs": {candidate: {example id: answer}}, "losses": {candidate: [loss per example]}}, or None."""
    path = DataDir(data_dir).baseline_answers(key)
    return json.loads(path.read_text()) if path.is_file() else None


def save(data_dir: Path, key: str, outputs: dict, losses: dict) -> Path:
    path = DataDir(data_dir).baseline_answers(key)
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, json.dumps({"outputs": outputs, "losses": losses}, ensure_ascii=False))
    return path
