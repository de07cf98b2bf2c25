"""Exact merges of running sums: Chan et al.'s pairwise formula and the re-basing of ring sums.

The same two formulas add each batch to the running state (``engine``) and merge two shards
(``merge_states``), so a merge of shards equals one fit over their concatenated data up to
rounding.  Ring sums taken about one shift are moved onto another with exact algebra:
``x - K = (x - K') + e`` with ``e = K' - K``.
"""

from __future__ import annotations

import numpy as np

from sparsenet.errors import SparsenetError
from sparsenet.stats.state import StatsState


def chan_merge(na, mean_a, m2a, nb, mean_b, m2b):
    """Chan et al.'s pairwise merge of (count, mean, centred cross-products)."""
    if na == 0:
        return mean_b.copy(), m2b.copy(), nb
    n = na + nb
    delta = mean_b - mean_a
    mean = mean_a + delta * (nb / n)
    m2 = m2a + m2b + np.outer(delta, delta) * (na * nb / n)
    return mean, m2, n


def rebase_ring(S: np.ndarray, u: np.ndarray, v: np.ndarray, m, e: np.ndarray):
    """One ring's sums (``S``, ``u``, ``v`` over ``m`` pairs) about a shift K' moved onto the
    shift ``K = K' - e``: ``sum (a + e)(b + e)^T``, ``sum (a + e)``, ``sum (b + e)``."""
    return (S + np.outer(u, e) + np.outer(e, v) + m * np.outer(e, e), u + m * e, v + m * e)


def check_mergeable(a: StatsState, b: StatsState) -> None:
    """Refuse two states that are not shards of one layer's statistics."""
    if a.C != b.C:
        raise SparsenetError(f"cannot merge: {a.C} channels vs {b.C} channels; "
                             f"accepted: shards of the same layer")
    if a.spatial != b.spatial:
        raise SparsenetError("cannot merge: one shard saw maps (N x C x H x W), the other flat "
                             "features (N x C); accepted: shards of the same kind")
    if not np.array_equal(a.thresholds, b.thresholds):
        k = int(np.argmax(a.thresholds != b.thresholds))
        raise SparsenetError(
            f"cannot merge: activity thresholds differ (channel {k}: "
            f"{a.thresholds[k]!r} vs {b.thresholds[k]!r}); accepted: equal "
            f"thresholds -- fit later shards with ChannelStats(threshold=first.thresholds_)"
        )


def merge_states(a: StatsState, b: StatsState, max_radius: int) -> StatsState:
    """The state of both shards together, as a new value (``a`` and ``b`` unchanged); the
    ring sums keep ``a``'s shift."""
    check_mergeable(a, b)
    out = a.copy()
    out.mean, out.m2, out.n = chan_merge(a.n, a.mean, a.m2, b.n, b.mean, b.m2)
    out.cofire = a.cofire + b.cofire
    out.n_images = a.n_images + b.n_images
    if a.spatial and max_radius > 0:
        e = b.shift - a.shift
        for k in range(max_radius):
            m = b.ring_n[k]
            S, u, v = rebase_ring(b.ring_s[k], b.ring_u[k], b.ring_v[k], m, e)
            out.ring_s[k] += S
            out.ring_u[k] += u
            out.ring_v[k] += v
            out.ring_n[k] += m
    return out
