"""Numeric kernels of the streaming statistics: products, shifted ring sums, float64 sums.

Threads.  Only the large products use torch's thread pool (``gram_acc``); everything else here
is numpy, single-threaded.  On a machine shared with other jobs every parallel region costs a
scheduler time slice while the second thread waits for a core, so a product too small to gain
from threads runs in numpy's single-threaded call, and accumulators are allocated by numpy
(``zero_tensor``) rather than by a torch fill.

The chunk sizes below are read at call time (``kernels.CHUNK_BYTES``), so a benchmark or a test
may set them to force many chunks or the BLAS path.
"""

from __future__ import annotations

import numpy as np
import torch

from sparsenet.stats.rings import ring_windows

# Rows per float32 co-firing product: every partial sum of 0/1 products is an integer
# <= 2**24, hence exact in float32 whatever order BLAS adds them in.
COUNT_CHUNK = 1 << 24
SMALL_PRODUCT = 1 << 20  # multiply-adds below which a product runs single-threaded in numpy
CHUNK_BYTES = 32 << 20  # maps per chunk: about this many bytes of channels-last data (few
#                         products per batch, few thread-pool regions; docs/performance.md)


def zero_tensor(shape: tuple, dtype) -> torch.Tensor:
    """A zero torch tensor allocated by numpy (single-threaded: a small torch fill would start
    the thread pool, which costs milliseconds on a busy machine)."""
    return torch.from_numpy(np.zeros(shape, dtype=dtype))


def gram_acc(acc: torch.Tensor, L: torch.Tensor, R: torch.Tensor) -> None:
    """``acc += L^T R`` in ``acc``'s dtype.  Large products use torch's multithreaded BLAS; small
    ones numpy's single-threaded call, which avoids the thread start-up and synchronisation
    that dominate a tiny product (milliseconds on a busy machine)."""
    if L.shape[0] * L.shape[1] * R.shape[1] < SMALL_PRODUCT:
        out = acc.numpy()
        out += L.numpy().T @ R.numpy()
    else:
        acc.addmm_(L.t(), R)


def half_ring_sum(y: np.ndarray, x: np.ndarray, r: int) -> None:
    """``y(p) = sum of x(p + d)`` over the half ring of radius r (``ring_offsets(r, half=True)``),
    0 where ``p + d`` leaves the map; x and y are N x H x W x C (numpy, single-threaded)."""
    H, W = x.shape[1], x.shape[2]
    empty = True
    for (ph, pw), (qh, qw) in ring_windows(r, H, W):
        src = x[:, qh, qw, :]
        dst = y[:, ph, pw, :]
        if empty:  # first offset: copy, and zero only the strips it does not cover
            np.copyto(dst, src)
            y[:, :ph.start] = 0
            y[:, ph.stop:] = 0
            y[:, ph, :pw.start] = 0
            y[:, ph, pw.stop:] = 0
            empty = False
        else:
            np.add(dst, src, out=dst)
    if empty:
        y[...] = 0


def sum_rows64(M: np.ndarray, block: int = 4096) -> np.ndarray:
    """Column sums of a 2-D array as float64: contiguous blocks of ``block`` rows summed in the
    array's dtype (numpy's pairwise summation), the block sums added in float64."""
    out = np.zeros(M.shape[1], dtype=np.float64)
    for start in range(0, M.shape[0], block):
        out += M[start:start + block].sum(axis=0).astype(np.float64)
    return out
