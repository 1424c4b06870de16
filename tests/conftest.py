"""Shared fixtures: tiny models built offline from a config, and an isolated clinitune cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Patient with essential hypertension, ICD-10 I10, on lisinopril 10 mg daily.",
    "Type 2 diabetes mellitus without complications is coded E11.9; A1c 7.2 %.",
    "Generate a patient record for a 45-year-old female with asthma.",
] * 20


def tiny_tokenizer(vocab_size: int = 400):
    """A byte-level BPE trained in-process, with ChatML specials like SmolLM2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_sentencepiece_tokenizer(vocab_size: int = 420):
    """A SentencePiece BPE (byte fallback, ▁ word marker, as Llama 2 and Mistral use) trained in-process."""
    import shutil
    import tempfile

    import sentencepiece as spm
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as d:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 3),
            model_prefix=f"{d}/sp",
            vocab_size=vocab_size,
            model_type="bpe",
            byte_fallback=True,
            control_symbols=["<|im_start|>", "<|im_end|>"],
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            minloglevel=2,
        )
        shutil.move(f"{d}/sp.model", f"{d}/tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(d)
    tok.pad_token = tok.eos_token
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model_dir(path: Path, model_type: str = "llama", tied: bool = True, sentencepiece: bool = False) -> Path:
    """A random-init causal LM of `model_type`, saved as a plain safetensors checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_sentencepiece_tokenizer() if sentencepiece else tiny_tokenizer()
    cfg = AutoConfig.for_model(
        model_type,
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def knowledge_rows(split: str, n: int) -> list[dict]:
    """n prepared-style knowledge examples, one group each: a tiny train or test split for eval tests."""
    return [
        {
            "id": f"{split}{i}",
            "task": "knowledge",
            "group": f"{split}{i}",
            "instruction": f"State coding rule {i}.",
            "input": "",
            "output": f"Rule {i}: code to the highest specificity.",
        }
        for i in range(n)
    ]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CLINITUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tiny_llama(tmp_path) -> Path:
    return tiny_model_dir(tmp_path / "tiny-llama")


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL cluster on a loopback port, or $CLINITUNE_TEST_PG_URL."""
    import shutil
    import socket
    import subprocess
    import tempfile

    if os.environ.get("CLINITUNE_TEST_PG_URL"):
        yield os.environ["CLINITUNE_TEST_PG_URL"]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail(
            "PostgreSQL server binaries not found: install them with `apt-get install postgresql` (make test does "
            "this as root)"
        )
    data = tempfile.mkdtemp(prefix="clinitune-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*prefix, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], check=True, capture_output=True
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*prefix, pg_ctl, "-D", data, "-o", opts, "-w", "-l", f"{data}/log", "start"], check=True, capture_output=True
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
