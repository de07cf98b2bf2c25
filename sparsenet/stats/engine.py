"""The accumulation engine of ``ChannelStats``: one batch into the running state, chunk by chunk.

Every product is a matrix multiplication in torch (multithreaded BLAS): ``Xc^T Xc`` for offset
0, ``A^T A`` for co-firing and ``Xc^T Y_r`` for ring ``r``, where ``Y_r(p) = sum_d Xc(p + d)``
over half of the ring's offsets (``S_{-d} = S_d^T``, so the other half is the transpose) -- one
product per ring, not one per offset: ``2 + R`` products per batch in all.  A batch is processed
in chunks of whole maps (about 32 MB of channels-last data each, ``kernels.CHUNK_BYTES``);
products run in the compute dtype (``float64`` or ``float32``), are summed over the chunks of a
batch in that dtype and accumulated across batches in float64.  Besides the state (``state``)
the engine keeps a few scratch buffers of one chunk, reused from batch to batch (``Scratch``).

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
algebra (``merge``), so nothing suffers from the cancellation of ``E[xy] - E[x]E[y]`` with large
means.  In float64 mode the statistics agree with ``numpy.cov(bias=True)`` /
``numpy.corrcoef`` on the concatenated data to ~1e-12; in float32 mode correlations agree to
within ``1e-4`` (tested; typically ~1e-6) and covariances to a relative ``1e-4``.
"""

from __future__ import annotations

import numpy as np
import torch

from sparsenet.errors import SparsenetError
from sparsenet.stats import kernels
from sparsenet.stats.inputs import Threshold, float32_floor
from sparsenet.stats.kernels import gram_acc, half_ring_sum, sum_rows64, zero_tensor
from sparsenet.stats.merge import chan_merge, rebase_ring
from sparsenet.stats.rings import count_maps
from sparsenet.stats.state import StatsState

COMPUTE_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class Scratch:
    """What the engine keeps between batches besides the state: chunk-sized buffers and the
    ring count maps of each map size seen."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}
        self._count_maps: dict[tuple[int, int], list] = {}

    def buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array reused from batch to batch of the same shape (saves the page
        faults of a fresh allocation per batch; a few chunk-sized buffers, never per sample)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[name] = buf
        return buf

    def release(self) -> None:
        """Free the buffers (the count maps are small and stay)."""
        self._buffers = {}

    def count_maps(self, max_radius: int, H: int, W: int) -> list:
        """``rings.count_maps`` for H x W maps, computed once per map size."""
        key = (H, W)
        if key not in self._count_maps:
            self._count_maps[key] = count_maps(max_radius, H, W)
        return self._count_maps[key]


def check_batch(T: torch.Tensor, state: StatsState | None, threshold: Threshold) -> None:
    """Refuse a batch that does not continue the earlier ones or does not fit the threshold."""
    C = int(T.shape[1])
    spatial = T.ndim == 4
    if state is not None:
        if spatial != state.spatial:
            prev = "N x C x H x W maps" if state.spatial else "N x C flat features"
            raise SparsenetError(
                f"X has {T.ndim} dimensions (shape {tuple(T.shape)}) but earlier batches "
                f"were {prev}; accepted: the same kind of input in every batch"
            )
        if C != state.C:
            raise SparsenetError(
                f"X has {C} channels (shape {tuple(T.shape)}) but earlier batches had "
                f"{state.C}; accepted: the same channel count in every batch"
            )
    if threshold.kind == "array" and threshold.value.shape[0] != C:
        raise SparsenetError(
            f"threshold has {threshold.value.shape[0]} per-channel values but X has "
            f"{C} channels; accepted: one threshold per channel"
        )


def add_batch(state: StatsState | None, T: torch.Tensor, *, max_radius: int, dtype: str,
              cofiring: bool, threshold: Threshold, scratch: Scratch) -> StatsState:
    """Add batch ``T`` (checked by ``inputs.as_batch`` and ``check_batch``) to ``state`` and
    return it (a new state for the first batch).  Raises before touching ``state`` if the
    batch's sums are not finite.  A batch on another device (CUDA, MPS) is summed there
    (``stats.device``); only its sums come to the host."""
    if T.device.type != "cpu":
        from sparsenet.stats.device import add_device_batch

        return add_device_batch(state, T, max_radius=max_radius, dtype=dtype, cofiring=cofiring,
                                threshold=threshold, first_thresholds=_first_thresholds,
                                on_nonfinite=_raise_nonfinite)
    N, C = int(T.shape[0]), int(T.shape[1])
    spatial = T.ndim == 4
    T4 = T if spatial else T[:, :, None, None]  # flat features: 1 x 1 maps
    H, W = int(T4.shape[2]), int(T4.shape[3])
    n = N * H * W
    cd = COMPUTE_DTYPES[dtype]
    nd = np.float32 if cd == torch.float32 else np.float64
    src = T4.cpu().numpy()

    # pass 1: channel sums in float64 (NaN/inf propagate into them: scan only then)
    colsum = sum_rows64(src.sum(axis=(2, 3)))
    if not np.all(np.isfinite(colsum)):
        _raise_nonfinite(T, dtype)
    if state is not None:
        thresholds, K = state.thresholds, state.shift
    else:
        thresholds, K = _first_thresholds(T4, threshold), colsum / n
    thr = float32_floor(thresholds) if cd == torch.float32 else thresholds
    thr = np.ascontiguousarray(thr, dtype=nd)
    # shift by the batch mean rounded to the compute dtype; the sum t of the shifted data
    # makes the batch mean and M2 exact whatever the rounding of the shift
    shift_c = (colsum / n).astype(nd)
    shift = shift_c.astype(np.float64)

    R = max_radius if spatial else 0
    maps = scratch.count_maps(max_radius, H, W) if R else []
    live = [r for r, (first, _) in enumerate(maps, start=1) if int(round(first.sum())) > 0]
    # co-firing counts: float32 products are exact integers below 2**24 rows, flushed
    # into int64 before that
    shape = (C, C) if cofiring else (C,)
    cof_state = {"cof": np.zeros(shape, dtype=np.int64),
                 "acc": zero_tensor(shape, np.float32), "rows": 0}
    P_acc = zero_tensor((C, C), nd)  # x^T x, summed over the chunks
    S_acc = zero_tensor((len(live), C, C), nd) if live else None  # x^T Y_r per ring
    Tpos = np.zeros((H, W, C))  # per-position sums over the maps (float64)
    per_chunk = max(1, kernels.CHUNK_BYTES // (H * W * C * np.dtype(nd).itemsize))
    per_chunk = min(per_chunk, max(1, kernels.COUNT_CHUNK // (H * W)), N)
    bufs = {"x": scratch.buffer("x", (per_chunk, H, W, C), nd),
            "a": scratch.buffer("a", (per_chunk * H * W, C), np.float32)}
    if live:
        bufs["y"] = scratch.buffer("y", (per_chunk, H, W, C), nd)
    for start in range(0, N, per_chunk):
        _chunk(src[start:start + per_chunk], bufs, thr, shift_c, live, cofiring, cof_state,
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
        u = first.reshape(-1) @ Tpos  # sum of x(p) - shift over the pairs
        v = second.reshape(-1) @ Tpos  # sum of x(p + d) - shift over the pairs
        rings.append((r - 1, *rebase_ring(S_all[j], u, v, npairs, e), npairs))
    if not (np.all(np.isfinite(P)) and all(np.all(np.isfinite(r[1])) for r in rings)):
        _raise_nonfinite(T, dtype)
    batch_mean = shift + t / n
    batch_m2 = P - np.outer(t, t) / n

    # commit (nothing above touched the state)
    if state is None:
        state = StatsState.empty(C, spatial, thresholds, K, max_radius=max_radius,
                                 cofiring=cofiring)
    state.mean, state.m2, state.n = chan_merge(state.n, state.mean, state.m2,
                                               n, batch_mean, batch_m2)
    state.cofire += cof
    state.n_images += N
    for k, S, u, v, npairs in rings:
        state.ring_s[k] += S
        state.ring_u[k] += u
        state.ring_v[k] += v
        state.ring_n[k] += npairs
    return state


def _chunk(part: np.ndarray, bufs: dict, thr: np.ndarray, shift_c: np.ndarray,
           live: list[int], cofiring: bool, cof_state: dict, P_acc: torch.Tensor,
           S_acc: torch.Tensor | None, Tpos: np.ndarray) -> None:
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
    if cofiring:
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


def _first_thresholds(T4: torch.Tensor, threshold: Threshold) -> np.ndarray:
    C = T4.shape[1]
    if threshold.kind == "value":
        return np.full(C, threshold.value, dtype=np.float64)
    if threshold.kind == "array":
        return threshold.value.astype(np.float64).copy()
    values = T4.permute(0, 2, 3, 1).reshape(-1, C).to(torch.float64).numpy()
    return np.quantile(values, threshold.value, axis=0)


def _raise_nonfinite(T: torch.Tensor, dtype: str) -> None:
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
        f"X has values too large for dtype={dtype!r} sums (max |x| = {big:.3g}); "
        f"accepted: values whose sums fit the dtype -- rescale X or use dtype='float64'"
    )
