"""Streaming statistics of a layer's channels.

``ChannelStats`` reads a layer's activations batch by batch (``partial_fit``) and keeps only
running sums whose size depends on the number of channels ``C`` and the largest spatial radius
``R``, never on the number of samples:

* offset 0: mean and centred cross-products (``M2``), merged batch to batch with Chan et al.'s
  parallel algorithm (exact and numerically robust; the merge of two shards is the same
  formula);
* co-firing: counts of samples where channels ``i`` and ``j`` are both *active* (value above a
  threshold);
* spatial rings ``r = 1..R`` (maps only): sums of ``x_i(p) x_j(p + d)`` over every offset ``d``
  at Chebyshev distance ``r`` (``max(|dy|, |dx|) == r``) and every position ``p`` with ``p + d``
  inside the map, with the sums of the first and second factors and the pair counts, so that
  the cross-covariance per ring can be centred with the global means at the end.

Memory is ``(R + 2) * C * C`` float64 numbers plus ``O(C * R)`` (and a few scratch buffers
of one chunk of a batch, reused from batch to batch).  Every product is a matrix
multiplication in torch (multithreaded BLAS): ``Xc^T Xc`` for offset 0, ``A^T A`` for
co-firing and ``Xc^T Y_r`` for ring ``r``, where ``Y_r(p) = sum_d Xc(p + d)`` over half of the
ring's offsets (``S_{-d} = S_d^T``, so the other half is the transpose) -- one product per
ring, not one per offset: ``2 + R`` products per batch in all.  A batch is processed in chunks
of whole maps (about 32 MB of channels-last data each); products run in the compute dtype
(``float64`` or ``float32``), are summed over the chunks of a batch in that dtype and
accumulated across batches in float64.

Threads.  Only the products use torch's thread pool; the element-wise work of a chunk (the
channels-last copy, thresholding, centring, per-position sums and the shifted ring sums) runs
in numpy, single-threaded.  On a machine shared with other jobs every parallel region costs a
scheduler time slice while the second thread waits for a core (measured on 2 cores at load
~4: a tiny convolution takes 9 us with one thread and 24 ms with two, an add of 1M floats
0.2 ms and 12 ms), and a chunk's dozen element-wise torch ops made the streaming reach only
0.3 of ``torch.mm``'s rate with two threads; with numpy and 32 MB chunks (few regions per
batch) it reaches 0.7-0.8 at offset 0 (``sparsenet bench``: docs/performance.md).  The ring
sums are the element-wise work that remains (``R = 2``: about 0.65 of mm's rate); the analyser
measures the spatial extent from the K cluster maps instead (``ClusterMapStats``), so its
statistics need offset 0 only.

Numerics.  Each batch is shifted by its own mean (rounded to the compute dtype) before the
products, and the ring sums are re-based to a fixed shift (the first batch's mean) with exact
algebra, so nothing suffers from the cancellation of ``E[xy] - E[x]E[y]`` with large means.  In
float64 mode the statistics agree with ``numpy.cov(bias=True)`` / ``numpy.corrcoef`` on the
concatenated data to ~1e-12; in float32 mode correlations agree to within ``1e-4`` (tested;
typically ~1e-6) and covariances to a relative ``1e-4``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np
import torch

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_with
from sparsenet.stats import kernels
from sparsenet.stats.cluster_maps import ClusterMapStats
from sparsenet.stats.inputs import as_batch, float32_floor, parse_threshold
from sparsenet.stats.kernels import gram_acc, half_ring_sum, sum_rows64, zero_tensor
from sparsenet.stats.rings import count_maps, ring_offsets
from sparsenet.stats.state import NotFittedError

__all__ = ["ChannelStats", "ClusterMapStats", "NotFittedError", "ring_offsets"]

_FORMAT = "sparsenet.ChannelStats"
_VERSION = 1
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_DEFAULT_TOL = {"float64": 1e-10, "float32": 1e-6}


class ChannelStats:
    """Streaming statistics of a layer's channels; memory O(C^2 * (R+1)), independent of N.

    Parameters
    ----------
    max_radius : int, default 2
        Largest Chebyshev ring ``R`` of spatial cross-covariance kept for maps (a k x k
        convolution reaches radius ``(k - 1) / 2``; R = 2 covers 5x5).  0 keeps offset 0 only.
    threshold : float, "quantile:q" or array of C floats, default 0.0
        A channel is *active* where its value is ``> threshold`` (0.0: fires after ReLU).
        ``"quantile:q"`` (``0 < q < 1``): each channel's threshold is the q-quantile of its values
        in the first batch (all positions), stored in ``thresholds_`` and used unchanged for every
        later batch.  An array gives fixed per-channel thresholds -- pass
        ``threshold=first_shard.thresholds_`` to fit further shards that can be merged.
    dtype : "float64" or "float32", default "float64"
        Compute dtype of the per-batch products.  float64 is exact to rounding (~1e-12);
        float32 is about twice as fast and keeps correlations within 1e-4 (sums are always
        accumulated in float64; co-firing counts are exact in both).
    tol : float or None
        A channel is *constant* where ``std <= tol * (|mean| + 1)``.  Default 1e-10 (float64)
        or 1e-6 (float32), well above the rounding of a truly constant channel.
    cofiring : bool, default True
        Count co-firing for every pair of channels (``cofiring_``, a C x C product per batch).
        False counts each channel's active samples only (``active_rate_``, ``dead_``,
        ``inactive_`` are unchanged; ``cofiring_`` raises): half the products when only the
        correlations are needed (the analyser's significance null with a Pearson affinity).

    Fitted attributes (read-only properties; reading one before any data raises
    ``NotFittedError``, an ``AttributeError``, so ``hasattr(stats, "mean_")`` is False):
    ``n_channels_``, ``n_samples_`` (positions counted at offset 0: N*H*W summed over batches),
    ``n_images_`` (N summed over batches), ``spatial_``, ``mean_``, ``covariance_`` (population,
    ddof=0), ``std_``, ``correlation_``, ``constant_``, ``dead_``, ``inactive_``,
    ``active_rate_``, ``cofiring_``, ``thresholds_``, ``ring_pair_counts_``.

    ``correlation_`` is Pearson's correlation at offset 0 and never NaN: the whole row and
    column of an inactive channel (constant, or never active) is 0, diagonal included; active
    channels have 1 on the diagonal.  Map sizes may change between batches (rings average over
    the valid pairs of every map).

    ``merge`` returns a **new** object and leaves both operands unchanged.
    """

    def __init__(self, *, max_radius: int = 2, threshold: float | str = 0.0,
                 dtype: str = "float64", tol: float | None = None, cofiring: bool = True):
        if isinstance(max_radius, (bool, np.bool_)) \
                or not isinstance(max_radius, (int, np.integer)) or max_radius < 0:
            raise SparsenetError(f"max_radius={max_radius!r}; accepted: an integer >= 0 "
                                 f"(2 covers 5x5 kernels)")
        if dtype not in _DTYPES:
            raise SparsenetError(f"dtype={dtype!r}; accepted: {sorted(_DTYPES)}")
        if tol is not None and not (isinstance(tol, (int, float)) and tol >= 0
                                    and math.isfinite(tol)):
            raise SparsenetError(f"tol={tol!r}; accepted: a finite number >= 0 or None")
        if not isinstance(cofiring, (bool, np.bool_)):
            raise SparsenetError(f"cofiring={cofiring!r}; accepted: True or False")
        self.max_radius = int(max_radius)
        self.threshold = threshold
        self.dtype = dtype
        self.tol = tol
        self.cofiring = bool(cofiring)
        self._threshold_kind, self._threshold_value = parse_threshold(threshold)
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self._fitted = False
        self._C = 0
        self._spatial = False
        self._n = 0
        self._n_images = 0
        self._mean = None  # (C,) float64
        self._m2 = None  # (C, C) float64, centred cross-products at offset 0
        self._cofire = None  # (C, C) int64; (C,) active counts with cofiring=False
        self._thresholds = None  # (C,) float64
        self._shift = None  # (C,) float64: the fixed shift K of the ring sums
        self._ring_s = None  # (R, C, C): sum over half-ring offsets d and valid p of a(p) a(p+d)^T
        self._ring_u = None  # (R, C): sum of a(p) over the same pairs   (a = x - K)
        self._ring_v = None  # (R, C): sum of a(p+d) over the same pairs
        self._ring_n = None  # (R,) int64: number of (p, d) pairs
        self._count_maps: dict[tuple[int, int], tuple] = {}
        self._work: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array reused from batch to batch of the same shape (saves the page
        faults of a fresh allocation per batch; a few chunk-sized buffers, never per sample)."""
        buf = self._work.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._work[name] = buf
        return buf

    def release_buffers(self) -> None:
        """Free the scratch buffers kept between ``partial_fit`` calls."""
        self._work = {}

    @property
    def _compute_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    @property
    def _tol(self) -> float:
        return _DEFAULT_TOL[self.dtype] if self.tol is None else float(self.tol)

    def __repr__(self) -> str:
        fitted = f", fitted on {self._n} samples x {self._C} channels" if self._fitted else ""
        pairs = "" if self.cofiring else ", cofiring=False"
        return (f"ChannelStats(max_radius={self.max_radius}, threshold={self.threshold!r}, "
                f"dtype={self.dtype!r}{pairs}{fitted})")

    # ------------------------------------------------------------ validation
    def _validate_batch(self, X: Any) -> torch.Tensor:
        T = as_batch(X)
        C = int(T.shape[1])
        spatial = T.ndim == 4
        if self._fitted:
            if spatial != self._spatial:
                prev = "N x C x H x W maps" if self._spatial else "N x C flat features"
                raise SparsenetError(
                    f"X has {T.ndim} dimensions (shape {tuple(T.shape)}) but earlier batches "
                    f"were {prev}; accepted: the same kind of input in every batch"
                )
            if C != self._C:
                raise SparsenetError(
                    f"X has {C} channels (shape {tuple(T.shape)}) but earlier batches had "
                    f"{self._C}; accepted: the same channel count in every batch"
                )
        if self._threshold_kind == "array" and self._threshold_value.shape[0] != C:
            raise SparsenetError(
                f"threshold has {self._threshold_value.shape[0]} per-channel values but X has "
                f"{C} channels; accepted: one threshold per channel"
            )
        return T

    def _raise_nonfinite(self, T: torch.Tensor) -> None:
        """Explain the non-finite values of batch ``T`` (called when its sums are not finite)."""
        C = int(T.shape[1])
        if T.is_floating_point():
            finite = torch.isfinite(T)
            if not bool(finite.all()):
                bad = (~finite).transpose(0, 1).reshape(C, -1).sum(dim=1)
                chans = torch.nonzero(bad).flatten().tolist()
                total = int(bad.sum())
                shown = ", ".join(f"{c} ({int(bad[c])})" for c in chans[:5])
                more = f", ... ({len(chans) - 5} more)" if len(chans) > 5 else ""
                first = torch.nonzero(~finite)[0].tolist()
                raise SparsenetError(
                    f"X contains {total} non-finite values (NaN or inf) in {len(chans)} "
                    f"channel(s): {shown}{more} [channel (count)]; first at index {tuple(first)}; "
                    f"accepted: finite values only"
                )
        big = float(T.abs().max())
        raise SparsenetError(
            f"X has values too large for dtype={self.dtype!r} sums (max |x| = {big:.3g}); "
            f"accepted: values whose sums fit the dtype -- rescale X or use dtype='float64'"
        )

    # ------------------------------------------------------------------- fit
    def partial_fit(self, X: Any) -> "ChannelStats":
        """Add one batch ``X`` (N x C or N x C x H x W, numpy or torch) and return ``self``.

        For maps every ``(n, h, w)`` position is one sample of the C channels.  A batch that
        raises leaves the statistics unchanged.

        The batch is processed in chunks of whole maps of about ``kernels.CHUNK_BYTES`` each (a
        bounded scratch memory, whatever the batch size).  A chunk's element-wise work (the
        channels-last copy, thresholding, centring, shifted ring sums) runs in numpy,
        single-threaded; only its ``2 + R`` matrix products run in torch's multithreaded BLAS
        (see the module docstring).
        """
        T = self._validate_batch(X)
        # overflow and inf - inf in the sums are not warnings: they are reported as an error
        with np.errstate(over="ignore", invalid="ignore"):
            return self._partial_fit(T)

    def _partial_fit(self, T: torch.Tensor) -> "ChannelStats":
        N, C = int(T.shape[0]), int(T.shape[1])
        spatial = T.ndim == 4
        T4 = T if spatial else T[:, :, None, None]  # flat features: 1 x 1 maps
        H, W = int(T4.shape[2]), int(T4.shape[3])
        n = N * H * W
        cd = self._compute_dtype
        nd = np.float32 if cd == torch.float32 else np.float64
        src = T4.cpu().numpy()

        # pass 1: channel sums in float64 (NaN/inf propagate into them: scan only then)
        colsum = sum_rows64(src.sum(axis=(2, 3)))
        if not np.all(np.isfinite(colsum)):
            self._raise_nonfinite(T)
        if self._fitted:
            thresholds, K = self._thresholds, self._shift
        else:
            thresholds, K = self._first_thresholds(T4), colsum / n
        thr = float32_floor(thresholds) if cd == torch.float32 else thresholds
        thr = np.ascontiguousarray(thr, dtype=nd)
        # shift by the batch mean rounded to the compute dtype; the sum t of the shifted data
        # makes the batch mean and M2 exact whatever the rounding of the shift
        shift_c = (colsum / n).astype(nd)
        shift = shift_c.astype(np.float64)

        R = self.max_radius if spatial else 0
        maps = self._count_maps_for(H, W) if R else []
        live = [r for r, (first, _) in enumerate(maps, start=1) if int(round(first.sum())) > 0]
        # co-firing counts: float32 products are exact integers below 2**24 rows, flushed
        # into int64 before that
        shape = (C, C) if self.cofiring else (C,)
        cof_state = {"cof": np.zeros(shape, dtype=np.int64),
                     "acc": zero_tensor(shape, np.float32), "rows": 0}
        P_acc = zero_tensor((C, C), nd)  # x^T x, summed over the chunks
        S_acc = zero_tensor((len(live), C, C), nd) if live else None  # x^T Y_r per ring
        Tpos = np.zeros((H, W, C))  # per-position sums over the maps (float64)
        per_chunk = max(1, kernels.CHUNK_BYTES // (H * W * C * np.dtype(nd).itemsize))
        per_chunk = min(per_chunk, max(1, kernels.COUNT_CHUNK // (H * W)), N)
        bufs = {"x": self._buffer("x", (per_chunk, H, W, C), nd),
                "a": self._buffer("a", (per_chunk * H * W, C), np.float32)}
        if live:
            bufs["y"] = self._buffer("y", (per_chunk, H, W, C), nd)
        for start in range(0, N, per_chunk):
            self._chunk(src[start:start + per_chunk], bufs, thr, shift_c, live, cof_state,
                        P_acc, S_acc, Tpos)
        cof, cof_acc = cof_state["cof"], cof_state["acc"]
        cof += np.rint(cof_acc.numpy()).astype(np.int64)
        P = P_acc.numpy().astype(np.float64)
        S_all = S_acc.numpy().astype(np.float64) if live else None  # (rings, C, C)
        Tpos = Tpos.reshape(H * W, C)
        t = Tpos.sum(axis=0)

        rings = []
        e = shift - K  # x - K = (x - shift) + e
        for j, r in enumerate(live):
            first, second = maps[r - 1]
            npairs = int(round(first.sum())) * N
            S = S_all[j]
            u = first.reshape(-1) @ Tpos  # sum of x(p) - shift over the pairs
            v = second.reshape(-1) @ Tpos  # sum of x(p + d) - shift over the pairs
            S = S + np.outer(u, e) + np.outer(e, v) + npairs * np.outer(e, e)
            rings.append((r - 1, S, u + npairs * e, v + npairs * e, npairs))
        if not (np.all(np.isfinite(P)) and all(np.all(np.isfinite(r[1])) for r in rings)):
            self._raise_nonfinite(T)
        batch_mean = shift + t / n
        batch_m2 = P - np.outer(t, t) / n

        # commit (nothing above touched the state)
        if not self._fitted:
            self._init_state(C, spatial, thresholds, K)
        self._mean, self._m2, self._n = _chan_merge(self._n, self._mean, self._m2,
                                                    n, batch_mean, batch_m2)
        self._cofire += cof
        self._n_images += N
        for k, S, u, v, npairs in rings:
            self._ring_s[k] += S
            self._ring_u[k] += u
            self._ring_v[k] += v
            self._ring_n[k] += npairs
        return self

    def _chunk(self, part: np.ndarray, bufs: dict, thr: np.ndarray, shift_c: np.ndarray,
               live: list[int], cof_state: dict, P_acc: torch.Tensor, S_acc: torch.Tensor | None,
               Tpos: np.ndarray) -> None:
        """One chunk of whole maps (k x C x H x W): element-wise work in numpy, then the
        products in torch: co-firing ``A^T A``, offset 0 ``x^T x`` and ``x^T Y_r`` per ring."""
        k, C, H, W = part.shape
        rows = k * H * W
        x = bufs["x"][:k]  # k x H x W x C, channels last
        np.copyto(x, part.transpose(0, 2, 3, 1), casting="unsafe")
        x2 = x.reshape(rows, C)
        # co-firing: raw values against the thresholds
        if cof_state["rows"] + rows > kernels.COUNT_CHUNK:
            cof_state["cof"] += np.rint(cof_state["acc"].numpy()).astype(np.int64)
            cof_state["acc"].numpy()[...] = 0
            cof_state["rows"] = 0
        a2 = bufs["a"][:rows]
        np.greater(x2, thr, out=a2, casting="unsafe")
        if self.cofiring:
            a2t = torch.from_numpy(a2)
            gram_acc(cof_state["acc"], a2t, a2t)
        else:  # active counts only (exact: float32 sums of at most 2**24 ones)
            acc = cof_state["acc"].numpy()
            acc += a2.sum(axis=0)
        cof_state["rows"] += rows
        # offset 0
        np.subtract(x, shift_c, out=x)
        x2t = torch.from_numpy(x2)
        gram_acc(P_acc, x2t, x2t)
        Tpos += x.sum(axis=0)
        # rings: Y_r(p) = sum over the half ring of x(p + d), 0 where p + d leaves the map
        # (Y in a buffer of its own: numpy copies operands that share one with their output)
        if live:
            y = bufs["y"][:k]
            for j, r in enumerate(live):
                half_ring_sum(y, x, r)
                gram_acc(S_acc[j], x2t, torch.from_numpy(y.reshape(rows, C)))

    def _first_thresholds(self, T4: torch.Tensor) -> np.ndarray:
        C = T4.shape[1]
        if self._threshold_kind == "value":
            return np.full(C, self._threshold_value, dtype=np.float64)
        if self._threshold_kind == "array":
            return self._threshold_value.astype(np.float64).copy()
        values = T4.permute(0, 2, 3, 1).reshape(-1, C).to(torch.float64).numpy()
        return np.quantile(values, self._threshold_value, axis=0)

    def _init_state(self, C: int, spatial: bool, thresholds: np.ndarray, shift: np.ndarray) -> None:
        R = self.max_radius
        self._C = C
        self._spatial = spatial
        self._n = 0
        self._n_images = 0
        self._mean = np.zeros(C)
        self._m2 = np.zeros((C, C))
        self._cofire = np.zeros((C, C) if self.cofiring else (C,), dtype=np.int64)
        self._thresholds = np.array(thresholds, dtype=np.float64)
        self._shift = np.array(shift, dtype=np.float64)
        if spatial:
            self._ring_s = np.zeros((R, C, C))
            self._ring_u = np.zeros((R, C))
            self._ring_v = np.zeros((R, C))
            self._ring_n = np.zeros(R, dtype=np.int64)
        self._fitted = True

    def _count_maps_for(self, H: int, W: int):
        """Per ring: (first[h,w], second[h,w]) = how many half-ring offsets d pair position
        (h,w) as p (first factor) or as p + d (second factor) with both inside the map."""
        key = (H, W)
        if key not in self._count_maps:
            self._count_maps[key] = count_maps(self.max_radius, H, W)
        return self._count_maps[key]

    # ----------------------------------------------------------------- merge
    def merge(self, other: "ChannelStats") -> "ChannelStats":
        """Exact merge of two shards; returns a **new** ``ChannelStats`` (operands unchanged).

        Both must have the same ``max_radius`` and ``dtype`` and, if both are fitted, the same
        channel count, the same kind of input (flat or maps) and identical ``thresholds_``
        (with ``threshold="quantile:q"`` each shard estimates its own thresholds; fit later
        shards with ``threshold=first.thresholds_`` to make them mergeable).
        """
        if not isinstance(other, ChannelStats):
            raise SparsenetError(f"merge received {type(other).__name__}; accepted: a ChannelStats")
        for name in ("max_radius", "dtype", "cofiring"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                raise SparsenetError(f"cannot merge: {name} differs ({a!r} vs {b!r}); accepted: "
                                     f"shards built with the same {name}")
        if not other._fitted:
            return self._copy()
        if not self._fitted:
            out = other._copy()
            out.tol = self.tol
            return out
        if self._C != other._C:
            raise SparsenetError(f"cannot merge: {self._C} channels vs {other._C} channels; "
                                 f"accepted: shards of the same layer")
        if self._spatial != other._spatial:
            raise SparsenetError("cannot merge: one shard saw maps (N x C x H x W), the other flat "
                                 "features (N x C); accepted: shards of the same kind")
        if not np.array_equal(self._thresholds, other._thresholds):
            k = int(np.argmax(self._thresholds != other._thresholds))
            raise SparsenetError(
                f"cannot merge: activity thresholds differ (channel {k}: "
                f"{self._thresholds[k]!r} vs {other._thresholds[k]!r}); accepted: equal "
                f"thresholds -- fit later shards with ChannelStats(threshold=first.thresholds_)"
            )
        out = self._copy()
        out._mean, out._m2, out._n = _chan_merge(self._n, self._mean, self._m2,
                                                 other._n, other._mean, other._m2)
        out._cofire = self._cofire + other._cofire
        out._n_images = self._n_images + other._n_images
        if self._spatial and self.max_radius > 0:
            e = other._shift - self._shift
            for k in range(self.max_radius):
                m = other._ring_n[k]
                out._ring_s[k] += (other._ring_s[k] + np.outer(other._ring_u[k], e)
                                   + np.outer(e, other._ring_v[k]) + m * np.outer(e, e))
                out._ring_u[k] += other._ring_u[k] + m * e
                out._ring_v[k] += other._ring_v[k] + m * e
                out._ring_n[k] += m
        return out

    def _copy(self) -> "ChannelStats":
        out = ChannelStats(max_radius=self.max_radius, threshold=self.threshold,
                           dtype=self.dtype, tol=self.tol, cofiring=self.cofiring)
        for key, val in self.__dict__.items():
            if key.startswith("_") and key not in ("_count_maps", "_work"):
                setattr(out, key, val.copy() if isinstance(val, np.ndarray) else val)
        return out

    # ------------------------------------------------------ fitted attributes
    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError("this ChannelStats has seen no data yet; "
                                 "call partial_fit(X) first")

    @property
    def n_channels_(self) -> int:
        self._check_fitted()
        return self._C

    @property
    def n_samples_(self) -> int:
        self._check_fitted()
        return self._n

    @property
    def n_images_(self) -> int:
        self._check_fitted()
        return self._n_images

    @property
    def spatial_(self) -> bool:
        self._check_fitted()
        return self._spatial

    @property
    def mean_(self) -> np.ndarray:
        self._check_fitted()
        return self._mean.copy()

    @property
    def covariance_(self) -> np.ndarray:
        self._check_fitted()
        cov = self._m2 / self._n
        return (cov + cov.T) / 2

    @property
    def std_(self) -> np.ndarray:
        self._check_fitted()
        return np.sqrt(np.clip(np.diag(self._m2) / self._n, 0.0, None))

    @property
    def thresholds_(self) -> np.ndarray:
        self._check_fitted()
        return self._thresholds.copy()

    @property
    def cofiring_(self) -> np.ndarray:
        """(C, C) int64: samples where both i and j are active; the diagonal = active counts."""
        self._check_fitted()
        if not self.cofiring:
            raise SparsenetError(
                "this ChannelStats was built with cofiring=False: it counts each channel's active "
                "samples only (active_rate_, dead_); accepted: ChannelStats(cofiring=True) for "
                "the pairwise co-firing counts")
        return self._cofire.copy()

    def _active_counts(self) -> np.ndarray:
        return np.diag(self._cofire) if self.cofiring else self._cofire

    @property
    def active_rate_(self) -> np.ndarray:
        self._check_fitted()
        return self._active_counts() / self._n

    @property
    def constant_(self) -> np.ndarray:
        """Channels with ``std <= tol * (|mean| + 1)``."""
        self._check_fitted()
        return self.std_ <= self._tol * (np.abs(self._mean) + 1.0)

    @property
    def dead_(self) -> np.ndarray:
        """Channels never active (never above their threshold)."""
        self._check_fitted()
        return self._active_counts() == 0

    @property
    def inactive_(self) -> np.ndarray:
        """``constant_ | dead_``: channels whose correlation rows are set to 0."""
        return self.constant_ | self.dead_

    @property
    def ring_pair_counts_(self) -> np.ndarray:
        """(R+1,) int64: (p, d) pairs behind each ring, counting d and -d (ring 0: samples)."""
        self._check_fitted()
        rings = 2 * self._ring_n if self._spatial and self._ring_n is not None \
            else np.zeros(0, np.int64)
        return np.concatenate([[self._n], rings]).astype(np.int64)

    def _normalise(self, cov: np.ndarray, unit_diag: bool) -> np.ndarray:
        std = self.std_
        active = ~self.inactive_
        scale = np.where(active, std, 1.0)
        corr = cov / np.outer(scale, scale)
        corr[~active, :] = 0.0
        corr[:, ~active] = 0.0
        if unit_diag:
            corr = np.clip(corr, -1.0, 1.0)
            idx = np.flatnonzero(active)
            corr[idx, idx] = 1.0
        return corr

    @property
    def correlation_(self) -> np.ndarray:
        """Pearson correlation at offset 0; inactive rows/columns (diagonal included) are 0."""
        self._check_fitted()
        return self._normalise(self.covariance_, unit_diag=True)

    def spatial_covariance(self) -> np.ndarray:
        """(R+1, C, C): cross-covariance per Chebyshev ring, centred with the global means.

        Ring ``r`` averages ``(x_i(p) - mean_i)(x_j(p + d) - mean_j)`` over every offset ``d``
        with ``max(|dy|, |dx|) == r`` (both ``d`` and ``-d``) and every position ``p`` with
        ``p + d`` inside the map, so each ring is symmetric.  Ring 0 is ``covariance_``.
        """
        self._check_fitted()
        if not self._spatial:
            raise SparsenetError("spatial_covariance needs maps (N x C x H x W) but this "
                                 "ChannelStats was fed flat N x C features")
        R, C = self.max_radius, self._C
        out = np.empty((R + 1, C, C))
        out[0] = self.covariance_
        delta = self._mean - self._shift
        for k in range(R):
            m = self._ring_n[k]
            if m == 0:
                raise SparsenetError(
                    f"no pair of positions at Chebyshev distance {k + 1} fits in the maps seen "
                    f"(too small); accepted: max_radius <= {k} for these maps, or larger maps"
                )
            S, w = self._ring_s[k], self._ring_u[k] + self._ring_v[k]
            full = (S + S.T - np.outer(w, delta) - np.outer(delta, w)
                    + 2 * m * np.outer(delta, delta))
            out[k + 1] = full / (2 * m)
        return out

    def spatial_correlation(self) -> np.ndarray:
        """``spatial_covariance()`` divided by ``std_i std_j``; inactive rows/columns are 0.

        Ring 0 equals ``correlation_``; other rings are not clipped (|value| <= 1 only
        approximately, as the ring average is not a Pearson correlation of its own)."""
        cov = self.spatial_covariance()
        out = np.empty_like(cov)
        out[0] = self.correlation_
        for k in range(1, cov.shape[0]):
            out[k] = self._normalise(cov[k], unit_diag=False)
        return out

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects), e.g. for ``np.savez``; see ``from_dict``."""
        kind, val = self._threshold_kind, self._threshold_value
        d: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT),
            "version": np.array(_VERSION),
            "max_radius": np.array(self.max_radius),
            "dtype": np.array(self.dtype),
            "tol": np.array(np.nan if self.tol is None else float(self.tol)),
            "threshold_kind": np.array(kind),
            "threshold_value": np.atleast_1d(np.asarray(val, dtype=np.float64)),
            "fitted": np.array(self._fitted),
            "cofiring_pairs": np.array(self.cofiring),
        }
        if kind == "quantile":
            d["threshold_text"] = np.array(str(self.threshold))
        if self._fitted:
            C, R = self._C, self.max_radius
            spatial = self._spatial
            d.update({
                "n_channels": np.array(C),
                "spatial": np.array(spatial),
                "n_samples": np.array(self._n),
                "n_images": np.array(self._n_images),
                "mean": self._mean.copy(),
                "m2": self._m2.copy(),
                "cofiring": self._cofire.copy(),
                "thresholds": self._thresholds.copy(),
                "shift": self._shift.copy(),
                "ring_s": self._ring_s.copy() if spatial else np.zeros((0, C, C)),
                "ring_u": self._ring_u.copy() if spatial else np.zeros((0, C)),
                "ring_v": self._ring_v.copy() if spatial else np.zeros((0, C)),
                "ring_n": self._ring_n.copy() if spatial else np.zeros(0, np.int64),
            })
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ChannelStats":
        """Rebuild from ``to_dict()`` output (or the ``np.load`` of a saved one)."""
        def get(key):
            try:
                return np.asarray(d[key])
            except KeyError:
                raise SparsenetError(f"ChannelStats data lacks the key {key!r}; accepted: the "
                                     f"output of ChannelStats.to_dict()") from None

        fmt = str(get("format")) if "format" in d else None
        if fmt != _FORMAT:
            raise SparsenetError(f"data has format {fmt!r}; accepted: {_FORMAT!r} "
                                 f"(from ChannelStats.to_dict)")
        if int(get("version")) != _VERSION:
            raise SparsenetError(f"ChannelStats data version {int(get('version'))}; "
                                 f"accepted: {_VERSION}")
        kind = str(get("threshold_kind"))
        tv = get("threshold_value").astype(np.float64)
        if kind == "value":
            threshold = float(tv[0])
        elif kind == "quantile":
            threshold = (str(get("threshold_text")) if "threshold_text" in d
                         else f"quantile:{float(tv[0])!r}")
        elif kind == "array":
            threshold = tv.copy()
        else:
            raise SparsenetError(f"unknown threshold_kind {kind!r}; "
                                 f"accepted: value, quantile, array")
        tol = float(get("tol"))
        pairs = bool(get("cofiring_pairs")) if "cofiring_pairs" in d else True
        out = cls(max_radius=int(get("max_radius")), threshold=threshold,
                  dtype=str(get("dtype")), tol=None if math.isnan(tol) else tol, cofiring=pairs)
        if not bool(get("fitted")):
            return out
        C, R = int(get("n_channels")), out.max_radius
        spatial = bool(get("spatial"))
        shapes = {"mean": (C,), "m2": (C, C), "cofiring": (C, C) if pairs else (C,),
                  "thresholds": (C,),
                  "shift": (C,), "ring_s": (R if spatial else 0, C, C),
                  "ring_u": (R if spatial else 0, C), "ring_v": (R if spatial else 0, C),
                  "ring_n": (R if spatial else 0,)}
        arrays = {}
        for key, shape in shapes.items():
            a = get(key)
            if a.shape != shape:
                raise SparsenetError(f"ChannelStats data: {key!r} has shape {a.shape}; "
                                     f"expected {shape} for {C} channels and max_radius {R}")
            arrays[key] = a
        out._fitted = True
        out._C, out._spatial = C, spatial
        out._n, out._n_images = int(get("n_samples")), int(get("n_images"))
        out._mean = arrays["mean"].astype(np.float64).copy()
        out._m2 = arrays["m2"].astype(np.float64).copy()
        out._cofire = arrays["cofiring"].astype(np.int64).copy()
        out._thresholds = arrays["thresholds"].astype(np.float64).copy()
        out._shift = arrays["shift"].astype(np.float64).copy()
        if spatial:
            out._ring_s = arrays["ring_s"].astype(np.float64).copy()
            out._ring_u = arrays["ring_u"].astype(np.float64).copy()
            out._ring_v = arrays["ring_v"].astype(np.float64).copy()
            out._ring_n = arrays["ring_n"].astype(np.int64).copy()
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` with ``np.savez`` atomically (temporary file, then rename)."""
        d = self.to_dict()
        atomic_write_with(path, lambda f: np.savez(f, **d), "wb")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ChannelStats":
        """Read a file written by ``save`` (no pickle)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls.from_dict({k: z[k] for k in z.files})
        except FileNotFoundError:
            raise SparsenetError(f"no ChannelStats file at {os.fspath(path)!r}") from None
        except (OSError, ValueError) as exc:
            if isinstance(exc, SparsenetError):
                raise
            raise SparsenetError(
                f"{os.fspath(path)!r} is not a ChannelStats .npz file: {exc}") from None

    def state_nbytes(self) -> int:
        """Bytes held by the running state (constant in the number of samples)."""
        return sum(v.nbytes for v in self.to_dict().values())


def _chan_merge(na, mean_a, m2a, nb, mean_b, m2b):
    """Chan et al.'s pairwise merge of (count, mean, centred cross-products)."""
    if na == 0:
        return mean_b.copy(), m2b.copy(), nb
    n = na + nb
    delta = mean_b - mean_a
    mean = mean_a + delta * (nb / n)
    m2 = m2a + m2b + np.outer(delta, delta) * (na * nb / n)
    return mean, m2, n
