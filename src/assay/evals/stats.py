"""Statistics for evals: intervals for one run, paired tests for two.

- :func:`wilson`: the Wilson score interval for a pass rate (good at small n and
  at rates near 0 or 1, where the normal approximation is not).
- :func:`bootstrap_mean`: a percentile bootstrap interval for a mean score.
- :func:`mcnemar_exact`: McNemar's exact test on paired pass/fail outcomes: only
  the discordant pairs count, and under "no difference" each is a fair coin.
- :func:`paired_bootstrap`: a bootstrap interval for the mean of paired score
  differences, with the p of a sign-flip permutation test (:func:`sign_flip_p`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["bootstrap_mean", "mcnemar_exact", "paired_bootstrap", "sign_flip_p", "wilson"]

Z95 = 1.959963984540054


def wilson(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``passed`` successes in ``n`` trials."""
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(
    values: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``values``."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    if n == 1 or min(values) == max(values):
        return float(values[0]), float(values[0])
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return means[int(tail * resamples)], means[min(resamples - 1, int((1 - tail) * resamples))]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact p for ``b`` pairs that passed only in A and ``c`` only in B."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def sign_flip_p(diffs: Sequence[float], resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p of a paired permutation (sign-flip) test on the mean difference.

    Under "no difference" each pair's difference is as likely to have either sign.
    Exact (all 2^n sign patterns) up to n = 16, Monte Carlo beyond. One pair, or a
    handful all pointing the same way, can never reach p < 0.05 by construction
    (with n pairs the smallest exact p is 2 / 2^n).
    """
    n = len(diffs)
    observed = abs(sum(diffs)) - 1e-12
    if n == 0 or observed <= 0:
        return 1.0
    if n <= 16:
        extreme = 0
        for mask in range(2**n):
            total = sum(-d if mask >> i & 1 else d for i, d in enumerate(diffs))
            extreme += abs(total) >= observed
        return float(extreme / 2**n)
    rng = random.Random(seed)
    extreme = sum(
        abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed
        for _ in range(resamples)
    )
    return (extreme + 1) / (resamples + 1)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Mean of ``b - a``, its bootstrap 95% interval, and a sign-flip permutation p."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    if n == 0:
        return 0.0, 0.0, 0.0, 1.0
    mean = sum(diffs) / n
    p = sign_flip_p(diffs, seed=seed)
    if min(diffs) == max(diffs):
        return mean, mean, mean, p
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    return mean, means[int(0.025 * resamples)], means[int(0.975 * resamples)], p
