"""Model preparation for a training method: device and precision, 4-bit loading, LoRA targets."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig

from ..config import Config
from ..errors import ClinituneError
from .loading import load_causal_lm

log = logging.getLogger(__name__)

# LoRA targets by architecture: attention and MLP projections, in each family's own names.
TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "stablelm": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


@dataclass(frozen=True)
class Plan:
    device: str
    weight_dtype: torch.dtype  # how frozen weights are stored
    compute_dtype: torch.dtype | None  # autocast dtype; None = no autocast
    four_bit: bool


def plan(cfg: Config) -> Plan:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    prec = cfg.training.precision
    if prec == "auto":
        prec = (
            ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else ("bf16" if cpu_has_bf16() else "fp32")
        )
    compute = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[prec]
    if cfg.lora.method == "qlora":
        if not cuda:
            raise ClinituneError(
                "lora.method: qlora needs a CUDA GPU: bitsandbytes' 4-bit NF4 training kernels do not run on this CPU. "
                "Use lora.method: lora (bf16 on CPUs with avx512_bf16/AMX), e.g. --set lora.method=lora --set "
                "quantization.load_in_4bit=false"
            )
        return Plan(device, getattr(torch, cfg.quantization.bnb_4bit_compute_dtype), compute, True)
    # LoRA keeps the frozen base in the compute dtype (no per-step casts); full fine-tuning keeps fp32 master weights.
    if cfg.model.dtype != "auto":
        weight = getattr(torch, cfg.model.dtype)
    else:
        weight = compute if (cfg.lora.method == "lora" and compute is not None) else torch.float32
    return Plan(device, weight, compute, False)


def load_for_training(cfg: Config, model_dir, p: Plan):
    kwargs = {}
    if p.four_bit:
        q = cfg.quantization
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=q.bnb_4bit_quant_type,
            bnb_4bit_compute_dtype=getattr(torch, q.bnb_4bit_compute_dtype),
            bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
        )
        kwargs["device_map"] = {"": 0}
    dtype = str(p.weight_dtype).removeprefix("torch.")
    model = load_causal_lm(
        model_dir,
        dtype=dtype,
        trust_remote_code=cfg.model.trust_remote_code,
        allow_pickle=cfg.model.allow_pickle,
        **kwargs,
    )
    if not p.four_bit:
        model.to(p.device)
    model.config.use_cache = False
    return model


def lora_targets(cfg: Config, model) -> list[str] | str:
    if cfg.lora.target_modules == "all-linear":
        return "all-linear"
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    wanted = [t for t in cfg.lora.target_modules if t in names]
    if wanted:
        missing = sorted(set(cfg.lora.target_modules) - names)
        if missing:
            log.warning(
                "lora.target_modules: %s not in this %s model; using %s",
                ", ".join(missing),
                model.config.model_type,
                wanted,
            )
        return wanted
    default = [t for t in TARGETS.get(model.config.model_type, []) if t in names]
    if not default:
        raise ClinituneError(
            f"lora.target_modules: none of {cfg.lora.target_modules} exist in this model; "
            f"its linear layers are {sorted(names)} (or use all-linear)"
        )
    log.warning("lora.target_modules do not match %s; using its defaults %s", model.config.model_type, default)
    return default


def apply_method(cfg: Config, model, p: Plan):
    """Wrap the model for the configured method; returns the model to train."""
    if cfg.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.method == "full":
        for prm in model.parameters():
            prm.requires_grad_(True)
        return model

    if p.four_bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    lc = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.lora_alpha,
        lora_dropout=cfg.lora.lora_dropout,
        bias=cfg.lora.bias,
        target_modules=lora_targets(cfg, model),
        use_dora=cfg.lora.use_dora,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lc)
    # Adapters train in fp32 (their gradients and Adam states are small); autocast runs their matmuls in bf16.
    for name, prm in model.named_parameters():
        if prm.requires_grad and prm.dtype != torch.float32:
            prm.data = prm.data.float()
    if p.compute_dtype is not None:
        # peft casts each LoRA input up to the adapter's fp32 and autocast casts it back down: two
        # activation copies per adapted layer for nothing. Under autocast the matmul casts anyway.
        for m in model.modules():
            if hasattr(m, "cast_input_dtype_enabled"):
                m.cast_input_dtype_enabled = False
    return model


def autocast(plan: Plan):
    """Mixed precision as the plan says (bf16 or fp16 compute), or a no-op for fp32."""
    return torch.autocast(
        plan.device, dtype=plan.compute_dtype or torch.float32, enabled=plan.compute_dtype is not None
    )
