"""``ChannelStats`` on disk: plain numpy arrays (no objects, no pickle) in an ``.npz`` file.

The format's name and version (``FORMAT``, ``VERSION``) are written into every file and checked
on reading; files written before keep loading as long as they stay unchanged.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_with
from sparsenet.stats.inputs import Threshold
from sparsenet.stats.state import StatsState

FORMAT = "sparsenet.ChannelStats"
VERSION = 1

T = TypeVar("T")


def to_dict(state: StatsState | None, *, max_radius: int, dtype: str, tol: float | None,
            threshold: Any, parsed: Threshold, cofiring: bool) -> dict[str, np.ndarray]:
    """The settings (``threshold`` as given and as ``parsed``) and ``state`` as arrays."""
    kind, val = parsed
    d: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "max_radius": np.array(max_radius),
        "dtype": np.array(dtype),
        "tol": np.array(np.nan if tol is None else float(tol)),
        "threshold_kind": np.array(kind),
        "threshold_value": np.atleast_1d(np.asarray(val, dtype=np.float64)),
        "fitted": np.array(state is not None),
        "cofiring_pairs": np.array(cofiring),
    }
    if kind == "quantile":
        d["threshold_text"] = np.array(str(threshold))
    if state is not None:
        C = state.C
        spatial = state.spatial
        d.update({
            "n_channels": np.array(C),
            "spatial": np.array(spatial),
            "n_samples": np.array(state.n),
            "n_images": np.array(state.n_images),
            "mean": state.mean.copy(),
            "m2": state.m2.copy(),
            "cofiring": state.cofire.copy(),
            "thresholds": state.thresholds.copy(),
            "shift": state.shift.copy(),
            "ring_s": state.ring_s.copy() if spatial else np.zeros((0, C, C)),
            "ring_u": state.ring_u.copy() if spatial else np.zeros((0, C)),
            "ring_v": state.ring_v.copy() if spatial else np.zeros((0, C)),
            "ring_n": state.ring_n.copy() if spatial else np.zeros(0, np.int64),
        })
    return d


def _get(d: Mapping[str, Any], key: str) -> np.ndarray:
    try:
        return np.asarray(d[key])
    except KeyError:
        raise SparsenetError(f"ChannelStats data lacks the key {key!r}; accepted: the "
                             f"output of ChannelStats.to_dict()") from None


def settings_from_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``ChannelStats(...)`` that wrote ``d`` (format checked)."""
    fmt = str(_get(d, "format")) if "format" in d else None
    if fmt != FORMAT:
        raise SparsenetError(f"data has format {fmt!r}; accepted: {FORMAT!r} "
                             f"(from ChannelStats.to_dict)")
    if int(_get(d, "version")) != VERSION:
        raise SparsenetError(f"ChannelStats data version {int(_get(d, 'version'))}; "
                             f"accepted: {VERSION}")
    kind = str(_get(d, "threshold_kind"))
    tv = _get(d, "threshold_value").astype(np.float64)
    if kind == "value":
        threshold = float(tv[0])
    elif kind == "quantile":
        threshold = (str(_get(d, "threshold_text")) if "threshold_text" in d
                     else f"quantile:{float(tv[0])!r}")
    elif kind == "array":
        threshold = tv.copy()
    else:
        raise SparsenetError(f"unknown threshold_kind {kind!r}; "
                             f"accepted: value, quantile, array")
    tol = float(_get(d, "tol"))
    pairs = bool(_get(d, "cofiring_pairs")) if "cofiring_pairs" in d else True
    return {"max_radius": int(_get(d, "max_radius")), "threshold": threshold,
            "dtype": str(_get(d, "dtype")), "tol": None if math.isnan(tol) else tol,
            "cofiring": pairs}


def state_from_dict(d: Mapping[str, Any], *, max_radius: int,
                    cofiring: bool) -> StatsState | None:
    """The running state in ``d`` (None if it was written before any data), shapes checked."""
    if not bool(_get(d, "fitted")):
        return None
    C, R = int(_get(d, "n_channels")), max_radius
    spatial = bool(_get(d, "spatial"))
    shapes = {"mean": (C,), "m2": (C, C), "cofiring": (C, C) if cofiring else (C,),
              "thresholds": (C,),
              "shift": (C,), "ring_s": (R if spatial else 0, C, C),
              "ring_u": (R if spatial else 0, C), "ring_v": (R if spatial else 0, C),
              "ring_n": (R if spatial else 0,)}
    arrays = {}
    for key, shape in shapes.items():
        a = _get(d, key)
        if a.shape != shape:
            raise SparsenetError(f"ChannelStats data: {key!r} has shape {a.shape}; "
                                 f"expected {shape} for {C} channels and max_radius {R}")
        arrays[key] = a
    state = StatsState(
        C=C, spatial=spatial, n=int(_get(d, "n_samples")), n_images=int(_get(d, "n_images")),
        mean=arrays["mean"].astype(np.float64).copy(),
        m2=arrays["m2"].astype(np.float64).copy(),
        cofire=arrays["cofiring"].astype(np.int64).copy(),
        thresholds=arrays["thresholds"].astype(np.float64).copy(),
        shift=arrays["shift"].astype(np.float64).copy())
    if spatial:
        state.ring_s = arrays["ring_s"].astype(np.float64).copy()
        state.ring_u = arrays["ring_u"].astype(np.float64).copy()
        state.ring_v = arrays["ring_v"].astype(np.float64).copy()
        state.ring_n = arrays["ring_n"].astype(np.int64).copy()
    return state


def save(path: str | os.PathLike, d: Mapping[str, np.ndarray]) -> None:
    """Write ``d`` with ``np.savez`` atomically (temporary file, then rename)."""
    atomic_write_with(path, lambda f: np.savez(f, **d), "wb")


def load(path: str | os.PathLike, from_dict: Callable[[dict], T]) -> T:
    """``from_dict`` of the arrays in the file at ``path`` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return from_dict({k: z[k] for k in z.files})
    except FileNotFoundError:
        raise SparsenetError(f"no ChannelStats file at {os.fspath(path)!r}") from None
    except SparsenetError:
        raise
    except Exception:  # zipfile and numpy raise many types for foreign bytes (BadZipFile among them);
        # numpy's own text would advise allow_pickle, which sparsenet never turns on
        what = "a directory" if os.path.isdir(path) else "empty, truncated, not an .npz archive, or holding Python objects"
        raise SparsenetError(
            f"{os.fspath(path)!r} is not a ChannelStats .npz file ({what}); accepted: the stats.npz "
            "that `sparsenet discover --out DIR` writes (ChannelStats.save)") from None
