"""`clinitune train`: one plain training loop for LoRA, QLoRA and full fine-tuning.

Why not transformers.Trainer: the loss here never materializes full-vocabulary logits for prompt
tokens (the head and its cross-entropy run fused, in chunks, on response positions only), packed rows keep
examples apart through restarting position ids, and checkpoints hold exactly what an exact
resume needs (trainable weights, optimizer, scheduler, RNG states, data position).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import resource
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..config import Config, to_yaml
from ..data.example import load as load_examples
from ..data.manifest import phi_gate
from ..errors import ClinituneError
from ..paths import atomic_dir, atomic_write_text
from . import collate as C
from .callbacks import Monitor
from .distributed import (Dist, deepspeed_engine, full_tensor, init_distributed, load_optimizer_state, load_trainable, optimizer_state,
                          reshard, trainable_state, wrap)

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lr_lambda(kind: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        if kind == "warmup_stable_decay":  # full rate until the last 20 % of steps, then linear to zero
            decay = max(1, round(0.2 * (total - warmup)))
            return min(1.0, max(0.0, (total - step) / decay))
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * progress))) if kind == "cosine" else max(0.0, 1 - progress)
    return f


def make_optimizer(cfg: Config, model, device: str):
    t = cfg.training
    # B starts at zero, so at A's learning rate it grows slowly; LoRA+ (Hayou et al. 2024) gives it a larger one.
    ratio = cfg.lora.loraplus_lr_ratio
    decay, no_decay, lora_b = [], [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            if ratio and ".lora_B." in n:
                lora_b.append(p)
            else:
                (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    groups = [g for g in ({"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0},
                          {"params": lora_b, "weight_decay": t.weight_decay, "lr": t.learning_rate * (ratio or 1.0)}) if g["params"]]
    if t.optim in ("paged_adamw_8bit", "adamw_8bit"):
        if device != "cuda":
            log.warning("training.optim=%s needs CUDA; using adamw_torch on this CPU", t.optim)
        else:
            import bitsandbytes as bnb

            cls = bnb.optim.PagedAdamW8bit if t.optim == "paged_adamw_8bit" else bnb.optim.AdamW8bit
            return cls(groups, lr=t.learning_rate)
    return torch.optim.AdamW(groups, lr=t.learning_rate, fused=device == "cuda")


@dataclass
class State:
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


def _rng_state() -> dict:
    """Every generator's state as plain JSON values: a checkpoint's RNG file is read without pickle."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "torch": torch.get_rng_state().tolist(),
            "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []}


def _set_rng_state(rng: dict) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = rng["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    if rng["cuda"]:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng["cuda"]])


def save_checkpoint(run: Path, root, model, opt, sched, st: State, keep: int, dist: Dist = Dist()) -> Path | None:
    """Every rank calls it (sharded weights and optimizer states are gathered, or written by each rank); rank 0 commits."""
    weights, rngs = trainable_state(model), dist.gather(_rng_state())
    optim = optimizer_state(root, opt) if dist.deepspeed is None else None
    target = run / f"checkpoint-{st.step}"
    with atomic_dir(target) if dist.main else contextlib.nullcontext() as tmp:
        tmp = Path(dist.broadcast(str(tmp) if dist.main else None))
        if dist.deepspeed is not None:  # each rank writes its optimizer partition
            root.save_checkpoint(str(tmp), tag="deepspeed", save_latest=False, exclude_frozen_parameters=True)
        dist.barrier()  # every rank's files are in before rank 0 renames the dir into place
        if dist.main:
            save_file(weights, str(tmp / "trainable.safetensors"))
            if optim is not None:
                torch.save(optim, tmp / "optimizer.pt")
            torch.save(sched.state_dict(), tmp / "scheduler.pt")
            atomic_write_text(tmp / "rng.json", json.dumps({"ranks": rngs}))
            atomic_write_text(tmp / "state.json", json.dumps(st.__dict__, indent=2))
    if not dist.main:
        return None
    ckpts = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in ckpts[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(run: Path) -> Path | None:
    ckpts = sorted((p for p in run.glob("checkpoint-*") if (p / "state.json").is_file()), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def restore_checkpoint(ckpt: Path, root, model, opt, sched, dist: Dist = Dist()) -> State:
    load_trainable(model, load_file(str(ckpt / "trainable.safetensors")))
    if dist.deepspeed is not None:
        if not (ckpt / "deepspeed").is_dir():
            raise ClinituneError(f"{ckpt} was not written by DeepSpeed; resume it without the DeepSpeed config")
        root.load_checkpoint(str(ckpt), tag="deepspeed", load_optimizer_states=True, load_lr_scheduler_states=False,
                             load_module_strict=False)
    elif (ckpt / "optimizer.pt").is_file():
        load_optimizer_state(root, opt, torch.load(ckpt / "optimizer.pt", weights_only=True))
    else:
        raise ClinituneError(f"{ckpt} holds DeepSpeed optimizer partitions; resume it with the same DeepSpeed config and world size")
    sched.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
    if not (ckpt / "rng.json").is_file():
        # Older checkpoints kept RNG state in a pickle (rng.pt); a tampered one could run code, so it is never loaded.
        raise ClinituneError(f"{ckpt}: no rng.json (a checkpoint from an older clinitune, or incomplete); "
                             "start the run again without --resume")
    ranks = json.loads((ckpt / "rng.json").read_text())["ranks"]
    _set_rng_state(ranks[dist.rank] if len(ranks) == dist.world else ranks[0])
    return State(**json.loads((ckpt / "state.json").read_text()))


def evaluate(root, rows: list[C.Row], cfg: Config, plan, pad_id: int, dist: Dist = Dist()) -> float:
    root.eval()
    total, n = 0.0, 0
    bs = cfg.training.per_device_eval_batch_size
    mine = rows[dist.rank::dist.world]
    # Sharded ranks must run the same number of forwards (each one gathers weights together).
    batches = math.ceil(math.ceil(len(rows) / dist.world) / bs)
    with torch.no_grad(), torch.autocast(plan.device, dtype=plan.compute_dtype or torch.float32, enabled=plan.compute_dtype is not None):
        for i in range(batches):
            chunk = mine[i * bs:(i + 1) * bs]
            if not chunk and not dist.sharded:
                break
            s, k = root(C.collate(chunk or rows[:1], pad_id))
            if chunk:
                total += float(s)
                n += k
    root.train()
    if dist.sharded:
        reshard(root)
    total, n = dist.sum(total, n)
    return total / max(n, 1)


class _Silent:
    """The monitor of ranks other than 0: they train, rank 0 reports."""
    tokens_at_window = 0

    def __getattr__(self, name):
        return lambda *a, **k: None


def _fault_injection(step: int) -> None:
    # For the kill-and-resume test: a real SIGKILL, no cleanup, right after `step` completes.
    kill_at = os.environ.get("CLINITUNE_FAULT_AFTER_STEP")
    if kill_at and int(kill_at) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def train(cfg: Config, *, resume: bool = False, quiet: bool = False, force: bool = False) -> dict:
    from ..models.adapt import plan as make_plan

    t = cfg.training
    if not cfg.data.train:
        raise ClinituneError("data.train is not set; point it at train.jsonl from clinitune prepare")
    plan = make_plan(cfg)
    dist = init_distributed(plan.device, t.fsdp, t.deepspeed, t)
    try:
        summary = _train(cfg, plan, dist, resume=resume, quiet=quiet, force=force)
    except BaseException:
        dist.close(wait=False)
        raise
    # Every rank leaves together: one that exits while another still writes drops its gloo connections
    # under the other's feet. (A launched rank then skips interpreter teardown: cli.main.)
    dist.close()
    return summary


def _train(cfg: Config, plan, dist: Dist, *, resume: bool, quiet: bool, force: bool) -> dict:
    from ..models.adapt import apply_method, load_for_training
    from ..models.loading import load_tokenizer
    from ..models.registry import resolve_model

    t = cfg.training
    run = Path(t.output_dir)
    if run.exists() and any(run.glob("checkpoint-*")) and not resume:
        raise ClinituneError(f"{run} already holds checkpoints; pass --resume to continue, or set training.output_dir to a new dir")
    # Nothing reaches the model unscreened: a file prepare did not vouch for is screened here, before any write.
    gates = [asdict(phi_gate(path, cfg.data.allow_phi, key)) for key, path in (("data.train", cfg.data.train), ("data.eval", cfg.data.eval))
             if path and Path(path).is_file()]
    run.mkdir(parents=True, exist_ok=True)
    seed_everything(t.seed)
    model_dir = resolve_model(cfg.model.name_or_path, allow_pickle=cfg.model.allow_pickle)
    tok = load_tokenizer(model_dir, cfg.model.trust_remote_code)
    train_data = C.tokenize(tok, load_examples(cfg.data.train), cfg.data.max_seq_length)
    eval_examples = load_examples(cfg.data.eval) if cfg.data.eval else []
    if cfg.data.eval_max_examples and len(eval_examples) > cfg.data.eval_max_examples:
        eval_examples = random.Random(t.seed).sample(eval_examples, cfg.data.eval_max_examples)
    eval_data = C.tokenize(tok, eval_examples, cfg.data.max_seq_length) if eval_examples else None
    from ..data.tasks import TASKS

    absent = sorted(set(cfg.data.task_weights) - set(train_data.tasks))
    if absent and set(absent) <= set(TASKS):
        log.warning("data.task_weights: %s has no examples in %s", ", ".join(absent), cfg.data.train)
    elif absent:
        unknown = sorted(set(absent) - set(TASKS))
        raise ClinituneError(f"data.task_weights: no task named {', '.join(unknown)} in {cfg.data.train}; "
                             f"its tasks are {', '.join(sorted(set(train_data.tasks)))}")
    if not train_data.input_ids:
        raise ClinituneError(f"{cfg.data.train}: every example is longer than data.max_seq_length={cfg.data.max_seq_length}")
    for name, d in (("train", train_data), ("eval", eval_data)):
        if d and (d.truncated or d.dropped):
            msg = (f"{name}: {d.truncated} example(s) truncated and {d.dropped} dropped (prompt alone too long) "
                   f"at data.max_seq_length={cfg.data.max_seq_length}")
            log.warning(msg)
    eval_rows = C.epoch_rows(eval_data, t.seed, 0, cfg.data.max_seq_length, cfg.data.packing, shuffle=False) if eval_data else []

    model = apply_method(cfg, load_for_training(cfg, model_dir, plan), plan)
    root = wrap(model, plan.device, dist, quantized=plan.four_bit)  # the optimizer must see the sharded parameters
    root.train()
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    micro_per_step = t.gradient_accumulation_steps
    rank_rows = t.per_device_train_batch_size * micro_per_step
    rows_per_step = rank_rows * dist.world
    rows0 = C.epoch_rows(train_data, t.seed, 0, cfg.data.max_seq_length, cfg.data.packing, weights=cfg.data.task_weights)
    steps_per_epoch = max(1, math.ceil(len(rows0) / rows_per_step))
    total_steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_train_epochs * steps_per_epoch)
    warmup = int(round(t.warmup_ratio * total_steps))
    opt = make_optimizer(cfg, model, plan.device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.lr_scheduler_type, warmup, total_steps))
    if dist.deepspeed is not None:
        root = deepspeed_engine(root, opt, dist)  # its optimizer wraps ours: the schedule still sets the LR in our param groups

    st = State()
    ckpt = latest_checkpoint(run) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", run)
    if ckpt is not None:
        st = restore_checkpoint(ckpt, root, model, opt, sched, dist)
        log.info("resumed from %s (step %d)", ckpt.name, st.step)
    monitor = Monitor(run, cfg, resume_step=st.step, quiet=quiet, total_steps=total_steps) if dist.main else _Silent()
    if dist.main:
        atomic_write_text(run / "config.yaml", to_yaml(cfg))
    monitor.note(f"{cfg.lora.method} on {plan.device}, weights {str(plan.weight_dtype).removeprefix('torch.')}, "
                 f"autocast {str(plan.compute_dtype).removeprefix('torch.') if plan.compute_dtype else 'off'}; "
                 f"{n_trainable:,} of {n_total:,} parameters trainable; {len(train_data.input_ids)} train examples in "
                 f"{len(rows0)} rows; {total_steps} steps" + (f"; {dist.describe()}" if dist.world > 1 else ""))

    pad_id = tok.pad_token_id
    autocast = lambda: torch.autocast(plan.device, dtype=plan.compute_dtype or torch.float32, enabled=plan.compute_dtype is not None)  # noqa: E731
    rows = C.epoch_rows(train_data, t.seed, st.epoch, cfg.data.max_seq_length, cfg.data.packing, weights=cfg.data.task_weights)
    window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
    loop_start, tokens_at_start, response_at_start = time.perf_counter(), st.tokens, st.response_tokens
    first_step: tuple[float, int] | None = None
    bar = tqdm(total=total_steps, initial=st.step, desc="train", unit="step", disable=quiet or not dist.main, dynamic_ncols=True)
    while st.step < total_steps and not st.stopped_early:
        start = st.batch_in_epoch * rows_per_step
        if start >= len(rows):
            st.epoch += 1
            st.batch_in_epoch = 0
            rows = C.epoch_rows(train_data, t.seed, st.epoch, cfg.data.max_seq_length, cfg.data.packing, weights=cfg.data.task_weights)
            continue
        step_rows = rows[start:start + rows_per_step]
        mine = step_rows[dist.rank * rank_rows:(dist.rank + 1) * rank_rows]
        bs = t.per_device_train_batch_size
        micro = [mine[i:i + bs] for i in range(0, rank_rows, bs)]
        # Normalized by the whole step's response tokens, on every rank: summed gradients are then exact.
        # FSDP and DeepSpeed average gradients over ranks where DDP here sums them, hence the world-size factor.
        n_tokens = sum(sum(1 for y in r.labels[1:] if y != C.IGNORE) for r in step_rows)
        scale = (dist.world if dist.sharded else 1) / max(n_tokens, 1)
        step_loss = 0.0
        for j, mb in enumerate(micro):
            if not mb and not dist.sharded:
                continue
            if dist.fsdp:  # reduce-scatter once per step, after the last micro-batch
                root.set_requires_gradient_sync(j == len(micro) - 1)
            batch = C.collate(mb or step_rows[:1], pad_id)  # a rank short of rows at an epoch's end still joins the gathers
            with autocast():
                s, _ = root(batch)
            if not mb:
                s = s * 0.0
            if dist.deepspeed is not None:
                root.backward(s * scale, scale_wrt_gas=False)
                root.step()  # counts micro-batches; reduces, clips and steps at the last one
            else:
                (s * scale).backward()
            step_loss += float(s.detach())
        if dist.world > 1 and not dist.sharded:
            for prm in model.parameters():
                if prm.requires_grad:
                    if prm.grad is None:
                        prm.grad = torch.zeros_like(prm)
                    torch.distributed.all_reduce(prm.grad)
        if dist.world > 1:
            step_loss = dist.sum(step_loss)[0]
        if dist.deepspeed is not None:
            grad_norm = float(root.get_global_grad_norm() or 0.0)
        else:
            grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], t.max_grad_norm)))
            opt.step()
            opt.zero_grad(set_to_none=True)
        sched.step()
        st.step += 1
        st.batch_in_epoch += 1
        st.tokens += sum(len(r.ids) for r in step_rows)
        st.response_tokens += n_tokens
        if first_step is None:  # the first step pays for allocations and kernel setup: kept apart for steady-state rates
            first_step = (time.perf_counter() - loop_start, st.tokens - tokens_at_start)
        loss = step_loss / max(n_tokens, 1)
        if not math.isfinite(loss):
            raise ClinituneError(f"loss is {loss} at step {st.step}. Causes, per the troubleshooting guide: learning rate too high "
                                 f"(now {t.learning_rate:g}; try 1e-4), bad training data (run clinitune validate), or fp16 overflow "
                                 "(use training.precision: bf16 or fp32).")
        window_loss += step_loss
        window_tokens += n_tokens
        bar.update(1)
        monitor.check_grad(st, grad_norm)
        if st.step % t.logging_steps == 0 or st.step == total_steps:
            elapsed = time.perf_counter() - window_start
            tok_s = (st.tokens - monitor.tokens_at_window) / max(elapsed, 1e-9)
            monitor.log_train(st, loss=window_loss / max(window_tokens, 1), lr=sched.get_last_lr()[0], grad_norm=grad_norm,
                              tokens_per_s=tok_s, peak_rss_mb=peak_rss_mb(), bar=bar)
            window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
            monitor.tokens_at_window = st.tokens
        if eval_rows and (st.step % t.eval_steps == 0 or st.step == total_steps):
            ev = evaluate(root, eval_rows, cfg, plan, pad_id, dist)
            improved = st.best_eval is None or ev < st.best_eval
            if improved:
                st.best_eval, st.best_step, st.bad_evals = ev, st.step, 0
            if improved:
                best = trainable_state(model)
                if dist.main:
                    (run / "best").mkdir(exist_ok=True)
                    tmp = run / "best" / ".trainable.safetensors.tmp"
                    save_file(best, str(tmp))
                    tmp.replace(run / "best" / "trainable.safetensors")
            if not improved:
                st.bad_evals += 1
            monitor.log_eval(st, ev, bar=bar)
            if t.early_stopping_patience and st.bad_evals >= t.early_stopping_patience:
                st.stopped_early = True
                monitor.note(f"early stopping at step {st.step}: eval loss has not improved for {st.bad_evals} evals "
                             f"(best {st.best_eval:.4f} at step {st.best_step})")
        if st.step % t.save_steps == 0 or st.step == total_steps or st.stopped_early:
            save_checkpoint(run, root, model, opt, sched, st, t.save_total_limit, dist)
        _fault_injection(st.step)
    bar.close()
    loop_seconds = time.perf_counter() - loop_start
    dist.barrier()  # rank 0's best weights are on disk for everyone
    if st.best_step is not None and (run / "best" / "trainable.safetensors").is_file():
        load_trainable(model, load_file(str(run / "best" / "trainable.safetensors")))
        monitor.note(f"restored the best weights (eval loss {st.best_eval:.4f} at step {st.best_step})")
    final = trainable_state(model)
    if not dist.main:
        return {"rank": dist.rank, "steps": st.step}
    out_dir = run / ("model" if cfg.lora.method == "full" else "adapter")
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, state_dict=final, safe_serialization=True)
        tok.save_pretrained(tmp)
    summary = {"run_dir": str(run), "output": str(out_dir), "base_model": str(model_dir), "method": cfg.lora.method,
               "steps": st.step, "epochs_started": st.epoch + 1, "stopped_early": st.stopped_early, "best_eval_loss": st.best_eval,
               "best_step": st.best_step, "trainable_params": n_trainable, "total_params": n_total,
               "truncated": train_data.truncated, "dropped": train_data.dropped, "warnings": st.warnings,
               "data_manifest": _manifest_hash(cfg.data.train), "phi_gate": gates, "peak_rss_mb": round(peak_rss_mb(), 1),
               "loop_seconds": round(loop_seconds, 2), "loop_tokens": st.tokens - tokens_at_start,
               "loop_response_tokens": st.response_tokens - response_at_start,
               "first_step_seconds": round(first_step[0], 2) if first_step else None, "first_step_tokens": first_step[1] if first_step else None}
    atomic_write_text(run / "train_summary.json", json.dumps(summary, indent=2))
    monitor.finish(summary)
    return summary


def _manifest_hash(train_path: str) -> str | None:
    import hashlib

    m = Path(train_path).parent / "manifest.json"
    return hashlib.sha256(m.read_bytes()).hexdigest() if m.is_file() else None

