"""`clinitune export`: merge, write GGUF, quantize with llama.cpp, verify against HF, write a Modelfile.

The merge happens in full precision on an unquantized base (QLoRA runs included), the GGUF is our
own writer on the PyPI `gguf` package, quantization is llama.cpp's own, and every export is
checked by running the GGUF in llama.cpp against the merged HF model on the run's eval prompts.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
import torch
from gguf import GGUFReader

from ..card import model_card
from ..config import Config
from ..data.example import Example
from ..data.example import load as load_examples
from ..data.tasks import knowledge
from ..data.tokenize import tokenize
from ..errors import ClinituneError
from ..layout import ExportDir, ExportResult, RunDir
from ..logs import native_output_to
from ..models.generate import load_llama
from ..models.loading import load_adapter, load_causal_lm, load_tokenizer
from ..models.registry import resolve_model
from ..paths import atomic_dir, atomic_write_text, require_dir
from ..stats import ratio_ci
from .gguf_writer import write_gguf, write_lora_gguf

log = logging.getLogger(__name__)
QUANTS = {
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}
# The least teacher-forced top-1 agreement with the merged float32 HF model a file may have and still ship, per
# kind; every kind export can write has one (checked at import). Set under what SmolLM2-135M, the smallest and
# most quantization-sensitive model we ship, measured on 64 examples (bench/results/export_floors.md), and above
# what a file that lost its fine-tune scores: they refuse a broken file, not a coarse one. base+lora: f16 base,
# f32 adapter.
MIN_TOP1 = {
    "f32": 0.99,
    "f16": 0.99,
    "base+lora": 0.99,
    "bf16": 0.98,
    "q8_0": 0.96,
    "q6_k": 0.94,
    "q5_k_m": 0.90,
    "q4_k_m": 0.90,
}
if missing := set(QUANTS) - set(MIN_TOP1):
    raise RuntimeError(f"export: no MIN_TOP1 floor for {sorted(missing)}")
# Examples verified per file: the eval split first, topped up with the packaged knowledge questions, so that a
# tiny eval split still gives an agreement whose interval means something.
VERIFY_EXAMPLES = 32
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def merge(run: Path, out: Path) -> Path:
    """LoRA merged into a full-precision base, saved as safetensors with its tokenizer."""
    s = RunDir(run).read_summary()
    allowed = RunDir(run).read_config().model
    src = Path(s.output)
    tok = load_tokenizer(src, allowed.trust_remote_code)
    load = dict(dtype="float32", trust_remote_code=allowed.trust_remote_code, allow_pickle=allowed.allow_pickle)
    if s.method == "full":
        model = load_causal_lm(src, **load)
    else:
        # Always an unquantized fp32 base, even for QLoRA: merging into 4-bit weights would round the update away.
        model = load_adapter(load_causal_lm(s.base_model, **load), src, allowed.allow_pickle).merge_and_unload()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        origin = Path(s.base_model) / "clinitune_source.json"
        if origin.is_file():  # keeps the original GGUF's tokenizer facts (pre-tokenizer name) for the writer
            shutil.copy(origin, tmp / origin.name)
    return out


def quantize(src: Path, dst: Path, kind: str) -> None:
    if kind not in QUANTS:
        raise ClinituneError(f"--quantize {kind}: expected one of f32, f16, {', '.join(QUANTS)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[kind])
    tmp = dst.with_name(f".{dst.name}.tmp")
    with native_output_to(ExportDir(dst.parent).log):  # llama.cpp prints a line per tensor; the user needs none of them
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise ClinituneError(f"llama.cpp quantization to {kind} failed (code {rc})")
    tmp.replace(dst)


def tensor_types(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


@dataclass
class Reference:
    """The merged HF model's fp32 logits on reference outputs, computed once for every file verified."""

    examples: list[Example]
    ids: list[list[int]]
    n_prompt: list[int]
    logits: list[torch.Tensor]  # positions that predict the response only


def hf_reference(hf_dir: Path, examples: list[Example], max_len: int = 512) -> Reference:
    tok = load_tokenizer(hf_dir)
    model = load_causal_lm(hf_dir, dtype="float32").eval()
    data = tokenize(tok, examples, max_len)
    logits = []
    with torch.no_grad():
        for ids, n_prompt in zip(data.input_ids, data.n_prompt):
            logits.append(model(torch.tensor([ids]), logits_to_keep=len(ids) - n_prompt + 1).logits[0, :-1].float())
    return Reference(examples, data.input_ids, data.n_prompt, logits)


def verify(gguf_path: Path, ref: Reference, lora: Path | None = None) -> dict:
    """Teacher-forced top-1 agreement and mean KL(HF || GGUF) on reference outputs, plus greedy text for a prompt."""

    llm = load_llama(gguf_path, n_ctx=max(map(len, ref.ids), default=0) + 64, lora=lora, logits_all=True)
    agree = total = 0
    kls: list[float] = []
    per_example: list[tuple[int, int]] = []
    for ids, n_prompt, h in zip(ref.ids, ref.n_prompt, ref.logits):
        llm.reset()
        llm.eval(ids)
        g = torch.from_numpy(
            np.array(llm.scores[n_prompt - 1 : len(ids) - 1], dtype=np.float32)
        )  # positions that predict the response
        same = int((h.argmax(-1) == g.argmax(-1)).sum())
        per_example.append((same, h.shape[0]))
        agree += same
        total += h.shape[0]
        kls.append(
            float(
                torch.nn.functional.kl_div(g.log_softmax(-1), h.log_softmax(-1), log_target=True, reduction="batchmean")
            )
        )
    t0 = time.perf_counter()
    out = llm.create_chat_completion(messages=ref.examples[0].prompt, max_tokens=48, temperature=0.0)
    n_gen = out["usage"]["completion_tokens"]
    tps = n_gen / max(time.perf_counter() - t0, 1e-9)
    return {
        "top1_agreement": round(agree / max(total, 1), 4),
        "top1_ci95": list(ratio_ci([a for a, _ in per_example], [n for _, n in per_example])),
        "mean_kl": round(sum(kls) / max(len(kls), 1), 5),
        "positions": total,
        "examples": len(ref.ids),
        "greedy_sample": out["choices"][0]["message"]["content"][:200],
        "tokens_per_s": round(tps, 1),
    }


def modelfile(gguf_name: str, tok, gen, adapter_name: str | None = None) -> str:
    """An Ollama Modelfile whose TEMPLATE renders ChatML exactly as the tokenizer's chat template does."""
    template = (
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    )
    if "<|im_start|>" not in (tok.chat_template or ""):
        raise ClinituneError("the Modelfile writer supports ChatML chat templates (SmolLM2, Qwen2) so far")
    stops = sorted({t for t in ("<|im_end|>", tok.eos_token) if t})
    lines = [f"FROM ./{gguf_name}"] + ([f"ADAPTER ./{adapter_name}"] if adapter_name else [])
    lines += [f'TEMPLATE """{template}"""', f'SYSTEM """{DEFAULT_SYSTEM}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += [
        f"PARAMETER temperature {gen.temperature}",
        f"PARAMETER top_p {gen.top_p}",
        f"PARAMETER top_k {gen.top_k}",
        f"PARAMETER repeat_penalty {gen.repetition_penalty}",
        f"PARAMETER num_predict {gen.max_new_tokens}",
    ]
    return "\n".join(lines) + "\n"


def verification_examples(eval_path, n: int) -> list[Example]:
    """`n` examples to verify on: the run's own eval data, one task at a time in turn and the shortest of each
    first (every task is checked, and the cost stays bounded when a task's prompts are long), then the
    packaged knowledge questions."""
    by_task: dict[str, list[Example]] = {}
    for ex in load_examples(eval_path) if eval_path and Path(eval_path).is_file() else []:
        by_task.setdefault(ex.task, []).append(ex)
    queues = [sorted(rows, key=lambda e: sum(len(t) for _, t in e.texts())) for _, rows in sorted(by_task.items())]
    own: list[Example] = []
    while len(own) < n and any(queues):
        own += [q.pop(0) for q in queues if q][: n - len(own)]
    return own + knowledge.examples(random.Random(0))[: max(0, n - len(own))]


def gate(kind: str, path: Path, v: dict) -> None:
    """Refuse a file whose agreement is under its kind's floor; record the floor in its report either way."""
    v["floor"] = MIN_TOP1.get(kind)
    if v["floor"] is not None and v["top1_agreement"] < v["floor"]:
        lo, hi = v["top1_ci95"]
        raise ClinituneError(
            f"{path.name}: top-1 agreement with the HF model is {v['top1_agreement']} (95 % interval {lo}-{hi}, "
            f"{v['examples']} examples) < the {kind} floor {v['floor']}; the GGUF does not reproduce the model "
            "(see verify.json). Export a finer quantization (q8_0, f16), or --format hf"
        )


def export(run: Path, cfg: Config | None = None, verify_n: int = VERIFY_EXAMPLES) -> ExportResult:
    """Export a run as `cfg.export` says (format, quantize, out_dir, lora_gguf); `cfg` defaults to the run's own."""
    rd = RunDir(run)
    s = rd.read_summary()  # before anything is written: a directory that is no finished run gets one line
    if not Path(s.output).exists():
        raise ClinituneError(f"{run}: the run's weights ({s.output}) are missing; train it again, or give another run")
    cfg = cfg or rd.read_config()
    x = cfg.export
    ed = ExportDir(require_dir(Path(x.out_dir) if x.out_dir else rd.export_dir, "export.out_dir (--out)"))
    ed.path.mkdir(parents=True, exist_ok=True)
    merged = merge(run, ed.merged)
    result = ExportResult(merged=str(merged))
    if x.format == "hf":
        atomic_write_text(ed.record, json.dumps(result.to_dict(), indent=2))
        return result
    quant = x.quantize
    name = rd.name
    f16 = ed.gguf(name, "f16")
    write_gguf(merged, f16, dtype="f16")
    targets = {"f16": f16}
    if quant not in ("f16", "f32"):
        qpath = ed.gguf(name, quant)
        quantize(f16, qpath, quant)
        targets[quant] = qpath
    examples = verification_examples(cfg.data.eval or cfg.data.test, verify_n)
    adapter = None
    if x.lora_gguf:
        # The base as its own f16 GGUF plus the adapter: one base file serves many adapters. Verified
        # like the others: llama.cpp with the adapter applied must reproduce the merged HF model.
        if s.method == "full":
            raise ClinituneError(
                f"{run}: --lora-gguf needs a LoRA or QLoRA run; this run trained every weight (method full)"
            )
        base_dir = resolve_model(s.base_model)
        targets["base+lora"] = write_gguf(base_dir, ed.path / "base-f16.gguf", dtype="f16")
        adapter = write_lora_gguf(s.output, base_dir, ed.gguf(name, "lora"))
        result.lora_gguf = str(adapter)
    report = {}
    ref = hf_reference(merged, examples)
    for kind, path in targets.items():
        v = verify(path, ref, lora=adapter if kind == "base+lora" else None)
        v["size_mb"] = round(path.stat().st_size / 2**20, 1)
        v["tensor_types"] = tensor_types(path)
        report[kind] = v
        gate(kind, path, v)
    final = targets[quant] if quant in targets else f16
    tok = load_tokenizer(merged)
    atomic_write_text(ed.modelfile(), modelfile(final.name, tok, cfg.generation))
    if adapter is not None:
        atomic_write_text(
            ed.modelfile(lora=True), modelfile(targets["base+lora"].name, tok, cfg.generation, adapter.name)
        )
        result.modelfile_lora = str(ed.modelfile(lora=True))
    atomic_write_text(ed.verify, json.dumps(report, indent=2))
    atomic_write_text(ed.report, export_report(report, targets, adapter, f"{cfg.export.ollama_name or name}", ed))
    eval_dir = Path(x.eval_dir) if x.eval_dir else rd.eval_dir
    atomic_write_text(ed.card, model_card(rd, cfg, s, report, eval_dir))
    result.model_card = str(ed.card)
    result.gguf, result.modelfile, result.verify = str(final), str(ed.modelfile()), report
    atomic_write_text(ed.record, json.dumps(result.to_dict(), indent=2))
    return result


def export_report(report: dict, targets: dict, adapter: Path | None, ollama_name: str, ed: ExportDir) -> str:
    lines = [
        "# clinitune export report",
        "",
        "| file | size MB | top-1 agreement [95 % CI] | floor | examples | mean KL | llama.cpp tok/s | tensor types |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, v in report.items():
        shown = f"{targets[kind].name} + {adapter.name}" if kind == "base+lora" else targets[kind].name
        lines.append(
            f"| {shown} | {v['size_mb']} | {v['top1_agreement']} [{v['top1_ci95'][0]}, {v['top1_ci95'][1]}] | "
            f"{v['floor']} | {v['examples']} | {v['mean_kl']} | {v['tokens_per_s']} | "
            + ", ".join(f"{k}: {n}" for k, n in sorted(v["tensor_types"].items()))
            + " |"
        )
    lines += ["", f"Ollama: `ollama create {ollama_name} -f {ed.modelfile()}`"]
    return "\n".join(lines) + "\n"
