"""Is a clustering of channels real? A permutation null and a split-half stability score.

Statistic: the weighted modularity (Newman 2004) of the partition on the affinity graph,

    Q = sum_k [ W_kk / (2m) - (d_k / (2m))^2 ],

with W the affinity among active channels (self-loops removed), 2m the total weight, W_kk the
weight inside cluster k and d_k the summed degree of its channels.  Q is the fraction of
affinity that falls inside clusters minus what a random graph with the same degrees would put
there; it is 0 for a single cluster.  It was chosen over the normalised cut because it needs no
K-dependent normalisation and is comparable across K (the null re-chooses K under "auto").

Null: every channel is permuted independently across samples (for maps, across the N images,
so that each channel keeps its values, their distribution and its spatial structure within an
image, while any co-firing between channels is destroyed).  The *same* pipeline (statistics ->
affinity -> clustering, K re-chosen when "auto") is run on each shuffled copy and its
modularity recorded (the estimator keeps K at the value found on the data, see
``CorrelationAnalyzer._pipeline``).  Clustering noise also finds some modularity, which is why the observed
value is compared to this null rather than to 0:
``z = (Q - mean_null) / std_null`` and ``p = (1 + #{null >= Q}) / (1 + n_permutations)``.

Stability: the images (samples for 2-D input) are split into two random halves, the pipeline
is run on each half, and the adjusted Rand index between the two labelings is computed over the
channels active in both; the mean over ``n_resamples`` splits is reported.

To stay fast on big maps, the rows (one row = one image position, C channels) fed to the
pipeline are a uniform random subset of at most ``MAX_ROWS``; when that subset is smaller than
the data, the observed modularity is recomputed on the same (unshuffled) subset so that the
observed value and the null are measured on equally many rows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score

from sparsenet.progress import bar

STATISTIC = "modularity"
MAX_ROWS = 50_000

# A pipeline takes an M x C matrix of samples and returns (C x C affinity, C labels with -1).
Pipeline = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def modularity(affinity: np.ndarray, labels: np.ndarray) -> float:
    """Weighted modularity of ``labels`` (channels labelled -1 are left out) on ``affinity``."""
    keep = np.asarray(labels) >= 0
    weights = np.array(affinity, dtype=np.float64)[np.ix_(keep, keep)]
    np.fill_diagonal(weights, 0.0)
    total = weights.sum()
    if total <= 0:
        return 0.0
    labels = np.asarray(labels)[keep]
    degree = weights.sum(axis=1)
    q = 0.0
    for k in np.unique(labels):
        inside = labels == k
        q += weights[np.ix_(inside, inside)].sum() / total - (degree[inside].sum() / total) ** 2
    return float(q)


def permutation_test(
    X: np.ndarray,
    pipeline: Pipeline,
    n_permutations: int,
    rng: np.random.RandomState,
    *,
    observed: float | None = None,
    max_rows: int = MAX_ROWS,
) -> dict:
    """Modularity of the pipeline on ``X`` against its channel-shuffled null (module docstring).

    ``observed`` is the modularity of the fitted clustering on all of ``X``; it is recomputed
    on the row subset when ``X`` has more than ``max_rows`` rows, or when it is None.
    """
    X3 = _as_3d(X)
    rows, subsampled = row_index(np.arange(X3.shape[0]), X3.shape[2], max_rows, rng)
    if observed is None or subsampled:
        observed = modularity(*pipeline(sample_rows(X3, rows)))
    repeats = bar(range(n_permutations), desc="permutation null")  # on stderr, in a terminal
    null = np.array([_null_statistic(X3, rows, pipeline, rng) for _ in repeats])
    return _summary(float(observed), null)


def stability(
    X: np.ndarray,
    pipeline: Pipeline,
    n_resamples: int,
    rng: np.random.RandomState,
    *,
    max_rows: int = MAX_ROWS,
) -> float | None:
    """Mean ARI between clusterings of two random halves of the images; None if < 4 images."""
    X3 = _as_3d(X)
    n_images = X3.shape[0]
    if n_images < 4 or n_resamples < 1:
        return None
    scores = [_split_half_ari(X3, pipeline, rng, max_rows) for _ in bar(range(n_resamples), desc="stability halves")]
    scores = [s for s in scores if s is not None]
    return float(np.mean(scores)) if scores else None


def row_index(images: np.ndarray, n_positions: int, max_rows: int, rng) -> tuple[tuple, bool]:
    """Rows to use: ``(images, None)`` for every position of ``images``, or ``(image index,
    position index)`` of a uniform subset of ``max_rows`` rows; and whether it is a subset."""
    total = len(images) * n_positions
    if total <= max_rows:
        return (images, None), False
    flat = np.sort(rng.choice(total, size=max_rows, replace=False))
    return (images[flat // n_positions], flat % n_positions), True


def sample_rows(X3: np.ndarray, rows: tuple, perms: np.ndarray | None = None) -> np.ndarray:
    """M x C float64 matrix of rows; channel c taken from image ``perms[c][n]`` if permuted."""
    n_idx, p_idx = rows
    n_channels = X3.shape[1]
    if p_idx is None:  # all positions: copy whole images, channel by channel
        out = np.empty((n_channels, len(n_idx), X3.shape[2]), dtype=np.float64)
        for c in range(n_channels):
            out[c] = X3[n_idx if perms is None else perms[c][n_idx], c, :]
        return out.reshape(n_channels, -1).T
    out = np.empty((n_channels, len(n_idx)), dtype=np.float64)
    for c in range(n_channels):
        out[c] = X3[n_idx if perms is None else perms[c][n_idx], c, p_idx]
    return out.T


def _null_statistic(X3, rows, pipeline, rng) -> float:
    perms = np.stack([rng.permutation(X3.shape[0]) for _ in range(X3.shape[1])])
    return modularity(*pipeline(sample_rows(X3, rows, perms)))


def _split_half_ari(X3, pipeline, rng, max_rows) -> float | None:
    order = rng.permutation(X3.shape[0])
    half = X3.shape[0] // 2
    labelings = []
    for images in (order[:half], order[half : 2 * half]):
        rows, _ = row_index(np.sort(images), X3.shape[2], max_rows, rng)
        labelings.append(pipeline(sample_rows(X3, rows))[1])
    both = (labelings[0] >= 0) & (labelings[1] >= 0)
    if both.sum() < 2:
        return None
    return float(adjusted_rand_score(labelings[0][both], labelings[1][both]))


def _summary(observed: float, null: np.ndarray) -> dict:
    mean = float(null.mean()) if null.size else float("nan")
    std = float(null.std(ddof=1)) if null.size > 1 else 0.0
    tolerance = 1e-12 * max(1.0, abs(observed))
    exceed = int(np.sum(null >= observed - tolerance))
    return {
        "statistic": STATISTIC,
        "value": observed,
        "null_mean": mean,
        "null_std": std,
        "z": _z_score(observed, mean, std),
        "p": (1 + exceed) / (1 + null.size),
        "n_permutations": int(null.size),
    }


def _z_score(observed: float, mean: float, std: float) -> float:
    """(observed - mean) / std; a null without spread gives 0 (equal) or +-inf."""
    if std > 1e-12:
        return (observed - mean) / std
    return 0.0 if abs(observed - mean) <= 1e-12 else float(np.copysign(np.inf, observed - mean))


def _as_3d(X: np.ndarray) -> np.ndarray:
    """N x C (x H x W) -> N x C x P view, P positions per image (1 for 2-D input)."""
    return X.reshape(X.shape[0], X.shape[1], -1)
