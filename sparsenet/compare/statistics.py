"""Small, pure statistics for the comparator: mean with a Student-t interval, Welch's test,
and a curve interpolated linearly in log(multiply-adds).

Conventions (the report states them):

* ``mean_ci``: mean +- t_{(1+c)/2, n-1} * s / sqrt(n), s the sample standard deviation (ddof 1);
  with one value the interval is undefined (NaN), never zero.
* ``welch``: ``scipy.stats.ttest_ind(a, b, equal_var=False)`` (two-sided), with the
  Welch-Satterthwaite degrees of freedom.
* ``interpolate_log``: linear in log(x) between the two neighbouring measured points; outside
  the measured range the end segment is extended and the result is flagged ``extrapolated``.

Paired by seed (the pre-registered comparisons: a seed fixes data order and initialisation, so
the two arms' runs at one seed form a pair and d_i = a_i - b_i):

* ``paired_t``: t = mean(d) / (s_d / sqrt(n)), n - 1 degrees of freedom, two-sided
  (``scipy.stats.ttest_rel``).
* ``wilcoxon``: the signed-rank test of the d_i (``scipy.stats.wilcoxon``, two-sided; zero
  differences dropped as Wilcoxon did, the exact null distribution when n is small and there are
  no ties, the normal approximation otherwise).
* ``bootstrap_ci``: percentile interval of mean(d) over ``resamples`` resamples of the n pairs
  with replacement, drawn by ``numpy.random.default_rng(seed)`` (so the interval is reproducible).
* ``holm``: Holm's step-down adjusted p-values, p_(i) * (m - i + 1) made monotone and capped at 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from sparsenet.errors import SparsenetError

__all__ = ["MeanCI", "mean_ci", "Welch", "welch", "Interpolated", "interpolate_log", "verdict", "Paired",
           "paired_t", "wilcoxon", "bootstrap_ci", "holm", "PAIRED_TESTS"]


@dataclass(frozen=True)
class MeanCI:
    mean: float        # sample mean
    low: float         # lower end of the confidence interval (NaN for n < 2)
    high: float        # upper end
    half_width: float  # t * s / sqrt(n) (NaN for n < 2)
    std: float         # sample standard deviation, ddof 1 (NaN for n < 2)
    n: int             # number of values
    confidence: float  # e.g. 0.95


def _values(values: Sequence[float], what: str) -> np.ndarray:
    x = np.asarray(list(values), dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise SparsenetError(f"{what}: expected at least one number, got {list(values)!r}")
    if not np.all(np.isfinite(x)):
        raise SparsenetError(f"{what}: values must be finite, got {x.tolist()!r}")
    return x


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval of ``values``."""
    if not 0 < confidence < 1:
        raise SparsenetError(f"confidence must be in (0, 1), got {confidence!r}")
    x = _values(values, "mean_ci")
    n, mean = len(x), float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, math.nan, math.nan, n, confidence)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, half, std, n, confidence)


@dataclass(frozen=True)
class Welch:
    t: float           # Welch's t statistic (mean(a) - mean(b)) / se
    p: float           # two-sided p-value (NaN when undefined)
    df: float          # Welch-Satterthwaite degrees of freedom
    diff: float        # mean(a) - mean(b)
    n_a: int
    n_b: int


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
    """Welch's unequal-variance t-test of a against b (two-sided)."""
    x, y = _values(a, "welch a"), _values(b, "welch b")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Welch(math.nan, math.nan, math.nan, diff, len(x), len(y))
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb == 0:   # no spread at all: the test is undefined (scipy would return NaN too)
        return Welch(math.nan, math.nan, math.nan, diff, len(x), len(y))
    res = stats.ttest_ind(x, y, equal_var=False)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    return Welch(float(res.statistic), float(res.pvalue), float(df), diff, len(x), len(y))


@dataclass(frozen=True)
class Interpolated:
    value: float          # the curve's value at x
    extrapolated: bool    # x lies outside [min(xs), max(xs)]
    low: float            # the measured x range
    high: float
    outside: float = 0.0  # how far outside, relative: x / high - 1 above, 1 - x / low below; 0 inside


def interpolate_log(xs: Sequence[float], ys: Sequence[float], x: float) -> Interpolated:
    """y at ``x`` on the polyline through (log xs, ys); outside the range the end segment extends."""
    px, py = _values(xs, "curve x"), _values(ys, "curve y")
    if len(px) != len(py):
        raise SparsenetError(f"curve has {len(px)} x values and {len(py)} y values")
    if len(px) < 2:
        raise SparsenetError("a curve needs at least two points (two width multipliers) to interpolate")
    if np.any(px <= 0) or not (x > 0 and math.isfinite(x)):
        raise SparsenetError("log-interpolation needs positive x values")
    order = np.argsort(px)
    lx, py = np.log(px[order]), py[order]
    if np.any(np.diff(lx) == 0):
        raise SparsenetError(f"curve has repeated x values {px[order].tolist()}; expected distinct ones")
    t = math.log(x)
    i = int(np.clip(np.searchsorted(lx, t) - 1, 0, len(lx) - 2))
    frac = (t - lx[i]) / (lx[i + 1] - lx[i])
    value = float(py[i] + frac * (py[i + 1] - py[i]))
    low, high = float(px[order][0]), float(px[order][-1])
    outside = x / high - 1 if x > high else (1 - x / low if x < low else 0.0)
    return Interpolated(value, bool(t < lx[0] or t > lx[-1]), low, high, float(outside))


def verdict(w: Welch, alpha: float = 0.05) -> str:
    """'better', 'worse' or 'tie' (no significant difference at ``alpha``); 'n/a' when untestable."""
    if math.isnan(w.p):
        return "n/a"
    if w.p < alpha:
        return "better" if w.diff > 0 else "worse"
    return "tie"


# ----------------------------------------------------------------------------- paired by seed

@dataclass(frozen=True)
class Paired:
    statistic: float   # t (paired_t) or W, the smaller signed-rank sum (wilcoxon); NaN when undefined
    p: float           # two-sided p-value (NaN when undefined: fewer than 2 pairs, or no spread)
    n: int             # number of pairs
    diff: float        # mean(a - b)


def _pairs(a: Sequence[float], b: Sequence[float], what: str) -> np.ndarray:
    x, y = _values(a, f"{what} a"), _values(b, f"{what} b")
    if len(x) != len(y):
        raise SparsenetError(f"{what}: paired samples need the same length, got {len(x)} and {len(y)}")
    return x - y


def paired_t(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Student's paired t-test of a against b (two-sided)."""
    d = _pairs(a, b, "paired_t")
    if len(d) < 2 or float(d.std(ddof=1)) == 0.0:
        return Paired(math.nan, math.nan, len(d), float(d.mean()))
    res = stats.ttest_rel(np.asarray(a, float), np.asarray(b, float))
    return Paired(float(res.statistic), float(res.pvalue), len(d), float(d.mean()))


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Wilcoxon's signed-rank test of the paired differences a - b (two-sided)."""
    d = _pairs(a, b, "wilcoxon")
    if np.count_nonzero(d) == 0:
        return Paired(math.nan, math.nan, len(d), float(d.mean()))
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return Paired(float(res.statistic), float(res.pvalue), len(d), float(d.mean()))


def bootstrap_ci(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a - b), resampling the pairs (seeded, reproducible)."""
    if not 0 < confidence < 1:
        raise SparsenetError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(resamples, int) or resamples < 1:
        raise SparsenetError(f"resamples must be an integer >= 1, got {resamples!r}")
    d = _pairs(a, b, "bootstrap_ci")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given; NaN (an untestable comparison) stays NaN and is not counted."""
    p = [float(v) for v in p_values]
    for v in p:
        if not (math.isnan(v) or 0 <= v <= 1):
            raise SparsenetError(f"holm: p-values must be in [0, 1] (or NaN), got {p!r}")
    tested = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m, out, running = len(tested), [math.nan] * len(p), 0.0
    for rank, (v, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


PAIRED_TESTS = {"paired_t": paired_t, "wilcoxon": wilcoxon}   # by the names experiment.TESTS accepts
