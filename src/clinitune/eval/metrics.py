"""Scoring one prediction: the task's own scorer (data/tasks/<task>.py), made safe for any model output.

Each scorer returns a dict of metric -> value in [0, 1]; the evaluator averages them per task. Each task's
primary metric, the one that decides "better", is in its spec.
"""

from __future__ import annotations

from ..data.example import Example
from ..data.tasks import spec_of


def primary(task: str) -> str:
    return spec_of(task).metric


def score(task: str, pred: str, ex: Example, sql_conn=None) -> dict:
    """Scores for one output. A model's JSON can have any shape; one that trips a scorer scores 0."""
    spec = spec_of(task)
    try:
        if spec.needs_db:
            return spec.scorer(pred, ex, sql_conn)
        return spec.scorer(pred, ex)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError):
        return {spec.metric: 0.0}
