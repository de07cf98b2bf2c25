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
from sparsenet.stats.rings import ring_offsets, valid_range
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
    whose summed map has no variance gets 1 then 0).

    The footprint (``sparsenet.analyser.footprint``) needs the shared pattern without each
    channel's correlation with itself and without the per-position mean of the maps, so the
    same pass also keeps, for every half-ring offset d up to R (``offsets_``): the products of
    each standardised channel with itself at d, and the per-position sums of the standardised
    channels for each map size.  Then ``cross_covariance_`` (K x M) is, per offset d,

        sum_{i != j in k} mean over n, p of (x~_i(p) - mu_i(p)) (x~_j(p + d) - mu_j(p + d)),

    ``x~ = (x - mean) / std`` and ``mu_i(p)`` the mean of ``x~_i`` at position p over the images
    (of that map size), and ``cross_correlation_`` (K,) its offset-0 value over the number of
    ordered pairs (the cluster's mean cross-pair correlation).  Centring per position is exact
    algebra on the sums: ``sum_n (a_n - mu)(b_n - nu) = sum_n a_n b_n - N mu nu``.  Memory is
    ``O((K + C) M)`` plus ``C H W`` per map size plus one chunk, whatever the number of images.
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
        self._mean = mean
        self._offsets = [d for r in range(self.max_radius + 1) for d in ring_offsets(r, half=True)]
        self._ring = np.array([max(abs(dy), abs(dx)) for dy, dx in self._offsets])
        M = len(self._offsets)
        self._acc = np.zeros((M, K))          # sum of Z_k(p) Z_k(p + d) per half offset d
        self._self = np.zeros((M, C))         # sum of x~_c(p) x~_c(p + d)
        self._pairs = np.zeros(M, dtype=np.int64)
        self._sums: dict[tuple[int, int], list] = {}  # (H, W) -> [images, C x H x W sum of x~]
        self._members = idx
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
        own = np.zeros_like(self._self)
        pairs = np.zeros_like(self._pairs)
        pos = np.zeros((C, H, W))
        scale = P.sum(axis=0)  # 1 / std of each clustered channel, 0 elsewhere
        shift = scale * np.where(self.labels >= 0, self._mean, 0.0)
        per_chunk = max(1, kernels.CHUNK_BYTES // max(1, C * H * W * 8))
        with np.errstate(over="ignore", invalid="ignore"), \
                one_blas_thread():
            # one thread: a few small products per chunk (threads: the docstring of sparsenet.stats.engine)
            for start in range(0, N, per_chunk):
                x = src[start:start + per_chunk].reshape(-1, C, H * W).astype(np.float64)
                Z = np.matmul(P, x)  # n x K x HW: summed standardised maps (before centring)
                Z -= self._offset[None, :, None]
                Z = Z.reshape(-1, self.n_clusters, H, W)
                xs = x * scale[None, :, None]  # n x C x HW: standardised (0 if unclustered)
                xs -= shift[None, :, None]
                xs = xs.reshape(-1, C, H, W)
                pos += xs.sum(axis=0)
                for m, (ps, qs) in enumerate(self._windows(H, W)):
                    if ps is None:
                        continue
                    p = Z[:, :, ps[0], ps[1]]
                    acc[m] += np.einsum("nkhw,nkhw->k", p, Z[:, :, qs[0], qs[1]])
                    own[m] += np.einsum("nchw,nchw->c", xs[:, :, ps[0], ps[1]],
                                        xs[:, :, qs[0], qs[1]])
                    pairs[m] += p[:, 0].size
        if not (np.all(np.isfinite(acc)) and np.all(np.isfinite(own))):
            raise SparsenetError("X contains non-finite values (NaN or inf); accepted: finite maps")
        self._acc += acc
        self._self += own
        self._pairs += pairs
        entry = self._sums.setdefault((H, W), [0, np.zeros((C, H, W))])
        entry[0] += N
        entry[1] += pos
        self._images += N
        return self

    def _windows(self, H: int, W: int) -> list:
        """For each half offset d: (window of p, window of p + d) in an H x W map, or
        (None, None) where d does not fit."""
        out = []
        for dy, dx in self._offsets:
            h0, h1 = valid_range(dy, H)
            w0, w1 = valid_range(dx, W)
            if h0 < h1 and w0 < w1:
                out.append(((slice(h0, h1), slice(w0, w1)),
                            (slice(h0 + dy, h1 + dy), slice(w0 + dx, w1 + dx))))
            else:
                out.append((None, None))
        return out

    def _check_fitted(self) -> None:
        if self._images == 0:
            raise NotFittedError("this ClusterMapStats has seen no data yet; call partial_fit(X)")

    def _ring_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-offset array (M x ...) ring by ring: (R+1) x ..."""
        return np.stack([values[self._ring == r].sum(axis=0) for r in range(self.max_radius + 1)])

    def _ring_pairs(self) -> np.ndarray:
        return self._ring_sum(self._pairs)

    @property
    def pair_counts_(self) -> np.ndarray:
        self._check_fitted()
        pairs = self._ring_pairs()
        return 2 * pairs - np.r_[pairs[0], np.zeros(self.max_radius, np.int64)]

    @property
    def autocovariance_(self) -> np.ndarray:
        """K x (R+1): ring-averaged autocovariance of each cluster's summed standardised map."""
        self._check_fitted()
        pairs = self._ring_pairs()
        empty = np.flatnonzero(pairs == 0)
        if empty.size:
            raise SparsenetError(
                f"no pair of positions at Chebyshev distance {int(empty[0])} fits in the maps seen "
                f"(too small); accepted: max_radius <= {int(empty[0]) - 1} for these maps")
        return (self._ring_sum(self._acc) / pairs[:, None]).T

    @property
    def offsets_(self) -> np.ndarray:
        """(M, 2): the half-ring offsets d = (dy, dx) up to max_radius, ring by ring."""
        return np.array(self._offsets, dtype=np.int64)

    @property
    def offset_pairs_(self) -> np.ndarray:
        """(M,): (image, p) pairs behind each offset of ``offsets_`` (0 where none fits)."""
        self._check_fitted()
        return self._pairs.copy()

    def _position_products(self) -> tuple[np.ndarray, np.ndarray]:
        """Per offset: sum over map sizes of N * sum_p mu(p) mu(p + d), for the K summed maps
        (M x K) and the C channels (M x C): what centring per position takes off the sums."""
        z_corr = np.zeros((len(self._offsets), self.n_clusters))
        own_corr = np.zeros((len(self._offsets), self._P.shape[1]))
        member = (self._P != 0).astype(np.float64)
        for (H, W), (n, total) in self._sums.items():
            mu = total / n  # C x H x W per-position means of x~
            muz = np.einsum("kc,chw->khw", member, mu)
            for m, (ps, qs) in enumerate(self._windows(H, W)):
                if ps is not None:
                    z_corr[m] += n * np.einsum("khw,khw->k", muz[:, ps[0], ps[1]], muz[:, qs[0], qs[1]])
                    own_corr[m] += n * np.einsum("chw,chw->c", mu[:, ps[0], ps[1]], mu[:, qs[0], qs[1]])
        return z_corr, own_corr

    def _per_pair(self, sums: np.ndarray) -> np.ndarray:
        """M x K sums -> K x M means over each offset's pairs (0 where none fits)."""
        out = np.zeros_like(sums)
        ok = self._pairs > 0
        out[ok] = sums[ok] / self._pairs[ok, None]
        return out.T

    @property
    def cross_covariance_(self) -> np.ndarray:
        """K x M: the cross-pair (i != j) covariance of each cluster at each offset of
        ``offsets_``, per-position means removed (class docstring); 0 where no pair fits."""
        self._check_fitted()
        z_corr, own_corr = self._position_products()
        own = (self._self - own_corr) @ (self._P != 0).T.astype(np.float64)  # M x K
        return self._per_pair(self._acc - z_corr - own)

    @property
    def own_covariance_(self) -> np.ndarray:
        """K x M: the sum over a cluster's channels of each channel's own autocovariance at each
        offset (per-position means removed), what ``cross_covariance_`` leaves out."""
        self._check_fitted()
        _, own_corr = self._position_products()
        return self._per_pair((self._self - own_corr) @ (self._P != 0).T.astype(np.float64))

    @property
    def cross_correlation_(self) -> np.ndarray:
        """(K,): mean correlation of a cluster's ordered cross pairs at offset 0 (0 for a
        cluster of one channel)."""
        sizes = np.bincount(self.labels[self.labels >= 0], minlength=self.n_clusters)
        npairs = sizes * (sizes - 1)
        cov0 = self.cross_covariance_[:, 0]
        return np.where(npairs > 0, cov0 / np.maximum(npairs, 1), 0.0)

    @property
    def profiles_(self) -> np.ndarray:
        """K x (R+1): ``autocovariance_`` over its r = 0 value (the spatial profile p_k(r))."""
        cov = self.autocovariance_
        out = np.zeros_like(cov)
        out[:, 0] = 1.0
        ok = cov[:, 0] > 1e-12
        out[ok] = cov[ok] / cov[ok, :1]
        return out
