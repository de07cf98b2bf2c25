"""Input coercion: batches to torch tensors (without a copy where possible), thresholds to a kind.

Everything a caller can pass wrongly is refused here with a ``SparsenetError`` that says what
was received and what is accepted; the statistics downstream may assume a real, non-empty
tensor and a parsed threshold.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch

from sparsenet.errors import SparsenetError


class Threshold(NamedTuple):
    """A parsed activity threshold: ``kind`` "value" (a float), "quantile" (q) or "array"."""

    kind: str
    value: Any


def parse_threshold(threshold: Any) -> Threshold:
    """-> ("value", float) | ("quantile", q) | ("array", ndarray)."""
    if isinstance(threshold, str):
        kind, _, q = threshold.partition(":")
        try:
            qv = float(q)
        except ValueError:
            qv = float("nan")
        if kind.strip() != "quantile" or not (0.0 < qv < 1.0):
            raise SparsenetError(
                f"threshold={threshold!r} is not understood; accepted: a number (a channel is "
                f"active where its value > threshold), 'quantile:q' with 0 < q < 1 (per-channel "
                f"q-quantile of the first batch), or one number per channel"
            )
        return Threshold("quantile", qv)
    if isinstance(threshold, (bool, np.bool_)):
        raise SparsenetError(f"threshold={threshold!r} is a bool; accepted: a number, "
                             f"'quantile:q' or one number per channel")
    if isinstance(threshold, (int, float, np.integer, np.floating)):
        t = float(threshold)
        if not math.isfinite(t):
            raise SparsenetError(f"threshold={threshold!r} is not finite; "
                                 f"accepted: a finite number")
        return Threshold("value", t)
    try:
        arr = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise SparsenetError(
            f"threshold of type {type(threshold).__name__} is not understood; accepted: a "
            f"number, 'quantile:q' with 0 < q < 1, or a 1-D array of finite per-channel numbers"
        )
    return Threshold("array", arr.copy())


def as_tensor(X: Any) -> torch.Tensor:
    """``X`` (a numeric numpy array, a torch tensor or anything ``np.asarray`` reads) as a
    detached torch tensor, sharing ``X``'s memory where it can."""
    if isinstance(X, torch.Tensor):
        return X.detach()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise SparsenetError(f"X of type {type(X).__name__} could not be read as an array: {exc}")
    if arr.dtype.kind not in "biuf":
        raise SparsenetError(
            f"X has dtype {arr.dtype} (type {type(X).__name__}); accepted: a numeric numpy array "
            f"or torch tensor of shape N x C or N x C x H x W"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    try:
        with warnings.catch_warnings():
            # read-only input (the datasets' arrays, memory maps): the statistics only read X, so
            # wrapping it without a copy is safe; torch warns because it cannot enforce that
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(arr)
    except ValueError:  # negative strides
        return torch.from_numpy(np.ascontiguousarray(arr))


def as_batch(X: Any) -> torch.Tensor:
    """One batch for ``ChannelStats``: N x C or N x C x H x W, non-empty, of a real dtype (bool
    read as uint8, half precision as float32)."""
    T = as_tensor(X)
    if T.ndim not in (2, 4):
        raise SparsenetError(
            f"X has {T.ndim} dimensions (shape {tuple(T.shape)}); accepted: N x C (flat "
            f"features) or N x C x H x W (maps)"
            + ("; for a single map use X[None]" if T.ndim == 3 else "")
        )
    if T.is_complex() or not (T.is_floating_point() or T.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)):
        raise SparsenetError(f"X has dtype {T.dtype}; accepted: a real numeric dtype")
    if T.dtype == torch.bool:
        T = T.to(torch.uint8)
    elif T.dtype in (torch.float16, torch.bfloat16):  # sums would overflow or round badly
        T = T.to(torch.float32)
    if T.numel() == 0:
        raise SparsenetError(
            f"X is empty (shape {tuple(T.shape)}); accepted: at least one sample, one channel "
            f"and (for maps) one position"
        )
    return T


def float32_floor(t: np.ndarray) -> np.ndarray:
    """Largest float32 <= t (so ``x32 > floor32(t)`` iff ``x32 > t`` for float32 x)."""
    f = t.astype(np.float32)
    up = f.astype(np.float64) > t
    f[up] = np.nextafter(f[up], np.float32(-np.inf))
    return f
