"""Affinity between channels: how strongly two channels fire together.

Every affinity is a symmetric C x C matrix with values in [0, 1], 1 on the diagonal of active
channels, and rows and columns of inactive channels (dead or constant) set to 0.  They are
computed from the running statistics of :class:`sparsenet.stats.ChannelStats` (any object with
``correlation_``, ``cofiring_``, ``n_samples_`` and ``inactive_`` will do).

Kinds (the ``affinity`` option of :class:`~sparsenet.analyser.CorrelationAnalyzer`):

``"pearson_abs"``
    ``|r_ij|``: channels that move together or in opposition.
``"pearson_pos"``
    ``max(r_ij, 0)``: only channels that move together.
``"cofire_lift"``
    lift = P(i and j active) / (P(i active) P(j active)), 1 for independent channels, mapped to
    [0, 1) by ``max(lift - 1, 0) / lift`` (= ``max(1 - 1/lift, 0)``): 0 when they co-fire no
    more than chance, 0.5 at twice chance, 0.9 at ten times chance.
``"cofire_jaccard"``
    |i and j active| / |i or j active| over samples.
``"arora"``
    Arora et al.'s Hebbian graph, binary: an edge i-j iff the pair co-fires at least
    ``graph_threshold`` times more often than independent units would (lift >
    ``graph_threshold``) and the excess is significant (Poisson z-score of the co-firing count
    against its independent expectation above 3, so that rarely firing pairs do not make edges
    from a handful of coincidences).
"""

from __future__ import annotations

import numpy as np

from sparsenet.analyser.settings import AFFINITIES, PEARSON_AFFINITIES
from sparsenet.errors import SparsenetError



# Minimum Poisson z-score of a co-firing count above its independent expectation for an
# "arora" edge.
ARORA_MIN_Z = 3.0


def check_affinity_kind(kind) -> str:
    """Return ``kind`` if it names a known affinity, else raise SparsenetError."""
    if not isinstance(kind, str) or kind not in AFFINITIES:
        raise SparsenetError(
            f"unknown affinity {kind!r}; accepted: {', '.join(repr(a) for a in AFFINITIES)}"
        )
    return kind


def compute_affinity(stats, kind: str = "pearson_abs", *, graph_threshold: float = 2.0) -> np.ndarray:
    """C x C affinity of kind ``kind`` from channel statistics; see the module docstring."""
    check_affinity_kind(kind)
    inactive = np.asarray(stats.inactive_, dtype=bool)
    if kind in PEARSON_AFFINITIES:
        corr = np.nan_to_num(np.asarray(stats.correlation_, dtype=np.float64))
        raw = np.abs(corr) if kind == "pearson_abs" else np.maximum(corr, 0.0)
    else:
        cofiring = np.asarray(stats.cofiring_, dtype=np.float64)
        n = float(stats.n_samples_)
        if kind == "cofire_lift":
            raw = lift_affinity(cofiring, n)
        elif kind == "cofire_jaccard":
            raw = jaccard_affinity(cofiring)
        else:
            raw = arora_affinity(cofiring, n, graph_threshold)
    return _finish(raw, inactive)


def lift(cofiring: np.ndarray, n_samples: float) -> np.ndarray:
    """P(i & j) / (P(i) P(j)) from co-firing counts; 0 where a channel never fires."""
    counts = np.diag(cofiring)
    expected = np.outer(counts, counts) / max(n_samples, 1.0)
    out = np.zeros_like(cofiring, dtype=np.float64)
    np.divide(cofiring, expected, out=out, where=expected > 0)
    return out


def lift_affinity(cofiring: np.ndarray, n_samples: float) -> np.ndarray:
    """``max(lift - 1, 0) / lift`` in [0, 1)."""
    ratio = lift(cofiring, n_samples)
    out = np.zeros_like(ratio)
    np.divide(np.maximum(ratio - 1.0, 0.0), ratio, out=out, where=ratio > 0)
    return out


def jaccard_affinity(cofiring: np.ndarray) -> np.ndarray:
    """|i & j| / |i or j| from co-firing counts; 0 where neither fires."""
    counts = np.diag(cofiring)
    union = counts[:, None] + counts[None, :] - cofiring
    out = np.zeros_like(cofiring, dtype=np.float64)
    np.divide(cofiring, union, out=out, where=union > 0)
    return out


def arora_affinity(cofiring: np.ndarray, n_samples: float, graph_threshold: float) -> np.ndarray:
    """Binary graph: lift > graph_threshold and Poisson z of the co-firing count > 3."""
    counts = np.diag(cofiring)
    expected = np.outer(counts, counts) / max(n_samples, 1.0)
    z = np.zeros_like(cofiring, dtype=np.float64)
    np.divide(cofiring - expected, np.sqrt(expected), out=z, where=expected > 0)
    edges = (lift(cofiring, n_samples) > graph_threshold) & (z > ARORA_MIN_Z)
    return edges.astype(np.float64)


def _finish(raw: np.ndarray, inactive: np.ndarray) -> np.ndarray:
    """Symmetrise, clip to [0, 1], 1 on the active diagonal, 0 for inactive channels."""
    out = np.clip(np.nan_to_num((raw + raw.T) / 2.0), 0.0, 1.0)
    np.fill_diagonal(out, 1.0)
    out[inactive, :] = 0.0
    out[:, inactive] = 0.0
    return out


def sample_affinity(Z: np.ndarray, kind: str, thresholds: np.ndarray, *,
                    graph_threshold: float = 2.0, tol: float = 1e-6,
                    overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(affinity, inactive) of an M x C matrix of samples, computed directly in float32.

    The same affinity ``compute_affinity`` gives on ``ChannelStats(threshold=thresholds,
    dtype="float32")`` of ``Z`` (active: value > threshold; inactive: never active or
    ``std <= tol * (|mean| + 1)``), without its streaming machinery: one symmetric product
    (BLAS ``ssyrk``, half a general product) of the centred samples, or of the 0/1 activity
    for the co-firing kinds (counts exact below 2^24 rows).  This is what the permutation null,
    the reference copies of the automatic K and the stability halves run, many times over.
    ``overwrite=True`` lets a float32 ``Z`` be centred in place (a copy made for this call).
    """
    from sparsenet.stats.inputs import float32_floor

    owned = overwrite and isinstance(Z, np.ndarray) and Z.dtype == np.float32
    Z = np.asarray(Z, dtype=np.float32)
    M = Z.shape[0]
    limit = float32_floor(np.asarray(thresholds, dtype=np.float64)).astype(np.float32)
    dead = ~(Z.max(axis=0) > limit)  # never above its threshold
    mean = Z.mean(axis=0, dtype=np.float64)
    if kind in PEARSON_AFFINITIES:
        if owned:
            Z -= mean.astype(np.float32)
            cov = _gram(1.0 / M, Z)
        else:
            cov = _gram(1.0 / M, Z - mean.astype(np.float32))
        std = np.sqrt(np.clip(np.diag(cov).astype(np.float64), 0.0, None))
    else:
        active = Z > limit
        std = Z.std(axis=0, dtype=np.float64)
    inactive = dead | (std <= tol * (np.abs(mean) + 1.0))
    if kind in PEARSON_AFFINITIES:  # in place: C x C float32 work only
        inv = np.where(inactive, 0.0, 1.0 / np.where(inactive, 1.0, std)).astype(np.float32)
        cov *= inv[:, None]
        cov *= inv[None, :]
        if kind == "pearson_abs":
            np.abs(cov, out=cov)
        raw = np.clip(cov, 0.0, 1.0, out=cov).astype(np.float64)
        idx = np.flatnonzero(~inactive)
        raw[idx, idx] = 1.0
        return raw, inactive
    cofiring = _gram(1.0, active.astype(np.float32)).astype(np.float64)
    if kind == "cofire_lift":
        raw = lift_affinity(cofiring, float(M))
    elif kind == "cofire_jaccard":
        raw = jaccard_affinity(cofiring)
    else:
        raw = arora_affinity(cofiring, float(M), graph_threshold)
    return _finish(raw, inactive), inactive


def _gram(alpha: float, A: np.ndarray) -> np.ndarray:
    """``alpha A^T A`` of an M x C float32 matrix.  numpy recognises ``A.T @ A`` and calls BLAS
    ``syrk`` (half the work of a general product, exactly symmetric) with the GIL released, so
    the null's copies really run ``significance.workers()`` at a time; scipy's ``ssyrk``
    wrapper holds the GIL and serialised them (measured: 2 threads no faster than 1)."""
    out = A.T @ A
    out *= np.float32(alpha)
    return out
