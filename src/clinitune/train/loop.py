"""`clinitune train`: one plain training loop for LoRA, QLoRA and full fine-tuning, in three stages.

`setup` loads the data, the model and the optimizer (and a checkpoint on --resume); `fit` runs the
steps, evaluating, saving and stopping early as the config says; `finish` restores the best
weights and writes the adapter (or model) and train_summary.json.

Why not transformers.Trainer: the loss here never materializes full-vocabulary logits for prompt
tokens (the head and its cross-entropy run fused, in chunks, on response positions only), packed rows keep
examples apart through restarting position ids, and checkpoints hold exactly what an exact
resume needs (trainable weights, optimizer, scheduler, RNG states, data position).

Longer than 400 lines because the three stages, the step and the budget planner share one Session and
read best top to bottom in one file, as torchtune's recipes do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import resource
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist
from tqdm import tqdm

from .. import logs
from ..config import Config, to_yaml
from ..data.manifest import phi_gate
from ..data.tokenize import Row, Tokenized, collate
from ..errors import ClinituneError
from ..layout import DataDir, RunDir, TrainSummary
from ..models.adapt import Plan, apply_method, autocast, load_for_training
from ..models.adapt import plan as make_plan
from ..models.loading import load_tokenizer
from ..models.registry import resolve_model
from ..paths import atomic_dir, atomic_write_text
from . import private
from .budget import FINISH_SECONDS, BudgetPlan, time_step
from .budget import plan as plan_steps
from .callbacks import Monitor, Silent
from .checkpoints import (
    State,
    intact_checkpoint,
    load_best,
    restore_checkpoint,
    resume_changes,
    save_best,
    save_checkpoint,
    seed_everything,
)
from .collate import epoch_rows, load_data, micro_batches, mixture, mixture_report
from .distributed import Dist, deepspeed_engine, full_tensor, init_distributed, reshard, trainable_state, wrap
from .fused_layers import fuse_layers
from .fused_lora import fuse_lora
from .optim import lr_lambda, make_optimizer

log = logging.getLogger(__name__)
REPLAN_AT = 6  # a budgeted run re-plans from its real step time after this many steps (the first one excluded)


def peak_rss_mb() -> float:
    """This program's peak resident memory. Linux keeps ru_maxrss across exec, so it also holds the peak of the
    process that started this one (a test runner, the console's server); /proc's VmHWM is this program's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def eval_loss(root, rows: list[Row], batch_size: int, plan: Plan, pad_id: int, dist: Dist = Dist()) -> float:
    """Mean response-token loss over `rows`, split over ranks."""
    root.eval()
    total, n = 0.0, 0
    mine = rows[dist.rank :: dist.world]
    # Sharded ranks must run the same number of forwards (each one gathers weights together).
    batches = math.ceil(math.ceil(len(rows) / dist.world) / batch_size)
    with torch.no_grad(), autocast(plan):
        for i in range(batches):
            chunk = mine[i * batch_size : (i + 1) * batch_size]
            if not chunk and not dist.sharded:
                break
            s, k = root(collate(chunk or rows[:1], pad_id))
            if chunk:
                total += float(s)
                n += k
    root.train()
    if dist.sharded:
        reshard(root)
    total, n = dist.sum(total, n)
    return total / max(n, 1)


@dataclass
class Session:
    """What setup builds and fit and finish use."""

    cfg: Config
    plan: Plan
    dist: Dist
    run: RunDir
    model_dir: Path
    tok: object
    model: torch.nn.Module  # the (PEFT) model: trainable parameters, save_pretrained
    root: torch.nn.Module  # what the steps call: the model wrapped for DDP, FSDP or DeepSpeed
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    train_data: Tokenized
    eval_rows: list[Row]
    total_steps: int
    state: State
    monitor: Monitor | Silent
    gates: list[dict]
    deadline: float | None = None  # time.monotonic() when a budgeted run must stop
    budget: BudgetPlan | None = None
    task_weights: dict[str, float] | None = None  # each task's repeat factor per epoch (collate.mixture)
    dp: private.DPPlan | None = None  # DP-SGD, when privacy.target_epsilon is set
    dp_rows: dict[str, list[Row]] | None = None  # each patient's rows, packed apart from everyone else's


def train(cfg: Config, *, resume: bool = False, quiet: bool = False) -> TrainSummary | None:
    """Train as `cfg` says; the summary on rank 0, None on the other ranks."""
    if not cfg.data.train:
        raise ClinituneError("data.train is not set; point it at train.jsonl from clinitune prepare")
    started = time.monotonic()
    plan = make_plan(cfg)
    run = RunDir(Path(cfg.training.output_dir))
    run.claim()
    log_file = logs.to_file(run.log)
    dist = init_distributed(plan.device, cfg.training.fsdp, cfg.training.deepspeed, cfg.training)
    try:
        # Rank 0 holds the run: a second `train` into the same directory stops before writing anything.
        with run.lock() if dist.rank == 0 else contextlib.nullcontext():
            session = setup(cfg, plan, dist, resume=resume, quiet=quiet, started=started)
            timing = fit(session)
            summary = finish(session, timing)
    except BaseException:
        dist.close(wait=False)
        raise
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    # Every rank leaves together: one that exits while another still writes drops its gloo connections
    # under the other's feet. (A launched rank then skips interpreter teardown: cli.main.)
    dist.close()
    return summary


def setup(cfg: Config, plan: Plan, dist: Dist, *, resume: bool, quiet: bool, started: float = 0.0) -> Session:
    t = cfg.training
    run = RunDir(Path(t.output_dir))
    if run.path.exists() and run.checkpoints() and not resume:
        raise ClinituneError(
            f"{run.path} already holds checkpoints; pass --resume to continue, or set training.output_dir to a new dir"
        )
    allowed = resume_changes(run, cfg) if resume else []
    # Nothing reaches the model unscreened: a file prepare did not vouch for is screened here, before any write.
    data_files = (("data.train", cfg.data.train), ("data.eval", cfg.data.eval))
    gates = [
        asdict(phi_gate(path, cfg.data.allow_phi, key)) for key, path in data_files if path and Path(path).is_file()
    ]
    seed_everything(t.seed)
    model_dir = resolve_model(cfg.model.name_or_path, allow_pickle=cfg.model.allow_pickle)
    tok = load_tokenizer(model_dir, cfg.model.trust_remote_code)
    train_data, eval_rows = load_data(cfg, tok)

    model = apply_method(cfg, load_for_training(cfg, model_dir, plan), plan)
    # before wrap: FSDP and ZeRO-3 shard the weights the fused layers would read whole
    fused = fuse_lora(model) if t.fused_lora and not dist.sharded else 0
    fused_other = fuse_layers(model) if t.fused_layers and not dist.sharded else 0
    root = wrap(model, plan.device, dist, quantized=plan.four_bit)  # the optimizer must see the sharded parameters
    root.train()
    rows_per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * dist.world
    task_weights = mixture(train_data.tasks, cfg.data.task_weights, cfg.data.task_temperature)
    rows0 = epoch_rows(train_data, t.seed, 0, cfg.data.max_seq_length, cfg.data.packing, weights=task_weights)
    total_steps = (
        t.max_steps
        if t.max_steps > 0
        else math.ceil(t.num_train_epochs * max(1, math.ceil(len(rows0) / rows_per_step)))
    )
    dp = dp_rows = None
    if cfg.privacy.target_epsilon:
        private.refuse_unsupported(cfg, dist.world)
        dp_rows = private.units(train_data, train_data.groups, cfg.data.max_seq_length, cfg.data.packing)
        if t.max_steps <= 0:
            total_steps = math.ceil(t.num_train_epochs * len(dp_rows) / cfg.privacy.patients_per_step)
        dp = private.plan(cfg, train_data.groups, total_steps)
    budget = None
    ckpt = intact_checkpoint(run) if resume else None
    if t.max_minutes and ckpt is not None:
        total_steps = run.read_config().training.max_steps  # the plan the run began with, so the schedule holds
    elif t.max_minutes:
        budget = plan_budget(cfg, plan, dist, root, rows0[:rows_per_step], eval_rows, tok.pad_token_id, started)
        total_steps = budget.steps
    if t.max_minutes:  # config.yaml records the planned steps: a resume keeps the schedule
        cfg = cfg.model_copy(update={"training": t.model_copy(update={"max_steps": total_steps})})
    opt = make_optimizer(cfg, model, plan.device)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(t.lr_scheduler_type, round(t.warmup_ratio * total_steps), total_steps)
    )
    if dist.deepspeed is not None:
        # Its optimizer wraps ours: the schedule still sets the LR in our param groups.
        root = deepspeed_engine(root, opt, dist)

    st = State()
    if resume and ckpt is None:
        log.warning("--resume: no intact checkpoint in %s; starting from step 0", run.path)
    if ckpt is not None:
        st = restore_checkpoint(ckpt, root, model, opt, sched, dist)
        st.warnings += allowed
        log.info("resumed from %s (step %d)", ckpt.name, st.step)
        if dp is not None:
            log.info(
                "DP-SGD resumes with fresh patient draws and fresh noise (never stored); the accountant counts both"
            )
    monitor = Monitor(run, cfg, resume_step=st.step, quiet=quiet, total_steps=total_steps) if dist.main else Silent()
    if dist.main:
        atomic_write_text(run.config, to_yaml(cfg))
    session = Session(
        cfg=cfg,
        plan=plan,
        dist=dist,
        run=run,
        model_dir=model_dir,
        tok=tok,
        model=model,
        root=root,
        opt=opt,
        sched=sched,
        train_data=train_data,
        eval_rows=eval_rows,
        total_steps=total_steps,
        state=st,
        monitor=monitor,
        gates=gates,
        deadline=started + t.max_minutes * 60 - FINISH_SECONDS if budget is not None else None,
        budget=budget,
        task_weights=task_weights,
        dp=dp,
        dp_rows=dp_rows,
    )
    announce(session, len(rows0), fused, fused_other)
    return session


def announce(s: Session, n_rows: int, fused: int, fused_other: int) -> None:
    """The run's plan in one note per line: method, precision, sizes, budget, DP, task mixture."""
    cfg, plan, dist, model, monitor, dp = s.cfg, s.plan, s.dist, s.model, s.monitor, s.dp
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = str(plan.weight_dtype).removeprefix("torch.")
    compute = str(plan.compute_dtype).removeprefix("torch.") if plan.compute_dtype else "off"
    monitor.note(
        f"{cfg.lora.method} on {plan.device}, weights {weights}, autocast {compute}; "
        f"{n_trainable:,} of {sum(p.numel() for p in model.parameters()):,} parameters trainable; "
        f"{len(s.train_data.input_ids)} train examples in {n_rows} rows; {s.total_steps} steps"
        + (f"; {fused} LoRA layers fused" if fused else "")
        + (f"; {fused_other} norms and MLP activations fused" if fused_other else "")
        + (f"; {dist.describe()}" if dist.world > 1 else "")
    )
    if s.budget is not None:
        monitor.note(s.budget.describe())
    if dp is not None:
        monitor.note(
            f"DP-SGD, the patient as the unit: target epsilon {dp.target_epsilon:g}, delta {dp.delta:.2g} over "
            f"{dp.steps} steps; noise multiplier {dp.noise_multiplier:.3f}, sampling rate {dp.sample_rate:.4f} over "
            f"{dp.units} units ({dp.patients} patients), clip {dp.max_grad_norm:g} ({dp.accountant} accountant)"
        )
    if cfg.data.task_temperature:
        mix = mixture_report(s.train_data.tasks, s.task_weights)
        monitor.note("task mixture: " + ", ".join(f"{k} {v['share']:.1%} (x{v['weight']:g})" for k, v in mix.items()))


def plan_budget(cfg: Config, plan: Plan, dist: Dist, root, rows: list[Row], eval_rows, pad_id, started) -> BudgetPlan:
    """Time a real step (forward and backward, gradients dropped) and plan the steps that fit the budget."""
    t = cfg.training
    if dist.deepspeed is not None:
        raise ClinituneError("training.max_minutes: not with DeepSpeed yet; set training.max_steps instead")
    mine = micro_batches(
        rows, dist.rank, t.per_device_train_batch_size * t.gradient_accumulation_steps, t.per_device_train_batch_size
    )

    def step() -> None:
        for mb in mine:
            with autocast(plan):
                loss, _ = root(collate(mb or rows[:1], pad_id))
            (loss * (1.0 if mb else 0.0)).backward()
        root.zero_grad(set_to_none=True)

    seconds = max(dist.sum(time_step(step))[0] / dist.world, 1e-3)
    return plan_steps(t.max_minutes, time.monotonic() - started, seconds, len(eval_rows), len(rows), t.eval_steps)


def train_step(s: Session, step_rows: list[Row]) -> tuple[float, int, float]:
    """One optimizer step over `step_rows` (all ranks' rows): (summed loss, response tokens, grad norm)."""
    t, dist, root = s.cfg.training, s.dist, s.root
    rank_rows = t.per_device_train_batch_size * t.gradient_accumulation_steps
    micro = micro_batches(step_rows, dist.rank, rank_rows, t.per_device_train_batch_size)
    # Normalized by the whole step's response tokens, on every rank: summed gradients are then exact.
    # FSDP and DeepSpeed average gradients over ranks where DDP here sums them, hence the world-size factor.
    n_tokens = sum(r.response_tokens for r in step_rows)
    scale = (dist.world if dist.sharded else 1) / max(n_tokens, 1)
    step_loss = 0.0
    for j, mb in enumerate(micro):
        if not mb and not dist.sharded:
            continue
        if dist.fsdp:  # reduce-scatter once per step, after the last micro-batch
            root.set_requires_gradient_sync(j == len(micro) - 1)
        batch = collate(mb or step_rows[:1], s.tok.pad_token_id)  # a rank short of rows still joins the gathers
        with autocast(s.plan):
            loss, _ = root(batch)
        if not mb:
            loss = loss * 0.0
        if dist.deepspeed is not None:
            root.backward(loss * scale, scale_wrt_gas=False)
            root.step()  # counts micro-batches; reduces, clips and steps at the last one
        else:
            (loss * scale).backward()
        step_loss += float(loss.detach())
    trainable = [p for p in s.model.parameters() if p.requires_grad]
    if dist.world > 1 and not dist.sharded:
        for prm in trainable:
            if prm.grad is None:
                prm.grad = torch.zeros_like(prm)
            torch_dist.all_reduce(prm.grad)
    if dist.world > 1:
        step_loss = dist.sum(step_loss)[0]
    if dist.deepspeed is not None:
        grad_norm = float(root.get_global_grad_norm() or 0.0)
    else:
        grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(trainable, t.max_grad_norm)))
        s.opt.step()
        s.opt.zero_grad(set_to_none=True)
    s.sched.step()
    return step_loss, n_tokens, grad_norm


def private_step(s: Session) -> tuple[float, int, int, float]:
    """One DP-SGD step (private.step computes the noised gradient), then the optimizer and the schedule."""
    trainable = [p for p in s.model.parameters() if p.requires_grad]
    t = s.cfg.training
    out = private.step(s.root, trainable, s.plan, s.tok.pad_token_id, s.dp_rows, s.dp, t.per_device_train_batch_size)
    s.opt.step()
    s.opt.zero_grad(set_to_none=True)
    s.sched.step()
    return out


def replan(s: Session, per_step: float, eval_share: float, bar) -> None:
    """The budget again, from the steps really taken: the calibration step leaves out the optimizer and the
    batches' varying lengths, so its plan can be 10-30 % off, and a machine can get busier. Re-planned early and
    at each eval, the schedule bends little and still decays to its end on time."""
    t = s.cfg.training
    left = s.deadline - time.monotonic()
    total = s.dist.broadcast(s.state.step + max(1, int(left / (per_step + eval_share))))  # every rank stops alike
    if abs(total - s.total_steps) <= 0.01 * s.total_steps:
        return
    warmup = round(t.warmup_ratio * s.budget.steps)
    # one schedule for every parameter group (LoRA+ puts A and B in two)
    s.sched.lr_lambdas = [lr_lambda(t.lr_scheduler_type, warmup, total)] * len(s.sched.optimizer.param_groups)
    s.monitor.note(f"budget re-planned at step {s.state.step}: {total} steps at {per_step:.2f} s/step measured")
    s.total_steps, bar.total, s.monitor.total = total, total, total
    s.cfg = s.cfg.model_copy(update={"training": t.model_copy(update={"max_steps": total})})
    if s.dist.main:
        atomic_write_text(s.run.config, to_yaml(s.cfg))  # a resume keeps this schedule


def evaluate_and_keep_best(s: Session, bar) -> None:
    """Eval loss now; keep the best weights; count evals without improvement for early stopping."""
    st, t = s.state, s.cfg.training
    ev = eval_loss(s.root, s.eval_rows, t.per_device_eval_batch_size, s.plan, s.tok.pad_token_id, s.dist)
    if st.best_eval is None or ev < st.best_eval:
        st.best_eval, st.best_step, st.bad_evals = ev, st.step, 0
        best = trainable_state(s.model)  # every rank joins the gather
        if s.dist.main:
            save_best(s.run, best)
    else:
        st.bad_evals += 1
    s.monitor.log_eval(st, ev, bar=bar)
    if t.early_stopping_patience and st.bad_evals >= t.early_stopping_patience:
        st.stopped_early = True
        s.monitor.note(
            f"early stopping at step {st.step}: eval loss has not improved for {st.bad_evals} evals "
            f"(best {st.best_eval:.4f} at step {st.best_step})"
        )


@dataclass
class Timing:
    loop_seconds: float
    loop_tokens: int
    loop_response_tokens: int
    first_step: tuple[float, int] | None  # the first step pays for allocations and kernel setup


def fit(s: Session) -> Timing:
    cfg, t, st, dist = s.cfg, s.cfg.training, s.state, s.dist
    rows_per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * dist.world

    def rows_of(epoch: int) -> list[Row]:
        return epoch_rows(
            s.train_data, t.seed, epoch, cfg.data.max_seq_length, cfg.data.packing, weights=s.task_weights
        )

    rows = rows_of(st.epoch)
    window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
    loop_start, tokens_at_start, response_at_start = time.perf_counter(), st.tokens, st.response_tokens
    first_step = None
    bar = tqdm(
        total=s.total_steps,
        initial=st.step,
        desc="train",
        unit="step",
        disable=s.monitor.quiet or not dist.main,
        dynamic_ncols=True,
    )
    while st.step < s.total_steps and not st.stopped_early:
        if s.dp is None:
            start = st.batch_in_epoch * rows_per_step
            if start >= len(rows):
                st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                rows = rows_of(st.epoch)
                continue
            step_rows = rows[start : start + rows_per_step]
            step_loss, n_tokens, grad_norm = train_step(s, step_rows)
            st.batch_in_epoch += 1
            n_ids = sum(len(r.ids) for r in step_rows)
        else:
            step_loss, n_tokens, n_ids, grad_norm = private_step(s)
        st.step += 1
        st.tokens += n_ids
        st.response_tokens += n_tokens
        if first_step is None:
            first_step = (time.perf_counter() - loop_start, st.tokens - tokens_at_start)
        if s.budget is not None and st.step == REPLAN_AT:
            per_step = (time.perf_counter() - loop_start - first_step[0]) / (st.step - 1)
            replan(s, per_step, s.budget.eval_seconds_per_step, bar)
        loss = step_loss / max(n_tokens, 1)
        if not math.isfinite(loss):
            raise ClinituneError(
                f"loss is {loss} at step {st.step}. Causes, per the troubleshooting guide: learning rate too high "
                f"(now {t.learning_rate:g}; try 1e-4), bad training data (run clinitune validate), or fp16 overflow "
                "(use training.precision: bf16 or fp32)."
            )
        window_loss, window_tokens = window_loss + step_loss, window_tokens + n_tokens
        bar.update(1)
        s.monitor.check_grad(st, grad_norm)
        # any rank out of time stops them all, at the same step
        out_of_time = s.deadline is not None and dist.sum(float(time.monotonic() > s.deadline))[0] > 0
        if out_of_time:
            s.monitor.note(
                f"budget reached at step {st.step} of {s.total_steps}: a last eval and checkpoint, then stop"
            )
        last = st.step == s.total_steps or out_of_time
        if st.step % t.logging_steps == 0 or last:
            tok_s = (st.tokens - s.monitor.tokens_at_window) / max(time.perf_counter() - window_start, 1e-9)
            s.monitor.log_train(
                st,
                loss=window_loss / max(window_tokens, 1),
                lr=s.sched.get_last_lr()[0],
                grad_norm=grad_norm,
                tokens_per_s=tok_s,
                peak_rss_mb=peak_rss_mb(),
                bar=bar,
            )
            window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
            s.monitor.tokens_at_window = st.tokens
        if s.eval_rows and (st.step % t.eval_steps == 0 or last):
            evaluate_and_keep_best(s, bar)
        if st.step % t.save_steps == 0 or last or st.stopped_early:
            save_checkpoint(s.run, s.root, s.model, s.opt, s.sched, st, t.save_total_limit, dist)
        if s.budget is not None and st.step > REPLAN_AT and st.step % t.eval_steps == 0 and not last:
            # the time per step so far holds the evals and checkpoints too
            replan(s, (time.perf_counter() - loop_start - first_step[0]) / (st.step - 1), 0.0, bar)
        fault_injection(st.step)
        if out_of_time:
            break
    bar.close()
    return Timing(
        time.perf_counter() - loop_start,
        st.tokens - tokens_at_start,
        st.response_tokens - response_at_start,
        first_step,
    )


def finish(s: Session, timing: Timing) -> TrainSummary | None:
    """Best weights back in, the adapter (or model) written atomically, the summary and model card."""
    st, run, cfg = s.state, s.run, s.cfg
    s.dist.barrier()  # rank 0's best weights are on disk for everyone
    if st.best_step is not None and run.best_weights.is_file():
        load_best(run, s.model)
        s.monitor.note(f"restored the best weights (eval loss {st.best_eval:.4f} at step {st.best_step})")
    final = trainable_state(s.model)
    if not s.dist.main:
        return None
    out_dir = run.output_for(cfg.lora.method)
    with atomic_dir(out_dir) as tmp:
        s.model.save_pretrained(tmp, state_dict=final, safe_serialization=True)
        s.tok.save_pretrained(tmp)
    manifest = DataDir(Path(cfg.data.train).parent).manifest
    summary = TrainSummary(
        run_dir=str(run.path),
        output=str(out_dir),
        base_model=str(s.model_dir),
        method=cfg.lora.method,
        steps=st.step,
        epochs_started=st.epoch + 1,
        stopped_early=st.stopped_early,
        best_eval_loss=st.best_eval,
        best_step=st.best_step,
        trainable_params=sum(p.numel() for p in s.model.parameters() if p.requires_grad),
        total_params=sum(p.numel() for p in s.model.parameters()),
        truncated=s.train_data.truncated,
        dropped=s.train_data.dropped,
        warnings=st.warnings,
        data_manifest=hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None,
        phi_gate=s.gates,
        peak_rss_mb=round(peak_rss_mb(), 1),
        loop_seconds=round(timing.loop_seconds, 2),
        loop_tokens=timing.loop_tokens,
        loop_response_tokens=timing.loop_response_tokens,
        first_step_seconds=round(timing.first_step[0], 2) if timing.first_step else None,
        first_step_tokens=timing.first_step[1] if timing.first_step else None,
        task_mixture=mixture_report(s.train_data.tasks, s.task_weights or {}),
        privacy={**s.dp.to_dict(), "epsilon_spent": private.spent(s.dp, st.step), "steps_taken": st.step}
        if s.dp
        else None,
    )
    atomic_write_text(run.summary_file, json.dumps(summary.to_dict(), indent=2))
    s.monitor.finish(summary)
    return summary


def fault_injection(step: int) -> None:
    # For the kill-and-resume test: a real SIGKILL, no cleanup, right after `step` completes.
    kill_at = os.environ.get("CLINITUNE_FAULT_AFTER_STEP")
    if kill_at and int(kill_at) == step:
        os.kill(os.getpid(), signal.SIGKILL)
