"""Checkpoints that resume exactly: trainable weights, optimizer, scheduler, every RNG, data position.

Nothing here is unpickled from a file a user could have been handed: weights and the optimizer's
tensors are safetensors; RNG state, progress, the scheduler and the optimizer's structure are JSON.
DeepSpeed writes its optimizer partitions with pickle and reads them back with torch.load(weights_only=False),
so a DeepSpeed run's checkpoints hold clinitune's own files only and --resume refuses them with that reason.
checksums.json lists every file under the checkpoint, and a file it does not list is damage too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import RESUMABLE, Config, changes
from ..errors import ClinituneError
from ..layout import RunDir
from ..paths import atomic_dir, atomic_write_text, sha256_file
from .distributed import Dist, load_optimizer_state, load_trainable, optimizer_state, trainable_state

log = logging.getLogger(__name__)


@dataclass
class State:
    """Where a run stands; saved with every checkpoint as state.json."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # optimizer steps already taken in this epoch
    tokens: int = 0  # every non-pad token trained on
    response_tokens: int = 0  # the tokens the loss is computed on
    best_eval: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    """Every generator's state as plain JSON values: a checkpoint's RNG file is read without pickle."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def set_rng_state(rng: dict) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = rng["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    if rng["cuda"]:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng["cuda"]])


def _encode(obj, tensors: dict):
    """A state dict as JSON with its tensors set aside: dict keys keep their type (optimizer states are keyed by
    parameter index), tuples stay tuples."""
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"tensor": key}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [_encode(v, tensors) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"cannot save {type(obj).__name__} in a checkpoint state without pickle")


def _decode(node, tensors: dict):
    ((kind, v),) = node.items()
    if kind == "tensor":
        return tensors[v]
    if kind == "dict":
        return {_decode(k, tensors): _decode(x, tensors) for k, x in v}
    if kind in ("list", "tuple"):
        items = [_decode(x, tensors) for x in v]
        return items if kind == "list" else tuple(items)
    return v


def save_state(folder: Path, name: str, state: dict) -> None:
    """`name.json` (structure and plain values) and `name.safetensors` (tensors): read back without pickle."""
    tensors: dict = {}
    atomic_write_text(folder / f"{name}.json", json.dumps(_encode(state, tensors)))
    save_file(tensors, str(folder / f"{name}.safetensors"))


def load_state(folder: Path, name: str) -> dict:
    return _decode(json.loads((folder / f"{name}.json").read_text()), load_file(str(folder / f"{name}.safetensors")))


def save_checkpoint(run: RunDir, root, model, opt, sched, st: State, keep: int, dist: Dist = Dist()) -> Path | None:
    """Every rank calls it (sharded weights and optimizer states are gathered, or written by each rank); rank 0
    commits."""
    weights, rngs = trainable_state(model), dist.gather(rng_state())
    optim = optimizer_state(root, opt) if dist.deepspeed is None else None
    target = run.checkpoint(st.step)
    with atomic_dir(target) if dist.main else contextlib.nullcontext() as tmp:
        tmp = Path(dist.broadcast(str(tmp) if dist.main else None))
        dist.barrier()  # every rank's files are in before rank 0 renames the dir into place
        if dist.main:
            save_file(weights, str(tmp / "trainable.safetensors"))
            if optim is not None:
                save_state(tmp, "optimizer", optim)
            save_state(tmp, "scheduler", sched.state_dict())
            atomic_write_text(tmp / "rng.json", json.dumps({"ranks": rngs}))
            atomic_write_text(tmp / "state.json", json.dumps(asdict(st), indent=2))
            # Last: what each file must hash to, so a resume can tell a damaged checkpoint from a good one.
            sums = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            atomic_write_text(tmp / CHECKSUMS, json.dumps(sums, indent=2))
    if not dist.main:
        return None
    for old in run.checkpoints()[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


CHECKSUMS = "checksums.json"


def damage(ckpt: Path) -> str | None:
    """What is wrong with a checkpoint's files (missing, or not what was written), or None if intact."""
    sums_file = ckpt / CHECKSUMS
    if not sums_file.is_file():
        return f"no {CHECKSUMS} (incomplete, or from an older clinitune)"
    try:
        sums = json.loads(sums_file.read_text())
    except json.JSONDecodeError:
        return f"{CHECKSUMS} is damaged"
    for name, digest in sums.items():
        f = ckpt / name
        if not f.is_file():
            return f"{name} is missing"
        if sha256_file(f) != digest:
            return f"{name} differs from what was written"
    extra = [str(p.relative_to(ckpt)) for p in sorted(ckpt.rglob("*")) if p.is_file()]
    extra = [n for n in extra if n != CHECKSUMS and n not in sums]
    return f"{extra[0]} was not written with the checkpoint" if extra else None


def intact_checkpoint(run: RunDir) -> Path | None:
    """The newest checkpoint whose files hash as written; each damaged one passed over is named in a warning."""
    for ckpt in reversed(run.checkpoints(complete_only=True)):
        problem = damage(ckpt)
        if problem is None:
            return ckpt
        log.warning("%s is damaged (%s); trying the checkpoint before it", ckpt.name, problem)
    return None


def resume_changes(run: RunDir, cfg: Config) -> list[str]:
    """The config changes a resume records; a change that would not continue the same run is refused by key."""
    if not run.config.is_file():
        return []
    diff = changes(run.read_config(), cfg)
    breaking = [c for c in diff if not c[0].startswith(RESUMABLE)]
    if breaking:
        listed = "; ".join(f"{k} {a!r} -> {b!r}" for k, a, b in breaking)
        raise ClinituneError(
            f"--resume {run.path}: the config changed ({listed}), so this would not continue the same run; "
            f"resume with its own config ({run.config}) or train into a new training.output_dir"
        )
    return [f"resumed with {k} changed from {a!r} to {b!r}" for k, a, b in diff]


def restore_checkpoint(ckpt: Path, root, model, opt, sched, dist: Dist = Dist()) -> State:
    if dist.deepspeed is not None or (ckpt / "deepspeed").exists():
        raise ClinituneError(
            f"--resume {ckpt}: DeepSpeed keeps its optimizer state in pickles, which clinitune neither writes nor "
            "loads (a tampered one would run code); resume with training.fsdp instead, or start the run again"
        )
    load_trainable(model, load_file(str(ckpt / "trainable.safetensors")))
    if (ckpt / "optimizer.json").is_file():
        load_optimizer_state(root, opt, load_state(ckpt, "optimizer"))
    elif (ckpt / "optimizer.pt").is_file() or not (ckpt / "rng.json").is_file():
        # Older checkpoints kept optimizer and RNG state in pickles; a tampered one could run code, so none is loaded.
        raise ClinituneError(
            f"{ckpt}: a checkpoint from an older clinitune (pickle state files), or incomplete; "
            "start the run again without --resume"
        )
    else:
        raise ClinituneError(f"{ckpt}: no optimizer state (a DeepSpeed run's checkpoint); start the run again")
    sched.load_state_dict(load_state(ckpt, "scheduler"))
    ranks = json.loads((ckpt / "rng.json").read_text())["ranks"]
    set_rng_state(ranks[dist.rank] if len(ranks) == dist.world else ranks[0])
    return State(**json.loads((ckpt / "state.json").read_text()))


def save_best(run: RunDir, weights: dict) -> None:
    """The best eval-loss weights so far, replaced atomically."""
    run.best_weights.parent.mkdir(exist_ok=True)
    tmp = run.best_weights.with_name(".trainable.safetensors.tmp")
    save_file(weights, str(tmp))
    tmp.replace(run.best_weights)


def load_best(run: RunDir, model) -> None:
    load_trainable(model, load_file(str(run.best_weights)))
