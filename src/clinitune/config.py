"""One pydantic schema for every clinitune YAML config.

Unknown keys are errors with a suggestion, out-of-range values name their range, and every
message points at the file and line, because a typo in a config should cost seconds, not a run.

Longer than 400 lines because it is the one schema for every section (model to export) and its loader.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ClinituneError

# The spec's "Use learning rate too high (>5e-4) or too low (<1e-5)".
LR_RANGE = (1e-5, 5e-4)
# Names users bring from peft, TRL and Axolotl configs, for "did you mean" when difflib cannot see it.
SYNONYMS = {
    "rank": "r",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "targets": "target_modules",
    "dora": "use_dora",
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "micro_batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "scheduler": "lr_scheduler_type",
    "warmup": "warmup_ratio",
    "output": "output_dir",
    "model_name": "name_or_path",
    "name": "name_or_path",
    "path": "name_or_path",
    "base_model": "name_or_path",
    "sequence_len": "max_seq_length",
    "max_length": "max_seq_length",
    "patience": "early_stopping_patience",
    "quant_type": "bnb_4bit_quant_type",
}
SPEC_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        # YAML reads `r: true` as a bool, and pydantic would take it as 1: a typo must not become a setting.
        kind = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and kind in (int, float, int | None, float | None):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


SourceKind = Literal["database", "csv", "jsonl", "json", "fhir"]
PhiAction = Literal["quarantine", "redact", "mask", "fail"]


class PrepareConfig(_Section):
    """`clinitune prepare`: where the records come from, what the data set holds, how it is screened and split.
    Each prepare flag is a shorthand for one of these keys."""

    source: SourceKind = "database"
    db: str | None = Field("sqlite:///data/clinic.db", description="SQLAlchemy URL, for source: database or table.")
    path: str | None = Field(None, description="Input file or dir, for file sources.")
    table: str | None = Field(None, description="A table of db that is not clinitune's own (records with field_map).")
    out: str = Field("data/prepared", description="Output dir for train/eval/test JSONL, manifest and report.")
    tasks: list[str] | None = Field(None, description="Task names; null: every task.")
    max_examples: int | None = Field(None, ge=1)
    augment: bool = Field(False, description="Rephrase instructions and vary demographics.")
    skip_invalid: bool = Field(False, description="Continue past bad records, writing them to a rejects file.")
    canaries: int = Field(0, ge=0, description="Random secrets planted in train for eval's exposure probe.")
    codebook: bool | None = Field(None, description="Add the ICD-10-CM table to train; null: on for records.")
    phi_action: PhiAction = "quarantine"
    group_by: str | None = Field(None, description="Field naming each example's patient (e.g. patient_id).")
    field_map: str | None = Field(None, description="YAML file naming where your records keep each field.")
    split: list[float] = Field([0.8, 0.1, 0.1], min_length=3, max_length=3, description="Train, eval, test shares.")
    key_file: str | None = Field(None, description="The data set's secret key file (0600, outside out).")
    seed: int = Field(42, ge=0, le=2**32 - 1)

    @field_validator("tasks", mode="before")
    @classmethod
    def _comma_tasks(cls, value):
        return [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else value

    @field_validator("split", mode="before")
    @classmethod
    def _comma_split(cls, value):
        if isinstance(value, str):
            try:
                return [float(x) for x in value.split(",")]
            except ValueError:
                raise ValueError(f"{value!r}: give train,eval,test shares, e.g. 0.8,0.1,0.1") from None
        return value

    @field_validator("split")
    @classmethod
    def _shares(cls, value):
        if min(value) < 0 or value[0] <= 0 or abs(sum(value) - 1) > 1e-6:
            raise ValueError(f"{','.join(map(str, value))}: three non-negative shares, train above 0, summing to 1")
        return value


class QuickstartConfig(_Section):
    """What only `clinitune quickstart` reads (configs/quickstart*.yaml are its profiles)."""

    patients: int = Field(400, ge=10, description="Synthetic patients in the quickstart's database.")


class ModelConfig(_Section):
    name_or_path: str = Field("smollm2-135m-instruct", description="Alias, hub id, local HF dir or .gguf file.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = Field(False, description="Allow .bin/.pt pickle weights; off because pickle runs code.")


class QuantizationConfig(_Section):
    load_in_4bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_compute_dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"
    bnb_4bit_use_double_quant: bool = True


class LoraConfig(_Section):
    method: Literal["lora", "qlora", "full"] = "lora"
    r: int = Field(64, ge=1, le=1024)
    lora_alpha: float = Field(16, gt=0, le=4096)
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    bias: Literal["none", "all", "lora_only"] = "none"
    target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: list(SPEC_TARGETS))
    use_dora: bool = False
    loraplus_lr_ratio: float | None = Field(
        None,
        ge=1.0,
        le=1000.0,
        description=(
            "LoRA+: the B matrices learn this many times faster than A (16 is the paper's choice). "
            "Fits more learning into few steps; off when null."
        ),
    )


class DataConfig(_Section):
    train: str | None = None
    eval: str | None = None
    test: str | None = None
    max_seq_length: int = Field(1024, ge=16, le=131072)
    packing: bool = True
    eval_max_examples: int | None = Field(
        None, ge=1, description="Eval loss on a fixed random subset, to keep evals short."
    )
    task_weights: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Per-task share of each training epoch: 2 repeats a task's examples, 0.5 takes a fresh half of them each "
            "epoch. "
            "Unlisted tasks weigh 1. Balances short fact tasks against long JSON ones."
        ),
    )
    task_temperature: float | None = Field(
        None,
        ge=1,
        le=100,
        description=(
            "Temperature sampling over tasks: a task's share of an epoch goes as n^(1/T); 1 keeps the data's mix, "
            "larger evens it out so small hard tasks are not drowned by long ones. task_weights still win."
        ),
    )
    allow_phi: bool = Field(
        False,
        description=(
            "Train on data files that clinitune prepare did not write even when the PHI screen finds identifiers in "
            "them. "
            "Off by default: such a file is screened first and refused on a hit. The run records the override."
        ),
    )

    @field_validator("task_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not (0 < w <= 100)}
        if bad:
            raise ValueError(f"weights must be in (0, 100]; got {bad}")
        return v


class TrainingConfig(_Section):
    output_dir: str = "runs/default"
    per_device_train_batch_size: int = Field(4, ge=1, le=4096)
    per_device_eval_batch_size: int = Field(8, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(4, ge=1, le=4096)
    learning_rate: float = Field(2.0e-4, gt=0.0, le=1.0)
    lr_scheduler_type: Literal["cosine", "linear", "constant", "warmup_stable_decay"] = Field(
        "cosine",
        description=(
            "warmup_stable_decay holds the peak rate and decays linearly over the last 20 % of steps; "
            "at a high peak rate it is less stable than cosine."
        ),
    )
    warmup_ratio: float = Field(0.03, ge=0.0, le=0.5)
    weight_decay: float = Field(0.001, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    num_train_epochs: float = Field(3, gt=0, le=1000)
    max_steps: int = Field(-1, ge=-1, description="-1: train for num_train_epochs.")
    max_minutes: float | None = Field(
        None,
        ge=0.5,
        le=10080,
        description="Train for this long instead: steps, warmup and decay are planned from a measured step time.",
    )

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v == 0:
            raise ValueError("0 steps would train nothing; use -1 to train num_train_epochs, or a positive count")
        return v

    optim: Literal["adamw_torch", "paged_adamw_8bit", "adamw_8bit"] = "adamw_torch"
    gradient_checkpointing: bool = True
    fused_lora: bool = Field(
        True, description="Each LoRA linear layer as one autograd node of GEMMs only (off: PEFT's own forward)."
    )
    fused_layers: bool = Field(
        True,
        description="RMSNorms and SwiGLU activations as single autograd nodes that keep only their 16-bit inputs "
        "(off: the model's own code).",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    seed: int = Field(42, ge=0, le=2**32 - 1)  # numpy's seed range
    logging_steps: int = Field(10, ge=1)
    eval_steps: int = Field(50, ge=1)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int = Field(3, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1, description="Evals without improvement; null disables.")
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"], description="Where metrics go besides metrics.jsonl."
    )
    mlflow_tracking_uri: str | None = Field(None, description="Default: $MLFLOW_TRACKING_URI, else ./mlflow.db.")
    mlflow_experiment: str = "clinitune"
    fsdp: Literal["off", "full_shard", "shard_grad_op"] = Field(
        "off",
        description="With several processes: shard weights, gradients and optimizer states (FSDP2). "
        "full_shard is ZeRO-3-like, shard_grad_op ZeRO-2-like; off replicates the model (DDP).",
    )
    deepspeed: str | None = Field(
        None,
        description="A DeepSpeed JSON config (ZeRO stage 1-3) to shard through DeepSpeed's engine with several "
        "processes; "
        "configs/accelerate/ds_zero2.json and ds_zero3.json are examples. `accelerate launch` sets it too.",
    )


class GenerationConfig(_Section):
    max_new_tokens: int = Field(200, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    repetition_penalty: float = Field(1.1, gt=0.0, le=5.0)
    truncate_prompt: bool = Field(
        False,
        description="A prompt too long for the context loses the end of its last user message (with a warning) "
        "instead of being refused.",
    )


class EvalConfig(_Section):
    """Defaults of `clinitune eval --run RUN` (its flags override them)."""

    baselines: list[Literal["zero-shot", "few-shot"]] = Field(default_factory=lambda: ["zero-shot", "few-shot"])
    few_shot_k: int = Field(2, ge=1, le=32)
    limit: int | None = Field(
        None, ge=1, description="N / tasks test examples per task, up to 4x for short-answer tasks; none: all."
    )
    batch_size: int = Field(32, ge=1)
    seed: int = Field(
        42, ge=0, le=2**32 - 1, description="Seed of the test sample and the bootstrap intervals (not training.seed)."
    )
    constrain: bool = Field(
        False, description="Also score record and FHIR answers constrained to their JSON Schema (HF and GGUF)."
    )
    backend: Literal["hf", "llama_cpp"] = Field(
        "hf",
        description="Who writes the replies: transformers, or llama.cpp on each model written as an f16 GGUF "
        "(continuous batching; losses and probes stay on transformers).",
    )
    cache_baselines: bool = Field(
        True,
        description="Keep the base model's answers beside the data set and reuse them for the same model, prompts "
        "and settings.",
    )


class ExportConfig(_Section):
    format: Literal["hf", "gguf"] = "gguf"
    quantize: Literal["f32", "f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k"] = "q4_k_m"
    out_dir: str | None = None
    lora_gguf: bool = False
    ollama_name: str | None = None
    eval_dir: str | None = Field(None, description="Eval output whose table goes in the model card (default RUN/eval).")


class PrivacyConfig(_Section):
    """Differentially private training (DP-SGD) with the patient as the unit; off unless target_epsilon is set."""

    target_epsilon: float | None = Field(None, gt=0, le=100, description="The (epsilon, delta) guarantee to meet.")
    delta: float | None = Field(None, gt=0, lt=1, description="Default: 1 / the number of training patients.")
    max_grad_norm: float = Field(1.0, gt=0, description="Each patient's gradient is clipped to this L2 norm.")
    patients_per_step: int = Field(16, ge=1, description="Expected patients per step (Poisson sampling rate x N).")
    accountant: Literal["rdp", "prv"] = "rdp"


class ServeConfig(_Section):
    """Defaults of `clinitune serve` (its flags override them). The API key is never a config value: a flag or
    $CLINITUNE_API_KEY, so it stays out of the run's config.yaml."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_tokens: int = Field(512, ge=1, le=32768, description="Cap on max_tokens; a request asking more is a 400.")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="A larger request body is a 413.")
    n_ctx: int = Field(2048, ge=128, le=131072)
    phi_filter: bool = Field(False, description="Redact identifiers the PHI screen finds in each answer.")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed to call the server.")


class Config(_Section):
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    quickstart: QuickstartConfig = Field(default_factory=QuickstartConfig)

    @model_validator(mode="after")
    def _method_matches_quantization(self) -> Config:
        if self.lora.method == "qlora" and not self.quantization.load_in_4bit:
            # QLoRA is 4-bit by definition; saying it twice is not the user's job.
            self.quantization.load_in_4bit = True
        if self.quantization.load_in_4bit and self.lora.method != "qlora":
            raise ValueError(
                "quantization.load_in_4bit: true needs lora.method: qlora (4-bit weights cannot be fully fine-tuned)"
            )
        if self.lora.loraplus_lr_ratio is not None and self.lora.method == "full":
            raise ValueError(
                "lora.loraplus_lr_ratio applies to LoRA's B matrices; full fine-tuning has none. "
                "Remove it, or use lora.method: lora"
            )
        return self


# ---------------------------------------------------------------- loading


def _section_model(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `loc` (the key's parent), or None."""
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *typing.get_args(ann)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _range_of(loc: tuple) -> list[str]:
    """Every bound declared on the field at `loc`, so the message names the whole range."""
    parent = _section_model(loc)
    field = parent.model_fields.get(loc[-1]) if parent and loc else None
    out = []
    for meta in field.metadata if field else []:
        for attr, sym in _BOUNDS.items():
            if getattr(meta, attr, None) is not None:
                out.append(f"{sym} {getattr(meta, attr)}")
    return out


def _yaml_line(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the key at `loc` in a composed YAML tree."""
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if key.value == str(part):
                line, node = key.start_mark.line + 1, value
                break
        else:
            break
    return line


def _format_error(err: dict, source: str, root: yaml.Node | None) -> str:
    loc = tuple(p for p in err["loc"] if isinstance(p, str))
    dotted = ".".join(loc) or "(top level)"
    line = _yaml_line(root, loc)
    where = f"{source}:{line}" if line else source
    if err["type"] == "extra_forbidden":
        parent = _section_model(loc)
        valid = list(parent.model_fields) if parent else []
        key = str(loc[-1]) if loc else ""
        close = (
            [SYNONYMS[key]] if SYNONYMS.get(key) in valid else difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        )
        hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(valid)}"
        return f"{where}: {dotted}: unknown key; {hint}"
    ctx = err.get("ctx") or {}
    limits = _range_of(loc) if any(k in ctx for k in _BOUNDS) else []
    got = err.get("input")
    if limits:
        return f"{where}: {dotted}: {got!r} is out of range; allowed: {' and '.join(limits)}"
    if err["type"] == "literal_error":
        return f"{where}: {dotted}: {got!r} is not allowed; expected {ctx.get('expected')}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {dotted}: {msg}" + (f" (got {got!r})" if loc and not isinstance(got, dict) else "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.learning_rate=1e-4` -> (["training", "learning_rate"], 1e-4), values parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ClinituneError(f"--set {text!r}: expected KEY=VALUE, e.g. --set training.learning_rate=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        why = str(getattr(exc, "problem", None) or "not valid YAML")
        raise ClinituneError(
            f"--set {text!r}: the value is not valid YAML ({why}); quote it, e.g. --set '{key.strip()}=\"...\"', "
            "or write a list as [a, b]"
        ) from None
    keys = key.strip().split(".")
    if any(not k for k in keys):
        raise ClinituneError(f"--set {text!r}: empty part in the key; write it as section.key=VALUE")
    return keys, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = node[k] = {}
            node = nxt
        node[keys[-1]] = value
    return data


def validate(data: dict, source: str = "<config>", root: yaml.Node | None = None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e, source, root) for e in exc.errors()]
        raise ClinituneError(
            ("invalid config: " if len(lines) == 1 else "invalid config:\n  ") + "\n  ".join(lines)
        ) from None


def duplicate_key(node) -> tuple[str, int] | None:
    """The first key that repeats within one YAML mapping (PyYAML keeps the last one silently), with its line."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    return k.value, k.start_mark.line + 1
                seen.add(k.value)
            if found := duplicate_key(v):
                return found
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            if found := duplicate_key(v):
                return found
    return None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a YAML config. `path=None` gives the defaults plus overrides."""
    data: dict = {}
    root = None
    source = str(path) if path else "<defaults>"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ClinituneError(
                f"{p}: config file not found; shipped configs are in configs/ (e.g. configs/lora_config.yaml)"
            )
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ClinituneError(f"{p}: not UTF-8 text; save the config as UTF-8") from None
        if not text.strip():
            raise ClinituneError(f"{p}: the config is empty; start from configs/lora_config.yaml")
        try:
            root = yaml.compose(text)
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark else str(p)
            raise ClinituneError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(data, dict):
            raise ClinituneError(
                f"{p}: a config is a mapping of sections (model:, lora:, training: ...), got {type(data).__name__}"
            )
        if dup := duplicate_key(root):
            key, line = dup
            raise ClinituneError(f"{p}:{line}: key {key!r} appears twice in one section; keep one")
    if overrides:
        data = apply_overrides(data, overrides)
        source += " (with --set)"
    return validate(data, source, root)


def config_warnings(cfg: Config) -> list[str]:
    """Advice from the spec that is not an error: the run may still be what the user wants."""
    out = []
    lr = cfg.training.learning_rate
    if not LR_RANGE[0] <= lr <= LR_RANGE[1]:
        out.append(
            f"training.learning_rate={lr:g} is outside the recommended {LR_RANGE[0]:g}..{LR_RANGE[1]:g}: "
            "too high gives gibberish, too low a loss that does not fall"
        )
    if cfg.lora.method != "full" and cfg.lora.lora_alpha > 4 * cfg.lora.r:
        out.append(f"lora.lora_alpha={cfg.lora.lora_alpha:g} is far above r={cfg.lora.r}; typical is r/4 to r")
    return out


# What a resumed run may change: when to stop, save, evaluate and log, and everything after training.
# Anything else (the model, the adapter, the data, the optimizer's settings) would not continue the same run.
RESUMABLE = (
    "training.output_dir",
    "training.max_steps",
    "training.max_minutes",
    "training.num_train_epochs",
    "training.save_steps",
    "training.eval_steps",
    "training.logging_steps",
    "training.save_total_limit",
    "training.early_stopping_patience",
    "training.report_to",
    "training.mlflow_tracking_uri",
    "training.mlflow_experiment",
    "eval.",
    "export.",
    "generation.",
)


def changes(old: Config, new: Config) -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) for every setting that differs."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(old.model_dump(mode="json")), flat(new.model_dump(mode="json"))
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
