"""The fitted attributes of ``ChannelStats``, derived from its running sums on each read.

Nothing here changes the state.  Covariances are population ones (ddof=0); the ring sums, taken
about a fixed shift, are centred here with the global means, and correlations never hold NaN:
the rows and columns of inactive channels (constant, or never active) are 0.
"""

from __future__ import annotations

import numpy as np

from sparsenet.errors import SparsenetError
from sparsenet.stats.state import StatsState

DEFAULT_TOL = {"float64": 1e-10, "float32": 1e-6}  # well above a constant channel's rounding


def covariance(state: StatsState) -> np.ndarray:
    cov = state.m2 / state.n
    return (cov + cov.T) / 2


def std(state: StatsState) -> np.ndarray:
    return np.sqrt(np.clip(np.diag(state.m2) / state.n, 0.0, None))


def active_counts(state: StatsState, cofiring: bool) -> np.ndarray:
    return np.diag(state.cofire) if cofiring else state.cofire


def active_rate(state: StatsState, cofiring: bool) -> np.ndarray:
    return active_counts(state, cofiring) / state.n


def constant(state: StatsState, tol: float) -> np.ndarray:
    """Channels with ``std <= tol * (|mean| + 1)``."""
    return std(state) <= tol * (np.abs(state.mean) + 1.0)


def dead(state: StatsState, cofiring: bool) -> np.ndarray:
    """Channels never active (never above their threshold)."""
    return active_counts(state, cofiring) == 0


def inactive(state: StatsState, cofiring: bool, tol: float) -> np.ndarray:
    """``constant | dead``: channels whose correlation rows are set to 0."""
    return constant(state, tol) | dead(state, cofiring)


def ring_pair_counts(state: StatsState) -> np.ndarray:
    """(R+1,) int64: (p, d) pairs behind each ring, counting d and -d (ring 0: samples)."""
    rings = 2 * state.ring_n if state.spatial and state.ring_n is not None \
        else np.zeros(0, np.int64)
    return np.concatenate([[state.n], rings]).astype(np.int64)


def normalise(cov: np.ndarray, std: np.ndarray, inactive: np.ndarray,
              unit_diag: bool) -> np.ndarray:
    """``cov`` over ``std_i std_j``, 0 in the rows and columns of ``inactive`` channels;
    ``unit_diag`` clips to [-1, 1] and puts 1 on the active channels' diagonal."""
    active = ~inactive
    scale = np.where(active, std, 1.0)
    corr = cov / np.outer(scale, scale)
    corr[~active, :] = 0.0
    corr[:, ~active] = 0.0
    if unit_diag:
        corr = np.clip(corr, -1.0, 1.0)
        idx = np.flatnonzero(active)
        corr[idx, idx] = 1.0
    return corr


def correlation(state: StatsState, cofiring: bool, tol: float) -> np.ndarray:
    """Pearson correlation at offset 0; inactive rows/columns (diagonal included) are 0."""
    return normalise(covariance(state), std(state), inactive(state, cofiring, tol),
                     unit_diag=True)


def spatial_covariance(state: StatsState, max_radius: int) -> np.ndarray:
    """(R+1, C, C): cross-covariance per Chebyshev ring, centred with the global means."""
    if not state.spatial:
        raise SparsenetError("spatial_covariance needs maps (N x C x H x W) but this "
                             "ChannelStats was fed flat N x C features")
    R, C = max_radius, state.C
    out = np.empty((R + 1, C, C))
    out[0] = covariance(state)
    delta = state.mean - state.shift
    for k in range(R):
        m = state.ring_n[k]
        if m == 0:
            raise SparsenetError(
                f"no pair of positions at Chebyshev distance {k + 1} fits in the maps seen "
                f"(too small); accepted: max_radius <= {k} for these maps, or larger maps"
            )
        S, w = state.ring_s[k], state.ring_u[k] + state.ring_v[k]
        full = (S + S.T - np.outer(w, delta) - np.outer(delta, w)
                + 2 * m * np.outer(delta, delta))
        out[k + 1] = full / (2 * m)
    return out


def spatial_correlation(state: StatsState, max_radius: int, cofiring: bool,
                        tol: float) -> np.ndarray:
    """``spatial_covariance`` over ``std_i std_j``; ring 0 is ``correlation``, other rings are
    not clipped; inactive rows/columns are 0."""
    cov = spatial_covariance(state, max_radius)
    out = np.empty_like(cov)
    out[0] = correlation(state, cofiring, tol)
    sd, off = std(state), inactive(state, cofiring, tol)
    for k in range(1, cov.shape[0]):
        out[k] = normalise(cov[k], sd, off, unit_diag=False)
    return out
