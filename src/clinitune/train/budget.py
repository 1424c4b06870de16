"""Train for a budget, not a step count (`training.max_minutes`, `clinitune train --minutes N`).

A fixed step count does not fit a time budget across machines: the same 100 steps took 321 s on one
2-core machine and 422 s on another. So the run times its own step (forward and backward on a real
batch, no optimizer step, so the weights are untouched), adds its evals' share, and plans the number of
steps, and with it the warmup and decay, to end on time. A run that still overruns (the machine got
busier) stops at the deadline with a last eval and checkpoint.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

# What finish costs after the last step (restoring the best weights, writing the adapter and card).
FINISH_SECONDS = 10.0


@dataclass(frozen=True)
class BudgetPlan:
    steps: int
    step_seconds: float
    eval_seconds_per_step: float
    minutes: float

    def describe(self) -> str:
        return (
            f"budget {self.minutes:g} min: ~{self.steps} steps at {self.step_seconds:.2f} s/step"
            + (f" (+{self.eval_seconds_per_step:.2f} s/step for evals)" if self.eval_seconds_per_step else "")
            + ", warmup and decay planned to end on time"
        )


def time_step(step: Callable[[], None], repeats: int = 2) -> float:
    """Median seconds of `step` after one untimed warm-up (which pays for allocations and kernel setup)."""
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plan(
    minutes: float,
    elapsed: float,
    step_seconds: float,
    eval_rows: int,
    rows_per_step: int,
    eval_steps: int,
) -> BudgetPlan:
    """Steps that fit what is left of the budget. An eval is forward only over its rows, about a third of a
    training step's cost per row; it runs every `eval_steps` steps."""
    per_eval = (eval_rows / max(rows_per_step, 1)) * step_seconds / 3 if eval_rows else 0.0
    eval_share = per_eval / eval_steps
    left = minutes * 60 - elapsed - FINISH_SECONDS - per_eval  # the last step always evaluates
    steps = max(1, int(left / (step_seconds + eval_share)))
    return BudgetPlan(steps, step_seconds, eval_share, minutes)
