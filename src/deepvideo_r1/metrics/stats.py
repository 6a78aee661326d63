"""Confidence intervals for accuracies: over seeds (Student t) and over held-out samples.

    mean  m = sum(x) / n,   s = sqrt(sum((x - m)^2) / (n - 1))
    95 % interval  m ± t(0.975, n - 1) · s / sqrt(n)

With one value the interval is undefined (None): one seed says nothing about seed-to-seed spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

K = TypeVar("K", int, str)

# t(0.975, df) for df = 1..30 (two-sided 95 %), from the Student t table.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table up to 30, then the Cornish-Fisher series in 1/df (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; nan for no values."""
    return sum(values) / len(values) if values else math.nan


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95 % Student-t interval of the mean of `values`; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    m = mean(values)
    s = math.sqrt(sum((x - m) ** 2 for x in values) / (n - 1))
    half = t_quantile_975(n - 1) * s / math.sqrt(n)
    return (m - half, m + half)


def paired_difference(
    values: dict[K, float], baseline: dict[K, float]
) -> tuple[float, tuple[float, float] | None, list[K]]:
    """Mean and 95 % t-interval of value - baseline over the keys both have, and those keys.

    Keys are seeds (pairing removes what a seed's data and warm start share from the spread) or
    held-out sample ids (the same clips scored before and after training).
    """
    seeds = sorted(values.keys() & baseline.keys())
    diffs = [values[s] - baseline[s] for s in seeds]
    return mean(diffs), t_interval(diffs), seeds
