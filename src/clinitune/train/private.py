"""Differentially private fine-tuning with the patient as the unit (`privacy.target_epsilon`).

DP-SGD (Abadi et al., 2016), at the level of a patient rather than an example: each step draws patients
(groups) by Poisson sampling, at rate q, so everything one patient contributed enters a step together or
not at all. Each drawn patient's examples are packed only with each other, their gradient is computed
alone and clipped to `privacy.max_grad_norm`, the clipped gradients are summed, Gaussian noise of
standard deviation sigma * C is added to the trainable parameters (the LoRA weights), and the sum is divided
by the expected number of patients per step. Opacus' accountant (RDP by default, or PRV) picks sigma to
meet the target epsilon over the planned steps, and reports what the steps actually taken spent.

What it covers: the model's weights, as a function of the training patients. Changing, adding or
removing any one patient's records changes what the model can reveal by at most (epsilon, delta).
Public reference data (the ICD-10-CM code table, curated knowledge facts) is sampled and clipped like
the rest and gets a guarantee it does not need; each of its examples is its own unit, so the 435-question
code table is not one giant unit that stalls the step it is drawn in. What it does not cover: the eval
and test patients (never trained on), the data files themselves, and what a user types at inference time.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from ..config import Config
from ..data.tasks import REFERENCE_PREFIX
from ..data.tokenize import Row, Tokenized, collate, pack
from ..errors import ClinituneError
from ..models.adapt import Plan, autocast

ACCOUNTANTS = {"rdp": RDPAccountant, "prv": PRVAccountant}


@dataclass(frozen=True)
class DPPlan:
    target_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str
    units: int  # privacy units: each patient, and each public reference example
    patients: int  # the patients among them (delta defaults to 1 / patients)

    def to_dict(self) -> dict:
        return {**asdict(self), "unit": "patient (the example's group)"}


def refuse_unsupported(cfg: Config, world: int) -> None:
    t = cfg.training
    if world > 1 or t.fsdp != "off" or t.deepspeed:
        raise ClinituneError("privacy.target_epsilon: DP training runs in one process; drop --nproc, fsdp, deepspeed")
    if t.max_minutes:
        raise ClinituneError(
            "privacy.target_epsilon with training.max_minutes: the noise is set for a known number of steps; "
            "set training.max_steps instead"
        )
    if cfg.quantization.load_in_4bit:
        raise ClinituneError("privacy.target_epsilon: not with 4-bit QLoRA yet; use lora.method: lora")


def plan(cfg: Config, groups: list[str], steps: int) -> DPPlan:
    """The noise that meets the target over `steps` at this sampling rate; delta defaults to 1 / patients."""
    p = cfg.privacy
    n = len({unit_of(g, i) for i, g in enumerate(groups)})
    patients = len({g for g in groups if not g.startswith(REFERENCE_PREFIX)})
    q = min(1.0, p.patients_per_step / n)
    delta = p.delta if p.delta is not None else 1.0 / max(patients, 1)
    sigma = get_noise_multiplier(
        target_epsilon=p.target_epsilon, target_delta=delta, sample_rate=q, steps=steps, accountant=p.accountant
    )
    return DPPlan(p.target_epsilon, delta, sigma, q, steps, p.max_grad_norm, p.accountant, n, patients)


def spent(dp: DPPlan, steps: int) -> float:
    """Epsilon after `steps` steps of this plan (less than the target when training stopped early)."""
    if steps == 0:
        return 0.0
    acc = ACCOUNTANTS[dp.accountant]()
    acc.history = [(dp.noise_multiplier, dp.sample_rate, steps)]
    return float(acc.get_epsilon(delta=dp.delta))


def unit_of(group: str, i: int) -> str:
    """A patient is one unit; a public reference example (the code table, the knowledge facts) is its own."""
    return f"{group}#{i}" if group.startswith(REFERENCE_PREFIX) else group


def units(data: Tokenized, groups: list[str], max_len: int, packing: bool) -> dict[str, list[Row]]:
    """Each patient's rows: their examples packed with each other only, never with another patient's."""
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(unit_of(g, i), []).append(i)
    return {g: pack(data, idx, max_len, packing) for g, idx in sorted(by_group.items())}


# The sampling and the noise come from the operating system's CSPRNG, never from training.seed: the seed is
# written to config.yaml, and anyone who knew it could regenerate every noise draw and subtract it from the
# weights. Nothing of these draws is stored, so a resumed DP run draws fresh patients and fresh noise (the
# accountant counts every step taken either way); see docs/training.md, "What each secret protects".
SECURE = random.SystemRandom()


def sample(names: list[str], q: float) -> list[str]:
    """Poisson sampling of patients: each in the step independently with probability q."""
    return [g for g in names if SECURE.random() < q]


def secure_normal(shape: torch.Size | tuple[int, ...], std: float) -> torch.Tensor:
    """Gaussian noise from os.urandom (Box-Muller on 53-bit uniforms), float32."""
    n = math.prod(shape)
    pairs = (n + 1) // 2
    raw = np.frombuffer(os.urandom(16 * pairs), dtype=np.uint64).reshape(2, pairs)
    u1, u2 = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    radius = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:n]
    return torch.from_numpy((z * std).astype(np.float32)).reshape(shape)


def step(
    root,
    trainable: list[torch.nn.Parameter],
    plan_: Plan,
    pad_id: int,
    rows_of: dict[str, list[Row]],
    dp: DPPlan,
    batch_size: int,
) -> tuple[float, int, int, float]:
    """Gradients for one DP-SGD step left in .grad: (summed loss, response tokens, row tokens, mean clip norm)."""
    drawn = sample(list(rows_of), dp.sample_rate)
    summed = [torch.zeros_like(p, dtype=torch.float32) for p in trainable]
    loss_sum, n_resp, n_ids, norms = 0.0, 0, 0, []
    for g in drawn:
        rows = rows_of[g]
        tokens = sum(r.response_tokens for r in rows)
        for i in range(0, len(rows), batch_size):
            with autocast(plan_):
                loss, _ = root(collate(rows[i : i + batch_size], pad_id))
            (loss / max(tokens, 1)).backward()
            loss_sum += float(loss.detach())
        norm = math.sqrt(sum(float(p.grad.float().pow(2).sum()) for p in trainable if p.grad is not None))
        norms.append(norm)
        factor = min(1.0, dp.max_grad_norm / (norm + 1e-6))
        for acc, p in zip(summed, trainable):
            if p.grad is not None:
                acc.add_(p.grad.float(), alpha=factor)
                p.grad = None
        n_resp += tokens
        n_ids += sum(len(r.ids) for r in rows)
    expected = dp.sample_rate * dp.units
    for acc, p in zip(summed, trainable):
        noise = secure_normal(acc.shape, dp.noise_multiplier * dp.max_grad_norm)
        p.grad = ((acc + noise) / expected).to(p.dtype)
    return loss_sum, n_resp, n_ids, sum(norms) / len(norms) if norms else 0.0
