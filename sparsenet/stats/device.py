"""One batch's statistics computed on the device that holds it (CUDA, MPS), merged on the host.

``engine.add_batch`` hands a batch that does not live on the CPU to :func:`add_device_batch`:
the activations stay where the model produced them, every product and sum runs there in torch
(float64 where the device has it, else float32 products), and only the batch's sums move to
the host: ``C x C`` matrices (offset 0, co-firing, one per ring), per-channel and per-position
vectors.  They form the batch's own :class:`~sparsenet.stats.state.StatsState`, about its own
mean, which :func:`~sparsenet.stats.merge.merge_states` adds to the running state with the
same exact algebra that merges shards.  So a batch gives the same statistics on the device as
on the CPU, to rounding (``tests/test_device.py`` runs this path on CPU tensors against the
numpy engine).

Quantile thresholds are estimated from the first batch, copied to the host once.
"""

from __future__ import annotations

import numpy as np
import torch

from sparsenet.stats import kernels
from sparsenet.stats.inputs import Threshold, float32_floor
from sparsenet.stats.merge import merge_states, rebase_ring
from sparsenet.stats.rings import count_maps, ring_windows
from sparsenet.stats.state import StatsState

__all__ = ["add_device_batch", "compute_dtype"]


def compute_dtype(device: torch.device, dtype: str) -> torch.dtype:
    """The products' dtype on ``device``: ``dtype``, or float32 where float64 is missing (MPS)."""
    if dtype == "float32" or device.type == "mps":
        return torch.float32
    return torch.float64


def _to_host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy() if t.dtype != torch.float64 else t.detach().cpu().numpy()


def _half_ring_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    """``y(p) = sum of x(p + d)`` over the half ring of radius r; x is N x H x W x C."""
    y = torch.zeros_like(x)
    for (ph, pw), (qh, qw) in ring_windows(r, x.shape[1], x.shape[2]):
        y[:, ph, pw, :] += x[:, qh, qw, :]
    return y


def _cofire(a: torch.Tensor, cofiring: bool, cd: torch.dtype) -> np.ndarray:
    """Exact co-firing counts of the 0/1 rows ``a`` (rows x C), or active counts only."""
    if not cofiring:
        return a.sum(dim=0, dtype=torch.int64).cpu().numpy()
    C = a.shape[1]
    out = np.zeros((C, C), dtype=np.int64)
    step = a.shape[0] if cd == torch.float64 else kernels.COUNT_CHUNK  # float32 exact below 2**24
    for start in range(0, a.shape[0], step):
        part = a[start:start + step].to(cd)
        out += np.rint(_to_host(part.t() @ part)).astype(np.int64)
    return out


def add_device_batch(state: StatsState | None, T: torch.Tensor, *, max_radius: int, dtype: str,
                     cofiring: bool, threshold: Threshold, first_thresholds, on_nonfinite) -> StatsState:
    """Add batch ``T`` (checked, N x C [x H x W], on any device) to ``state``; returns the new
    state.  ``first_thresholds(T4, threshold)`` gives the first batch's thresholds (host),
    ``on_nonfinite(T, dtype)`` raises for non-finite sums (the engine's own functions)."""
    N, C = int(T.shape[0]), int(T.shape[1])
    spatial = T.ndim == 4
    T4 = T if spatial else T[:, :, None, None]
    H, W = int(T4.shape[2]), int(T4.shape[3])
    n = N * H * W
    cd = compute_dtype(T.device, dtype)
    acc = torch.float64 if cd == torch.float64 else torch.float32
    colsum = _to_host(T4.sum(dim=(0, 2, 3), dtype=acc))
    if not np.all(np.isfinite(colsum)):
        on_nonfinite(T, dtype)
    thresholds = state.thresholds if state is not None else first_thresholds(T4.cpu(), threshold)
    thr = float32_floor(thresholds) if cd == torch.float32 else thresholds
    K = colsum / n  # this batch's own ring shift
    shift_c = torch.as_tensor(K, device=T.device).to(cd)
    x = T4.permute(0, 2, 3, 1).to(cd)  # N x H x W x C, channels last
    a = (x > torch.as_tensor(thr, device=T.device).to(cd)).reshape(n, C)
    cof = _cofire(a, cofiring, cd)
    x = x - shift_c
    x2 = x.reshape(n, C)
    P = _to_host(x2.t() @ x2)
    Tpos = _to_host(x.sum(dim=0, dtype=acc)).reshape(H * W, C)
    t = Tpos.sum(axis=0)
    e = _to_host(shift_c) - K
    batch = StatsState.empty(C, spatial, thresholds, K, max_radius=max_radius, cofiring=cofiring)
    R = max_radius if spatial else 0
    for r, (first, second) in enumerate(count_maps(R, H, W) if R else [], start=1):
        npairs = int(round(first.sum())) * N
        if npairs == 0:
            continue
        y = _half_ring_sum(x, r).reshape(n, C)
        S, u, v = rebase_ring(_to_host(x2.t() @ y), first.reshape(-1) @ Tpos, second.reshape(-1) @ Tpos,
                              npairs, e)
        batch.ring_s[r - 1], batch.ring_u[r - 1], batch.ring_v[r - 1] = S, u, v
        batch.ring_n[r - 1] = npairs
    if not (np.all(np.isfinite(P)) and (batch.ring_s is None or np.all(np.isfinite(batch.ring_s)))):
        on_nonfinite(T, dtype)
    shift = _to_host(shift_c)
    batch.mean, batch.m2, batch.n, batch.n_images = shift + t / n, P - np.outer(t, t) / n, n, N
    batch.cofire = cof
    return batch if state is None else merge_states(state, batch, max_radius)
