"""Uncertainty for every number eval reports: bootstrap intervals, paired differences, exact McNemar.

A metric from n examples is a mean with sampling noise; "better" is a claim about a paired
difference on the same examples. Intervals are percentile bootstraps (resampling examples) with a
fixed seed, so a report is reproducible; for 0/1 metrics the paired comparison also gets the exact
McNemar test, which is right for small n where the bootstrap interval is coarse.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP = 2000
ALPHA = 0.05
BETTER, WORSE, SAME = "better", "worse", "no significant difference"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n: sane at 0 and n, where the normal approximation is not."""
    if n == 0:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def is_binary(values: list[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def mean_ci(values: list[float], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean of `values` (resampling the examples)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1 or np.all(x == x[0]):
        return (round(float(x[0]), 4), round(float(x[0]), 4))  # every resample has the same mean
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [ALPHA / 2, 1 - ALPHA / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def ratio_ci(nums: list[float], dens: list[float], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % interval of sum(nums) / sum(dens), resampling the examples: the positions within one example are
    not independent, so the example is the unit (a cluster bootstrap)."""
    a, b = np.asarray(nums, dtype=np.float64), np.asarray(dens, dtype=np.float64)
    if a.size == 0 or b.sum() == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    ratios = a[idx].sum(axis=1) / np.maximum(b[idx].sum(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [ALPHA / 2, 1 - ALPHA / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def min_decisive_n(alpha: float = ALPHA) -> int:
    """The fewest paired examples on which `paired` can ever call a difference significant: both exact tests
    are at their smallest, 2 / 2**n, when every pair differs the same way (6 pairs: 0.031 < 0.05)."""
    n = 1
    while 2 / 2**n >= alpha:
        n += 1
    return n


def mcnemar_exact(a: list[float], b: list[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes: a binomial test on the discordant pairs."""
    only_a = sum(1 for x, y in zip(a, b) if x == 1.0 and y == 0.0)
    only_b = sum(1 for x, y in zip(a, b) if x == 0.0 and y == 1.0)
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def sign_flip_p(d: list[float], seed: int = 0, n_perm: int = 10000) -> float:
    """Two-sided paired permutation p-value: how often flipping the signs of the differences gives a mean
    at least as far from 0. Exact (every sign pattern) up to 16 pairs, Monte Carlo beyond; with 2 pairs it
    can never go below 0.5, which is the point: two examples cannot make a difference significant."""
    x = np.asarray(d, dtype=np.float64)
    n = x.size
    if n == 0 or not np.any(x):
        return 1.0
    observed = abs(x.mean()) - 1e-12
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, n))
    return float((np.abs((signs * x).mean(axis=1)) >= observed).mean())


@dataclass
class Paired:
    """Candidate `a` minus candidate `b` on the same examples."""

    diff: float
    ci95: tuple[float, float]
    n: int
    p: float  # exact McNemar for 0/1 metrics, a paired sign-flip permutation test otherwise
    test: str  # "mcnemar" or "sign-flip"
    verdict: str  # better, worse, or no significant difference (for `a`)

    def to_dict(self) -> dict:
        return asdict(self)


def paired(a: list[float], b: list[float], seed: int = 0) -> Paired:
    """The paired difference a - b with its bootstrap interval; the verdict needs the interval to exclude 0
    and an exact test to agree (p < 0.05): McNemar for 0/1 metrics, a sign-flip permutation test otherwise.
    The bootstrap alone is too narrow at small n (two equal differences give a zero-width interval)."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same examples: {len(a)} against {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    diff = round(float(np.mean(d)), 4) if d else float("nan")
    lo, hi = mean_ci(d, seed)
    binary = is_binary(a) and is_binary(b)
    p = mcnemar_exact(a, b) if binary else sign_flip_p(d, seed)
    significant = p < ALPHA
    verdict = BETTER if lo > 0 and significant else WORSE if hi < 0 and significant else SAME
    return Paired(diff, (lo, hi), len(d), round(p, 5), "mcnemar" if binary else "sign-flip", verdict)


def unpaired_diff_ci(a: list[float], b: list[float], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % bootstrap interval of mean(a) - mean(b) for two different sets of examples, each resampled alone."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    d = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1) - y[rng.integers(0, y.size, (n_boot, y.size))].mean(1)
    lo, hi = np.quantile(d, [ALPHA / 2, 1 - ALPHA / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def overall(verdicts: list[str]) -> str:
    """Against every baseline run: better only if better than all, worse if worse than any."""
    if not verdicts:
        return SAME
    if any(v == WORSE for v in verdicts):
        return WORSE
    return BETTER if all(v == BETTER for v in verdicts) else SAME


def auc_ci(pos: list[float], neg: list[float], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % bootstrap interval of the Mann-Whitney AUC, resampling members and non-members separately."""
    p, q = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if p.size == 0 or q.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for i in range(n_boot):
        ps, qs = p[rng.integers(0, p.size, p.size)], q[rng.integers(0, q.size, q.size)]
        out[i] = (ps[:, None] > qs[None, :]).mean() + 0.5 * (ps[:, None] == qs[None, :]).mean()
    lo, hi = np.quantile(out, [ALPHA / 2, 1 - ALPHA / 2])
    return (round(float(lo), 4), round(float(hi), 4))
