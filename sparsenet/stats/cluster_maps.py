"""Second pass of the spatial profile: ring autocovariances of the K summed cluster maps.

Once the channels are clustered, K maps carry the spatial extent that ``ChannelStats`` would
measure with ``C x C`` products per ring, so the analyser's first pass keeps offset 0 only.
"""

from __future__ import annotations

import numpy as np
import torch

from sparsenet.blas import one_blas_thread
from sparsenet.errors import SparsenetError
from sparsenet.stats import kernels
from sparsenet.stats.inputs import as_tensor
from sparsenet.stats.rings import ring_windows
from sparsenet.stats.state import NotFittedError


class ClusterMapStats:
    """Second pass of the spatial profile: ring autocovariances of each cluster's summed map.

    The within-cluster spatial profile (``docs/analyser.md``)

        p_k(r) = sum_{i,j in k} rho_r(i, j) / sum_{i,j in k} rho_0(i, j)

    needs, for each cluster k, only the autocovariance of its summed standardised map
    ``Z_k(p) = sum_{i in k} (x_i(p) - mean_i) / std_i`` at each ring: because rho_r(i, j) is the
    ring-averaged covariance of ``x_i(p)`` and ``x_j(p + d)`` over ``std_i std_j``, the sum over
    ``i, j`` in k is the ring average of ``Z_k(p) Z_k(p + d)``, and the sum at r = 0 is the
    variance of ``Z_k`` (``rho_0(i, i) = 1``).  So once the channels are clustered (from the
    offset-0 statistics of a first pass, ``ChannelStats(max_radius=0)``), a second pass over
    the K cluster maps replaces the ``C x C x rings`` products of ``ChannelStats(max_radius=R)``:
    ``C x K`` multiply-adds per position to form the maps and ``K x (offsets)`` for the rings.
    The profiles equal ``cluster_spatial_profiles(ChannelStats(max_radius=R).spatial_correlation(),
    labels, K)`` to rounding (tested to 1e-8).

    Parameters
    ----------
    labels : array of C ints
        Cluster of each channel, 0..K-1; -1 (inactive) channels are left out.
    mean, std : arrays of C floats
        The channels' global means and (population) standard deviations, e.g. ``mean_`` and
        ``std_`` of the first pass's ``ChannelStats`` over the same data.  Every clustered
        channel needs ``std > 0``.
    max_radius : int >= 0, default 2
        Largest Chebyshev ring R.

    ``partial_fit(X)`` takes N x C x H x W maps (numpy or torch; batches may differ in H, W) and
    accumulates in float64.  Fitted attributes: ``autocovariance_`` (K x (R+1): ring r average of
    ``Z_k(p) Z_k(p + d)`` over every offset d of the ring and every position with ``p + d``
    inside the map), ``pair_counts_`` ((R+1,), (p, d) pairs per ring, counting d and -d; ring 0:
    positions) and ``profiles_`` (K x (R+1), the autocovariance over its r = 0 value; a cluster
    whose summed map has no variance gets 1 then 0).  Memory is O(K (R + 1)) plus one chunk.
    """

    def __init__(self, labels, mean, std, *, max_radius: int = 2):
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
            raise SparsenetError(f"labels must be a 1-D array of C integers (-1 = inactive); "
                                 f"got shape {labels.shape} and dtype {labels.dtype}")
        if isinstance(max_radius, (bool, np.bool_)) \
                or not isinstance(max_radius, (int, np.integer)) or max_radius < 0:
            raise SparsenetError(f"max_radius={max_radius!r}; accepted: an integer >= 0")
        C = labels.shape[0]
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.shape != (C,) or std.shape != (C,):
            raise SparsenetError(f"mean and std must have one value per channel ({C}); got "
                                 f"shapes {mean.shape} and {std.shape}")
        K = int(labels.max()) + 1 if (labels >= 0).any() else 0
        members = labels >= 0
        if K == 0:
            raise SparsenetError("labels put no channel in a cluster (all -1); nothing to profile")
        if not np.all(np.isfinite(mean[members])) or not np.all(std[members] > 0):
            bad = np.flatnonzero(members & ~(std > 0))
            raise SparsenetError(f"clustered channels need a finite mean and std > 0; channel(s) "
                                 f"{bad[:5].tolist()} have std {std[bad[:5]].tolist()}")
        self.labels = labels.astype(np.int64)
        self.max_radius = int(max_radius)
        self.n_clusters = K
        # Z = P x - offset:  P[k, c] = 1 / std_c for the channels c of cluster k (K x C)
        self._P = np.zeros((K, C))
        idx = np.flatnonzero(members)
        self._P[self.labels[idx], idx] = 1.0 / std[idx]
        self._offset = self._P @ np.where(members, mean, 0.0)
        self._acc = np.zeros((self.max_radius + 1, K))
        self._pairs = np.zeros(self.max_radius + 1, dtype=np.int64)
        self._images = 0

    def __repr__(self) -> str:
        return (f"ClusterMapStats(n_clusters={self.n_clusters}, max_radius={self.max_radius}, "
                f"images={self._images})")

    def partial_fit(self, X) -> "ClusterMapStats":
        """Add one batch of maps (N x C x H x W) and return ``self``."""
        T = as_tensor(X)
        C = self._P.shape[1]
        if T.ndim != 4 or T.shape[1] != C or T.numel() == 0:
            raise SparsenetError(f"X has shape {tuple(T.shape)}; accepted: non-empty N x {C} x H x W "
                                 f"maps (the channels the labels describe)")
        if T.dtype == torch.bool:
            T = T.to(torch.uint8)
        N, H, W = int(T.shape[0]), int(T.shape[2]), int(T.shape[3])
        src = T.cpu().numpy()
        P = self._P  # K x C float64
        acc = np.zeros_like(self._acc)
        pairs = np.zeros_like(self._pairs)
        per_chunk = max(1, kernels.CHUNK_BYTES // max(1, C * H * W * 8))
        with np.errstate(over="ignore", invalid="ignore"), \
                one_blas_thread():
            # one thread: a few small products per chunk (threads: the docstring of sparsenet.stats.engine)
            for start in range(0, N, per_chunk):
                x = src[start:start + per_chunk].reshape(-1, C, H * W).astype(np.float64)
                Z = np.matmul(P, x)  # n x K x HW: summed standardised maps (before centring)
                Z -= self._offset[None, :, None]
                Z = Z.reshape(-1, self.n_clusters, H, W)
                acc[0] += np.einsum("nkhw,nkhw->k", Z, Z)
                pairs[0] += Z.shape[0] * H * W
                for r in range(1, self.max_radius + 1):
                    for (ph, pw), (qh, qw) in ring_windows(r, H, W):
                        p = Z[:, :, ph, pw]
                        acc[r] += np.einsum("nkhw,nkhw->k", p, Z[:, :, qh, qw])
                        pairs[r] += p[:, 0].size
        if not np.all(np.isfinite(acc)):
            raise SparsenetError("X contains non-finite values (NaN or inf); accepted: finite maps")
        self._acc += acc
        self._pairs += pairs
        self._images += N
        return self

    def _check_fitted(self) -> None:
        if self._images == 0:
            raise NotFittedError("this ClusterMapStats has seen no data yet; call partial_fit(X)")

    @property
    def pair_counts_(self) -> np.ndarray:
        self._check_fitted()
        return 2 * self._pairs - np.r_[self._pairs[0], np.zeros(self.max_radius, np.int64)]

    @property
    def autocovariance_(self) -> np.ndarray:
        """K x (R+1): ring-averaged autocovariance of each cluster's summed standardised map."""
        self._check_fitted()
        empty = np.flatnonzero(self._pairs == 0)
        if empty.size:
            raise SparsenetError(
                f"no pair of positions at Chebyshev distance {int(empty[0])} fits in the maps seen "
                f"(too small); accepted: max_radius <= {int(empty[0]) - 1} for these maps")
        return (self._acc / self._pairs[:, None]).T

    @property
    def profiles_(self) -> np.ndarray:
        """K x (R+1): ``autocovariance_`` over its r = 0 value (the spatial profile p_k(r))."""
        cov = self.autocovariance_
        out = np.zeros_like(cov)
        out[:, 0] = 1.0
        ok = cov[:, 0] > 1e-12
        out[ok] = cov[ok] / cov[ok, :1]
        return out
