"""The runtime layer's model side: load a trained model for inference, generate, score, chat.

eval, export, infer and quickstart all run models through here (transformers for HF checkpoints,
llama.cpp for GGUF files), so a reply is produced and a loss is measured the same way everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import llama_cpp
import numpy as np
import torch
import torch.nn.functional as F
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama, LlamaGrammar
from tqdm import tqdm
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..data.example import Example
from ..data.tokenize import IGNORE, collate, pack, prompt_ids, tokenize
from ..errors import ClinituneError
from ..layout import RunDir
from .adapt import cpu_has_bf16
from .loading import load_adapter, load_causal_lm, load_tokenizer
from .packed_attention import packed_hidden
from .registry import resolve_model
from .structured import mask_logits, schema_matcher

SCORE_CHUNK = 1024  # response tokens per head chunk when scoring: bounds fp32 logits to CHUNK x vocab
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>")


def inference_parts(run: Path | None, model: str | None, adapter: Path | None):
    """(base model, tokenizer, adapter dir or None, allow_pickle) from a run dir, or a base model with an
    optional adapter: the base loaded in bf16 where the CPU or GPU has it, in eval mode, adapter not yet applied.
    A run's own config says whether its files may hold pickle weights or custom code."""
    trust, pickle = False, False
    if run is not None:
        summary = RunDir(run).read_summary()
        if summary.method == "full":
            model, adapter = summary.output, None
        else:
            model, adapter = summary.base_model, Path(summary.output)
        saved = RunDir(run).read_config().model  # what the run was allowed to load, it may load again
        trust, pickle = saved.trust_remote_code, saved.allow_pickle
    if model is None:
        raise ClinituneError("needs --run RUN_DIR or --model MODEL")
    base_dir = resolve_model(model, allow_pickle=pickle)
    cuda = torch.cuda.is_available()
    dtype = "bfloat16" if (cuda and torch.cuda.is_bf16_supported()) or (not cuda and cpu_has_bf16()) else "float32"
    m = load_causal_lm(base_dir, dtype=dtype, trust_remote_code=trust, allow_pickle=pickle)
    tok = load_tokenizer(adapter or base_dir, trust)
    m.to("cuda" if cuda else "cpu").eval()
    return m, tok, adapter, pickle


def load_for_inference(run: Path | None, model: str | None, adapter: Path | None):
    """(model, tokenizer, has_adapter): `inference_parts` with the adapter merged into the weights, so
    generation runs on plain linear layers."""
    m, tok, adapter, pickle = inference_parts(run, model, adapter)
    if adapter is not None:
        m = load_adapter(m, adapter, pickle).merge_and_unload()
    return m, tok, adapter is not None


def eos_ids(tok) -> list[int]:
    """Every token that ends a turn for this tokenizer: its EOS and the end-of-turn markers it knows."""
    ids = {tok.eos_token_id}
    for t in END_OF_TURN:
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tok.unk_token_id and i >= 0:
            ids.add(i)
    return sorted(i for i in ids if i is not None)


class GrowingLayer(DynamicLayer):
    """A KV cache layer with room to grow: each step writes into a buffer that doubles when full.
    transformers' DynamicLayer concatenates, copying the whole cache every step: at eval's 300-700 token
    contexts that copy was over a third of decoding time on a CPU."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.length, self.key_buf, self.value_buf = 0, None, None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.length + key_states.shape[-2]
        if self.key_buf is None or n > self.key_buf.shape[-2]:
            shape = (*key_states.shape[:-2], 2 * n, key_states.shape[-1])
            key_buf, value_buf = key_states.new_empty(shape), value_states.new_empty(shape)
            if self.length:
                key_buf[..., : self.length, :] = self.keys
                value_buf[..., : self.length, :] = self.values
            self.key_buf, self.value_buf = key_buf, value_buf
        self.key_buf[..., self.length : n, :] = key_states
        self.value_buf[..., self.length : n, :] = value_states
        self.length = n
        self.keys, self.values = self.key_buf[..., :n, :], self.value_buf[..., :n, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.key_buf is not None:
            self.key_buf, self.value_buf = self.key_buf[indices], self.value_buf[indices]
            self.keys, self.values = self.key_buf[..., : self.length, :], self.value_buf[..., : self.length, :]


class GrowingCache(DynamicCache):
    def __init__(self):
        super().__init__()
        self.layer_class_to_replicate = GrowingLayer


@torch.no_grad()
def greedy(
    model, ids: torch.Tensor, mask: torch.Tensor, budgets: list[int], stop: set[int], matchers: list | None = None
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch with the KV cache. A row leaves the batch (and the cache)
    at its end-of-turn or its own budget, so a row that rambles costs its own steps, not the batch's:
    transformers' generate keeps computing finished rows until the last one stops. A row with a schema
    matcher (structured.schema_matcher) only picks tokens that keep its answer valid."""
    out: list[list[int]] = [[] for _ in range(ids.shape[0])]
    alive = list(range(ids.shape[0]))
    cache = GrowingCache()
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1
    ).logits[:, -1]
    while True:
        if matchers is not None:
            mask_logits(logits, [matchers[row] for row in alive])
        nxt = logits.argmax(-1).tolist()
        keep = []
        for j, (row, token) in enumerate(zip(alive, nxt)):
            if matchers is not None and matchers[row] is not None:
                matchers[row].consume_token(token)
            if token in stop:
                continue
            out[row].append(token)
            if len(out[row]) < budgets[row]:
                keep.append(j)
        if not keep:
            return out
        if len(keep) < len(alive):
            sel = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(sel)
            mask = mask[sel]
            alive = [alive[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
        step = torch.tensor([[nxt[j]] for j in keep], device=ids.device)
        logits = model(
            input_ids=step,
            attention_mask=mask,
            position_ids=mask.sum(-1, keepdim=True) - 1,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[list[dict]],
    max_new_tokens: int | list[int],
    batch_size: int = 16,
    desc: str = "generate",
    quiet: bool = False,
    schemas: list[dict | None] | None = None,
) -> list[str]:
    """Greedy, batched, left-padded, with the KV cache and the chat template; replies in input order.
    Rows are batched by (budget, prompt length); each stops at its end-of-turn or its own budget.
    A row given a JSON Schema is decoded under it."""
    device = next(model.parameters()).device
    encoded = [prompt_ids(tok, p) for p in prompts]
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: (budgets[i], len(encoded[i])))
    out: list[str] = [""] * len(encoded)
    stop = set(eos_ids(tok))
    matchers = [schema_matcher(tok, sc, sorted(stop)) if sc else None for sc in schemas] if schemas else None
    batches = range(0, len(order), batch_size)
    for s in tqdm(batches, desc=desc, unit="batch", leave=False, disable=quiet or len(order) <= batch_size):
        idx = order[s : s + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        rows = [matchers[i] for i in idx] if matchers else None
        replies = greedy(model, ids.to(device), mask.to(device), [budgets[i] for i in idx], stop, rows)
        for i, tokens in zip(idx, replies):
            out[i] = tok.decode(tokens, skip_special_tokens=True).strip()
    return out


@torch.no_grad()
def row_losses(model, batch: dict, device: str) -> list[tuple[float, int]]:
    """(summed response-token loss, token count) for each row of a collated batch, one example per row.
    The head runs on response positions only, a chunk at a time, so fp32 logits stay small."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = packed_hidden(base, batch["input_ids"].to(device), batch["position_ids"].to(device))[:, :-1]
    head = base.get_output_embeddings()
    targets = batch["labels"][:, 1:].to(device)
    keep = targets != IGNORE
    out = []
    for r in range(targets.shape[0]):
        h, y = hidden[r][keep[r]], targets[r][keep[r]]
        total = 0.0
        for i in range(0, y.numel(), SCORE_CHUNK):
            logits = head(h[i : i + SCORE_CHUNK]).float()
            total += float(F.cross_entropy(logits, y[i : i + SCORE_CHUNK], reduction="sum"))
        out.append((total, int(keep[r].sum())))
    return out


@torch.no_grad()
def example_losses(model, tok, examples: list[Example], max_len: int = 1024, batch_size: int = 8) -> list[float]:
    """Mean response-token loss per example (teacher forcing on the reference output), batched by length."""
    device = str(next(model.parameters()).device)
    losses = [float("nan")] * len(examples)
    data = tokenize(tok, examples, max_len)
    order = sorted(range(len(data.input_ids)), key=lambda i: len(data.input_ids[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        rows = pack(data, idx, max_len, packing=False)
        for i, (total, n) in zip(idx, row_losses(model, collate(rows, tok.pad_token_id), device)):
            losses[data.source[i]] = total / max(n, 1)  # an example whose prompt alone overflows stays nan
    return losses


def load_llama(path: Path, n_ctx: int = 4096, lora: Path | None = None, logits_all: bool = False) -> Llama:
    """A GGUF file in llama.cpp, with an optional GGUF LoRA adapter applied."""
    if not Path(path).is_file():
        raise ClinituneError(f"{path}: GGUF file not found; create one with clinitune export")
    return Llama(
        model_path=str(path), n_ctx=n_ctx, logits_all=logits_all, verbose=False, lora_path=str(lora) if lora else None
    )


def llama_greedy(llm: Llama, messages: list[dict], max_tokens: int, grammar: LlamaGrammar | None = None) -> str:
    """llama.cpp's greedy reply to a chat, with the chat template stored in the GGUF (what Ollama and the
    llama.cpp server render), optionally constrained to a grammar."""
    out = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, grammar=grammar)
    return out["choices"][0]["message"]["content"].strip()


def llama_prompts_ids(llm: Llama, prompts: list[list[dict]]) -> list[list[int]]:
    """Chats rendered with the template stored in the GGUF (compiled once), as llama.cpp's own chat
    completion renders them, and tokenized."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(llm.metadata["tokenizer.chat_template"])
    piece = lambda t: llm.detokenize([t], special=True).decode() if t >= 0 else ""  # noqa: E731
    bos, eos = piece(llm.token_bos()), piece(llm.token_eos())
    texts = [template.render(messages=m, add_generation_prompt=True, bos_token=bos, eos_token=eos) for m in prompts]
    return [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts]


def llama_batched_greedy(llm: Llama, prompts: list[list[dict]], budgets: list[int], n_seq: int = 16) -> list[str]:
    """Greedy replies for many chats at once: up to `n_seq` sequences share each llama.cpp decode step, each
    in its own slot of one KV cache, and a finished sequence hands its slot to the next prompt. The gain is
    in the decode steps, which on a CPU cost little more for 16 rows than for one. llama.cpp's kernels are
    not batch-invariant, so a reply can differ from `llama_greedy`'s once a rounding difference flips a
    greedy choice: identical on the tiny test model and on 40/40 quickstart prompts in f16 at 96 tokens,
    while on the quickstart's q4_k_m the mean score moved from 0.362 to 0.415 (bench/eval_throughput.py).
    llama.cpp's server batches concurrent requests the same way, so both are what a deployment sees."""
    ids = llama_prompts_ids(llm, prompts)
    model = llm._model.model  # llama-cpp-python exposes no multi-sequence API: the C API runs on its model
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_n_vocab(vocab)
    params = llama_cpp.llama_context_default_params()
    params.n_seq_max = n_seq
    params.kv_unified = True
    params.n_ctx = n_seq * (max(len(p) + b for p, b in zip(ids, budgets)) + 8)
    params.n_batch = params.n_ubatch = max(512, max(map(len, ids)))
    params.n_threads = params.n_threads_batch = len(os.sched_getaffinity(0))  # the default oversubscribes
    ctx = llama_cpp.llama_init_from_model(model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(params.n_batch, 0, n_seq)
    out: list[list[int]] = [[] for _ in ids]

    def add(token: int, pos: int, seq: int, logits: bool) -> None:
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
        batch.seq_id[i][0] = seq
        batch.n_tokens += 1

    def decode() -> None:
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise ClinituneError("llama.cpp could not decode a batch (out of KV cache?); lower the batch size")

    def best(i: int) -> int:
        return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).argmax())

    pending, free, live = list(range(len(ids))), list(range(n_seq)), {}  # live: slot -> [prompt, next pos, token]
    try:
        while pending or live:
            while pending and free:  # prefill a waiting prompt into a free slot
                k, slot = pending.pop(0), free.pop()
                batch.n_tokens = 0
                for pos, token in enumerate(ids[k]):
                    add(token, pos, slot, pos == len(ids[k]) - 1)
                decode()
                token = best(batch.n_tokens - 1)
                if llama_cpp.llama_vocab_is_eog(vocab, token) or budgets[k] == 0:
                    llama_cpp.llama_memory_seq_rm(memory, slot, -1, -1)
                    free.append(slot)
                else:
                    out[k].append(token)
                    live[slot] = [k, len(ids[k]), token]
            if not live:
                continue
            batch.n_tokens = 0
            slots = list(live)
            for slot in slots:
                add(live[slot][2], live[slot][1], slot, True)
            decode()
            for i, slot in enumerate(slots):
                k, pos, _ = live[slot]
                token = best(i)
                if llama_cpp.llama_vocab_is_eog(vocab, token) or len(out[k]) >= budgets[k]:
                    llama_cpp.llama_memory_seq_rm(memory, slot, -1, -1)
                    del live[slot]
                    free.append(slot)
                else:
                    out[k].append(token)
                    live[slot] = [k, pos + 1, token]
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return [llm.detokenize(o, special=False).decode("utf-8", errors="replace").strip() for o in out]
