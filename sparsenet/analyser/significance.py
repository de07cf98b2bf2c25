"""Is a clustering of channels real? A permutation null and a split-half stability score.

Statistic: the weighted modularity (Newman 2004) of the partition on the affinity graph,

    Q = sum_k [ W_kk / (2m) - (d_k / (2m))^2 ],

with W the affinity among active channels (self-loops removed), 2m the total weight, W_kk the
weight inside cluster k and d_k the summed degree of its channels.  Q is the fraction of
affinity that falls inside clusters minus what a random graph with the same degrees would put
there; it is 0 for a single cluster.  It was chosen over the normalised cut because it needs no
K-dependent normalisation and is comparable across K.

Null: every channel is permuted independently across samples (for maps, across the N images,
so that each channel keeps its values, their distribution and its spatial structure within an
image, while any co-firing between channels is destroyed).  The *same* pipeline (statistics ->
affinity -> choice of K -> clustering) is run on each shuffled copy and its modularity
recorded.  Under ``n_clusters="auto"`` every copy chooses its own K with the same rule as the
data (``sparsenet.analyser.clustering``; a copy has no structure, so its edge is that of
the shuffled copies, which is a function of the data's shuffles and so the same for a shuffle
of a shuffle), so p is the probability that noise
gives a partition this modular *including* the choice of K.  Every copy that, like
structureless data mostly does, chooses K = 1 has Q = 0; those ties are ordered by a second,
continuous statistic the pipeline returns (``tiebreak``, the estimator's: minus the second
Laplacian eigenvalue, how close the copy came to a second cluster), so p stays meaningful at
K = 1 and is uniform on structureless data instead of piling up at 1.  With K given, K is
fixed and there is no tie-break.  Clustering noise also finds some modularity, which is why the
observed value is compared to this null rather than to 0:
``z = (Q - mean_null) / std_null`` and ``p = (1 + #{null >= observed}) / (1 + n_permutations)``
(the smallest reachable p is ``1 / (1 + n_permutations)``).

Stability: the images (samples for 2-D input) are split into two random halves, the pipeline
is run on each half, and the adjusted Rand index between the two labelings is computed over the
channels active in both; the mean over ``n_resamples`` splits is reported.  Cluster by cluster
(Hennig 2007, "Cluster-wise assessment of cluster stability", CSDA 52): each cluster of the
fit against every half's labeling, its Jaccard similarity with the half's most similar
cluster, averaged over the 2 x ``n_resamples`` halves (``cluster_stability``).  A cluster that
is found again whenever the data are resampled scores near 1; one the clustering invents (a
homogeneous block cut in two) is cut differently in each half and scores near 1/2 or below.
Hennig reads a mean of 0.5 or less as a cluster that dissolves and one of 0.75 or more as stable
(his readings come from bootstrap resamples of the clustered objects; here the images are halved
and every channel is clustered in every half, so they are a guide, not a calibrated test).

Speed: the copies are independent, so they run several at a time (``workers()`` threads, one
BLAS thread each: the products, eigendecompositions and most element-wise work release the GIL).
As many at a time as torch has threads (``torch.get_num_threads()``, at most ``MAX_WORKERS``), so
that a process given one thread (an experiment's ``threads = 1``, a torchrun rank) uses one core
here too.
Each copy's permutations come from its own seed, drawn in order before any copy runs, so the
result does not depend on which thread finishes first.  To stay fast on big maps, the rows
(one row = one image position, C channels) fed to the pipeline are a uniform random subset of at
most ``MAX_ROWS``; when that subset is smaller than the data, the observed modularity is
recomputed on the same (unshuffled) subset so that the observed value and the null are
measured on equally many rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score

from sparsenet.blas import one_blas_thread
from sparsenet.progress import bar

STATISTIC = "modularity"
MAX_ROWS = 50_000
WORKERS: int | None = None   # copies at a time; None: torch's thread count (``workers()``)
MAX_WORKERS = 8   # each copy holds up to MAX_ROWS x C float32 samples (200 MB at 1,024 channels)
_SEED_MAX = np.iinfo(np.int32).max

# A pipeline takes an M x C matrix of samples and returns (C x C affinity, C labels with -1),
# optionally with a third value, the tie-break statistic among copies of equal modularity.
Pipeline = Callable[[np.ndarray], tuple]


def workers() -> int:
    """How many copies run at a time: ``WORKERS`` when set, else torch's intra-op thread count,
    at most ``MAX_WORKERS`` (memory: every running copy holds its own samples and affinity)."""
    if WORKERS is not None:
        return max(1, int(WORKERS))
    import torch

    return max(1, min(torch.get_num_threads(), MAX_WORKERS))


def modularity(affinity: np.ndarray, labels: np.ndarray) -> float:
    """Weighted modularity of ``labels`` (channels labelled -1 are left out) on ``affinity``."""
    keep = np.asarray(labels) >= 0
    if np.unique(np.asarray(labels)[keep]).size <= 1:
        return 0.0  # one cluster (or none): Q = 1 - 1 = 0
    weights = np.array(affinity, dtype=np.float64)[np.ix_(keep, keep)]
    np.fill_diagonal(weights, 0.0)
    total = weights.sum()
    if total <= 0:
        return 0.0
    labels = np.asarray(labels)[keep]
    _, index = np.unique(labels, return_inverse=True)
    onehot = np.zeros((labels.size, index.max() + 1))
    onehot[np.arange(labels.size), index] = 1.0
    inside = np.einsum("ik,ij,jk->", onehot, weights, onehot, optimize=True)
    degree = onehot.T @ weights.sum(axis=1)
    return float(inside / total - np.sum((degree / total) ** 2))


def permutation_test(
    X: np.ndarray,
    pipeline: Pipeline,
    n_permutations: int,
    rng: np.random.RandomState,
    *,
    observed: float | None = None,
    observed_tiebreak: float | None = None,
    max_rows: int = MAX_ROWS,
) -> dict:
    """Modularity of the pipeline on ``X`` against its channel-shuffled null (module docstring).

    ``observed`` (and ``observed_tiebreak``) describe the fitted clustering on all of ``X``;
    they are recomputed on the row subset when ``X`` has more than ``max_rows`` rows, or when
    ``observed`` is None.
    """
    X3 = _as_3d(X)
    rows, subsampled = row_index(np.arange(X3.shape[0]), X3.shape[2], max_rows, rng)
    if observed is None or subsampled:
        observed, observed_tiebreak = _statistic(pipeline(sample_rows(X3, rows, dtype=np.float32)))
    seeds = rng.randint(_SEED_MAX, size=n_permutations)
    null = shuffled_map(X3, rows, lambda Z: _statistic(pipeline(Z)), seeds, desc="permutation null")
    return _summary(float(observed), observed_tiebreak, null)


def shuffled_map(X3: np.ndarray, rows: tuple, fn: Callable, seeds, desc: str = "shuffled copies") -> list:
    """``fn`` on the channel-shuffled copy of ``X3``'s ``rows`` made from each seed, in order;
    the copies run ``workers()`` at a time with one BLAS thread each."""

    gather = shuffled_rows(X3, rows)

    def one(seed):
        shuffle = np.random.RandomState(seed)
        perms = np.stack([shuffle.permutation(X3.shape[0]) for _ in range(X3.shape[1])])
        return fn(gather(perms))

    with one_blas_thread():  # the bar (stderr, in a terminal) counts finished copies
        n = workers()
        if n <= 1 or len(seeds) < 2:
            return [one(seed) for seed in bar(seeds, desc=desc)]
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(bar(pool.map(one, seeds), total=len(seeds), desc=desc))


def half_labelings(
    X: np.ndarray,
    pipeline: Pipeline,
    n_resamples: int,
    rng: np.random.RandomState,
    *,
    max_rows: int = MAX_ROWS,
) -> list[np.ndarray] | None:
    """The pipeline's labels on ``n_resamples`` pairs of random halves of the images, the two
    halves of a split next to each other; None if < 4 images."""
    X3 = _as_3d(X)
    n_images = X3.shape[0]
    if n_images < 4 or n_resamples < 1:
        return None
    halves = [rows for _ in range(n_resamples) for rows in random_halves(n_images, X3.shape[2], max_rows, rng)]

    def labels(rows):
        return pipeline(sample_rows(X3, rows, dtype=np.float32))[1]

    with one_blas_thread(), ThreadPoolExecutor(max_workers=workers()) as pool:
        return list(bar(pool.map(labels, halves), total=len(halves), desc="stability halves"))


def stability(X: np.ndarray, pipeline: Pipeline, n_resamples: int, rng: np.random.RandomState, *,
              max_rows: int = MAX_ROWS) -> float | None:
    """Mean ARI between clusterings of two random halves of the images; None if < 4 images."""
    return split_agreement(half_labelings(X, pipeline, n_resamples, rng, max_rows=max_rows))


def split_agreement(labelings: list[np.ndarray] | None) -> float | None:
    """Mean ARI between the two halves of each split (``half_labelings``' pairs)."""
    if not labelings:
        return None
    scores = [_pair_ari(labelings[i], labelings[i + 1]) for i in range(0, len(labelings), 2)]
    scores = [s for s in scores if s is not None]
    return float(np.mean(scores)) if scores else None


def cluster_stability(labels: np.ndarray, labelings: list[np.ndarray] | None) -> np.ndarray | None:
    """Per cluster k of ``labels`` (-1: inactive): the mean over ``labelings`` of the Jaccard
    similarity between k's channels and the most similar cluster of that labeling (Hennig 2007;
    module docstring).  As for the ARI, only channels active in both the fit and the half count
    (a channel silent in a half has not moved); a half in which none of k's channels is active
    does not count for k (NaN where none does)."""
    if not labelings:
        return None
    labels = np.asarray(labels)
    n_clusters = int(labels.max()) + 1
    if n_clusters < 1:
        return None
    total, used = np.zeros(n_clusters), np.zeros(n_clusters)
    for half in labelings:
        half = np.asarray(half)
        active = (labels >= 0) & (half >= 0)
        if not active.any():
            continue
        m = int(half[active].max()) + 1
        # contingency over the channels active in both: in fit cluster k and in half cluster j
        both = np.zeros((n_clusters, m))
        np.add.at(both, (labels[active], half[active]), 1)
        size_k, size_j = both.sum(axis=1, keepdims=True), both.sum(axis=0, keepdims=True)
        present = size_k[:, 0] > 0
        union = size_k + size_j - both
        jaccard = np.divide(both, union, out=np.zeros_like(both), where=union > 0)
        total[present] += jaccard[present].max(axis=1)
        used[present] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / used


def random_halves(n_images: int, n_positions: int, max_rows: int, rng) -> tuple[tuple, tuple]:
    """Rows (``row_index``) of two disjoint random halves of the images (one left out if odd)."""
    order = rng.permutation(n_images)
    half = n_images // 2
    return tuple(row_index(np.sort(images), n_positions, max_rows, rng)[0]
                 for images in (order[:half], order[half : 2 * half]))


def random_parts(n_images: int, n_positions: int, max_rows: int, rng, fraction: float) -> tuple[tuple, tuple]:
    """Rows of a random ``fraction`` of the images (at least one) and of all the others."""
    order = rng.permutation(n_images)
    m = min(n_images - 1, max(1, int(round(fraction * n_images))))
    return tuple(row_index(np.sort(images), n_positions, max_rows, rng)[0] for images in (order[:m], order[m:]))


def split_map(X3: np.ndarray, parts: list, fn: Callable, desc: str = "split parts") -> list:
    """``fn(A, B)`` on the float32 samples of each pair of row sets in ``parts`` (two parts of
    the images, of any sizes), in order,
    ``workers()`` at a time with one BLAS thread each."""

    def one(pair):
        return fn(*(sample_rows(X3, rows, dtype=np.float32) for rows in pair))

    with one_blas_thread(), ThreadPoolExecutor(max_workers=workers()) as pool:
        return list(bar(pool.map(one, parts), total=len(parts), desc=desc))


def row_index(images: np.ndarray, n_positions: int, max_rows: int, rng) -> tuple[tuple, bool]:
    """Rows to use: ``(images, None)`` for every position of ``images``, or ``(image index,
    position index)`` of a uniform subset of ``max_rows`` rows; and whether it is a subset."""
    total = len(images) * n_positions
    if total <= max_rows:
        return (images, None), False
    flat = np.sort(rng.choice(total, size=max_rows, replace=False))
    return (images[flat // n_positions], flat % n_positions), True


def sample_rows(X3: np.ndarray, rows: tuple, perms: np.ndarray | None = None,
                dtype=np.float64) -> np.ndarray:
    """M x C matrix of rows (``dtype``); channel c taken from image ``perms[c][n]`` if permuted."""
    n_idx, p_idx = rows
    n_channels = X3.shape[1]
    if p_idx is None:  # all positions: copy whole images, channel by channel
        out = np.empty((n_channels, len(n_idx), X3.shape[2]), dtype=dtype)
        for c in range(n_channels):
            out[c] = X3[n_idx if perms is None else perms[c][n_idx], c, :]
        return out.reshape(n_channels, -1).T
    out = np.empty((n_channels, len(n_idx)), dtype=dtype)
    for c in range(n_channels):
        out[c] = X3[n_idx if perms is None else perms[c][n_idx], c, p_idx]
    return out.T


def shuffled_rows(X3: np.ndarray, rows: tuple) -> Callable[[np.ndarray], np.ndarray]:
    """``perms -> sample_rows(X3, rows, perms, dtype=np.float32)``, the same values, for many
    copies of the same rows: each copy is one ``np.take`` from a channel-major float32 copy of
    ``X3`` made once and shared by all of them (instead of one fancy index per channel and
    copy, about half the time at 1,024 channels).  With a row subset (``rows`` holds positions)
    the copies gather from ``X3`` directly, without the shared copy."""
    n_idx, p_idx = rows
    n_images, n_channels = X3.shape[0], X3.shape[1]
    if p_idx is not None:
        channel = np.arange(n_channels)[:, None]
        return lambda perms: np.ascontiguousarray(X3[perms[:, n_idx], channel, p_idx[None, :]], dtype=np.float32).T
    source = np.ascontiguousarray(X3.transpose(1, 0, 2), dtype=np.float32).reshape(n_channels * n_images, -1)
    offset = (np.arange(n_channels) * n_images)[:, None]

    def gather(perms):
        index = perms[:, n_idx] + offset  # C x N': rows of ``source``
        return np.take(source, index.ravel(), axis=0).reshape(n_channels, -1).T

    return gather


def _statistic(result: tuple) -> tuple[float, float | None]:
    """(modularity, tie-break or None) of a pipeline's (affinity, labels[, tiebreak])."""
    tiebreak = result[2] if len(result) > 2 else None
    return modularity(result[0], result[1]), tiebreak


def _pair_ari(a: np.ndarray, b: np.ndarray) -> float | None:
    both = (a >= 0) & (b >= 0)
    if both.sum() < 2:
        return None
    return float(adjusted_rand_score(a[both], b[both]))


def _summary(observed: float, observed_tiebreak: float | None, null: list) -> dict:
    values = np.array([q for q, _ in null], dtype=np.float64)
    mean = float(values.mean()) if values.size else float("nan")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    tolerance = 1e-12 * max(1.0, abs(observed))
    above = values > observed + tolerance
    tied = np.abs(values - observed) <= tolerance
    if observed_tiebreak is not None and values.size:  # equal Q (mostly K = 1): the tie-break
        tied &= np.array([t is not None and t >= observed_tiebreak for _, t in null], dtype=bool)
    exceed = int(np.sum(above | tied))
    return {
        "statistic": STATISTIC,
        "value": observed,
        "null_mean": mean,
        "null_std": std,
        "z": _z_score(observed, mean, std),
        "p": (1 + exceed) / (1 + values.size),
        "n_permutations": int(values.size),
    }


def _z_score(observed: float, mean: float, std: float) -> float:
    """(observed - mean) / std; a null without spread gives 0 (equal) or +-inf."""
    if std > 1e-12:
        return (observed - mean) / std
    return 0.0 if abs(observed - mean) <= 1e-12 else float(np.copysign(np.inf, observed - mean))


def _as_3d(X: np.ndarray) -> np.ndarray:
    """N x C (x H x W) -> N x C x P view, P positions per image (1 for 2-D input)."""
    return X.reshape(X.shape[0], X.shape[1], -1)
