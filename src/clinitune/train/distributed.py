"""Several processes: replicated (DDP: gradients summed after backward), sharded with FSDP2, or DeepSpeed ZeRO.

FSDP2 follows torch's fully_shard: each decoder layer is one unit and the rest (embeddings,
final norm, head) is the root unit. `full_shard` frees gathered weights after each layer's forward
(ZeRO-3 memory); `shard_grad_op` keeps them until backward (ZeRO-2 traffic). Its checkpoints hold
full tensors, so a run resumes under any world size. DeepSpeed ZeRO-2/3 runs through its engine
(a JSON config or `accelerate launch` with a DeepSpeed config); clinitune's loop keeps the batching,
loss normalization, LR schedule and autocast, DeepSpeed partitions and reduces; its optimizer
partitions are checkpointed by DeepSpeed, so such a run resumes with the same world size.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from ..errors import ClinituneError
from .loss import decoder_and_head, loss_sum

# DeepSpeed is imported where it is used: it is an optional install (make setup adds it), slow to
# import, and only a run with training.deepspeed needs it.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    world: int = 1
    rank: int = 0
    sharding: str = "off"
    deepspeed: dict | None = None  # the resolved DeepSpeed config, when DeepSpeed shards

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def fsdp(self) -> bool:
        return self.world > 1 and self.sharding != "off" and self.deepspeed is None

    @property
    def sharded(self) -> bool:
        """Ranks gather weights together in every forward: they must run the same number of them."""
        return self.fsdp or self.deepspeed is not None

    def describe(self) -> str:
        if self.world == 1:
            return "1 process"
        if self.deepspeed is not None:
            return f"{self.world} processes, DeepSpeed ZeRO-{self.deepspeed['zero_optimization']['stage']}"
        return f"{self.world} processes, " + (f"FSDP2 {self.sharding}" if self.fsdp else "DDP")

    def sum(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        torch_dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def close(self, *, wait: bool = True) -> None:
        """Wait for every rank (unless leaving on an error, when the others may never arrive), then destroy the
        group."""
        if self.world > 1 and torch_dist.is_initialized():
            if wait:
                torch_dist.barrier()
            torch_dist.destroy_process_group()

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch_dist.all_gather_object(out, obj)
        return out


def sharding_from_launcher(configured: str) -> str:
    """training.fsdp, or what `accelerate launch --config_file <fsdp config>` put in the environment."""
    if configured != "off" or os.environ.get("ACCELERATE_USE_FSDP", "").lower() != "true":
        return configured
    strategy = os.environ.get("FSDP_SHARDING_STRATEGY", "").upper()
    if strategy in ("NO_SHARD", "3"):
        return "off"
    if strategy in ("SHARD_GRAD_OP", "2") or os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "false":
        return "shard_grad_op"
    return "full_shard"


def deepspeed_config(t, path: str | None) -> dict | None:
    """training.deepspeed, or what `accelerate launch --config_file <deepspeed config>` put in the environment,
    with the fields clinitune's loop owns filled in from the training config."""
    path = path or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or None
    if not path and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true":
        return None
    if path:
        try:
            ds = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ClinituneError(f"training.deepspeed: cannot read {path} as a DeepSpeed JSON config ({exc})") from None
    else:
        ds = {"zero_optimization": {"stage": int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))}}
    for section, owner in (
        ("optimizer", "training.optim and training.learning_rate"),
        ("scheduler", "training.lr_scheduler_type"),
    ):
        if section in ds:
            raise ClinituneError(f'{path}: remove the "{section}" section; clinitune builds it from {owner}')
    for section in ("bf16", "fp16"):
        if str(ds.get(section, {}).get("enabled", "auto")).lower() not in ("auto", "false"):
            raise ClinituneError(
                f'{path}: set {section}.enabled to "auto"; clinitune runs mixed precision as autocast, '
                "chosen by training.precision"
            )
        ds[section] = {"enabled": False}
    ours = {
        "train_micro_batch_size_per_gpu": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "gradient_clipping": t.max_grad_norm,
    }
    for key, value in ours.items():
        if ds.get(key, "auto") not in ("auto", value):
            raise ClinituneError(
                f"{path}: {key} is {ds[key]!r} but the training config says {value!r}; "
                f'set it to "auto" (clinitune fills it in)'
            )
        ds[key] = value
    ds.pop("train_batch_size", None)
    stage = ds.get("zero_optimization", {}).get("stage")
    if stage not in (1, 2, 3):
        raise ClinituneError(f"{path}: zero_optimization.stage must be 1, 2 or 3 (got {stage!r})")
    return ds


def init_distributed(device: str, sharding: str = "off", deepspeed: str | None = None, training=None) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    sharding = sharding_from_launcher(sharding)
    ds = deepspeed_config(training, deepspeed) if training is not None else None
    if world == 1:
        if sharding != "off" or ds is not None:
            log.warning(
                "%s is set but this is one process: sharding needs several (clinitune train --nproc N, or accelerate "
                "launch); "
                "training unsharded",
                "training.deepspeed" if ds is not None else f"training.fsdp={sharding}",
            )
        return Dist(sharding=sharding)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Dist(torch_dist.get_world_size(), torch_dist.get_rank(), sharding, ds)


class LossModule(torch.nn.Module):
    """The root of the model for training: the loss runs inside its forward, so under FSDP the root
    unit's weights (embeddings, final norm, a tied head) are gathered while the fused head uses them."""

    def __init__(self, model, device: str):
        super().__init__()
        self.model = model
        self.device = device

    def forward(self, batch: dict) -> tuple[torch.Tensor, int]:
        return loss_sum(self.model, batch, self.device)


def wrap(model, device: str, dist: Dist, quantized: bool = False) -> LossModule:
    """The root module to train; sharded with FSDP2 here (DeepSpeed wraps it later, with the optimizer)."""
    root = LossModule(model, device)
    if not dist.sharded:
        return root
    if quantized:
        raise ClinituneError(
            "sharding (training.fsdp or DeepSpeed) with lora.method: qlora is not supported: bitsandbytes 4-bit "
            "weights do not shard here. Use several processes without sharding, or lora.method: lora."
        )
    if dist.deepspeed is not None:
        if dist.deepspeed["zero_optimization"]["stage"] == 3:
            import deepspeed

            # The fused loss reads the head's weight outside the head's own forward: ZeRO-3 must gather it for the
            # root's.
            _, _, head = decoder_and_head(model)
            deepspeed.zero.register_external_parameter(root, head.weight)
        return root
    mesh = init_device_mesh(device, (dist.world,))
    reshard = dist.sharding == "full_shard"
    _, decoder, _ = decoder_and_head(model)
    for layer in getattr(decoder, "layers", []):
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(root, mesh=mesh, reshard_after_forward=reshard)
    return root


def deepspeed_engine(root, opt, dist: Dist):
    try:
        import deepspeed
    except ImportError:
        raise ClinituneError(
            "a DeepSpeed config was given but DeepSpeed is not installed: "
            "pip install --no-build-isolation deepspeed (or use training.fsdp)"
        ) from None
    engine, _, _, _ = deepspeed.initialize(model=root, optimizer=opt, config=dist.deepspeed, dist_init_required=False)
    return engine


def _zero3(p) -> bool:
    return hasattr(p, "ds_id")


def reshard(root) -> None:
    """Free gathered weights after forwards without a backward (eval): shard_grad_op keeps them
    gathered until a backward that never comes, and the optimizer and checkpoints need the shards."""
    for m in root.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Full CPU copies of the trainable weights. Under sharding every rank must call it (it gathers)."""
    out = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if _zero3(p):
            import deepspeed

            with deepspeed.zero.GatheredParameters([p]):
                out[n] = p.detach().to("cpu", copy=True).contiguous()
        else:
            out[n] = full_tensor(p.detach()).to("cpu", copy=True).contiguous()
    return out


def load_trainable(model, tensors: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise ClinituneError(
            f"checkpoint does not match the model ({len(missing)} unknown tensors, e.g. {missing[0]}); "
            "was the config changed since the run started?"
        )
    with torch.no_grad():
        for n, t in tensors.items():
            p = params[n]
            if _zero3(p):
                import deepspeed

                with deepspeed.zero.GatheredParameters([p], modifier_rank=0):  # rank 0's copy is partitioned to all
                    p.copy_(t.to(p.device, p.dtype))
            elif isinstance(p, DTensor):  # every rank holds the full tensor: each keeps its own shard, no traffic
                shard = distribute_tensor(t.to(p.dtype), p.device_mesh, p.placements, src_data_rank=None)
                p.to_local().copy_(shard.to_local())
            else:
                p.copy_(t.to(p.device, p.dtype))


def optimizer_state(root, opt) -> dict:
    """The optimizer's state keyed by parameter name, unsharded: the same file for any world size."""
    return get_optimizer_state_dict(root, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(root, opt, state: dict) -> None:
    set_optimizer_state_dict(root, opt, state, options=StateDictOptions(full_state_dict=True))
