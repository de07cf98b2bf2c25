"""Channel groups that share a filtered latent field, with the generating filter as ground truth.

The generator a researcher would try on the footprint rule (``docs/analyser.md``, "Kernel size
as a footprint"): each group g shares a latent field ``s_g = h_g * z_g``, white noise ``z_g``
(Gaussian, or sparse spikes) filtered by a known spatial filter ``h_g``; every channel of the
group is ``relu(gain_c * s_g + noise * eps_c + offset_n + mean(p))`` with a per-channel gain, its
own white noise, optional per-image offsets shared by the group and an optional per-position
mean (a centred blob, as centred digits give).  The analyser is judged by whether it recovers
the footprint of ``h_g`` (``sparsenet.analyser.footprint.footprint_of_filter``).

Filter families (``FAMILIES``; each a function of one size parameter): ``box`` (w x w, even
widths too), ``gaussian`` (sigma), ``exponential`` (``exp(-rho / lambda)``), and four the
analyser's candidates do not contain: ``disc`` (radius), ``tent`` (``max(0, 1 - rho / r)``),
``cauchy`` (``(1 + (rho / gamma)^2)^-1.5``) and ``anisotropic`` (a Gaussian with sigmas
``(sigma, sigma / 2)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.signal import fftconvolve

from sparsenet.errors import SparsenetError


def _grid(radius: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.meshgrid(g, g, indexing="ij")


def _trim(h: np.ndarray) -> np.ndarray:
    h = np.where(h >= 1e-6 * h.max(), h, 0.0)
    rows, cols = np.flatnonzero(h.any(axis=1)), np.flatnonzero(h.any(axis=0))
    return h[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def box_filter(width: float) -> np.ndarray:
    return np.ones((int(width), int(width)))


def gaussian_filter(sigma: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim(np.exp(-(x * x + y * y) / (2 * sigma * sigma)))


def exponential_filter(lam: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim(np.exp(-np.hypot(x, y) / lam))


def disc_filter(r: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim((np.hypot(x, y) <= r).astype(np.float64))


def tent_filter(r: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim(np.clip(1.0 - np.hypot(x, y) / r, 0.0, None) + 0.0)


def cauchy_filter(gamma: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim((1.0 + (x * x + y * y) / gamma ** 2) ** -1.5)


def anisotropic_filter(sigma: float, radius: int = 10) -> np.ndarray:
    y, x = _grid(radius)
    return _trim(np.exp(-(x * x) / (2 * sigma * sigma) - (y * y) / (2 * (sigma / 2) ** 2)))


FAMILIES = {"box": box_filter, "gaussian": gaussian_filter, "exponential": exponential_filter,
            "disc": disc_filter, "tent": tent_filter, "cauchy": cauchy_filter,
            "anisotropic": anisotropic_filter}
HELD_OUT = ("disc", "tent", "cauchy", "anisotropic")  # not among the analyser's candidates


def make_filter(family: str, size: float) -> np.ndarray:
    """The filter of ``family`` (a key of ``FAMILIES``) with size parameter ``size``."""
    if family not in FAMILIES:
        raise SparsenetError(f"unknown filter family {family!r}; accepted: {', '.join(FAMILIES)}")
    if not (isinstance(size, (int, float, np.number)) and np.isfinite(size) and size > 0):
        raise SparsenetError(f"filter size {size!r}; accepted: a number > 0")
    if family == "box" and (int(size) != size or size > 15):
        raise SparsenetError(f"box width {size!r}; accepted: an integer 1..15")
    return FAMILIES[family](size)


@dataclass(frozen=True)
class FilteredGroups:
    """Maps of groups sharing filtered latents, with their filters (see ``filtered_groups``)."""

    X: np.ndarray        # N x C x H x W float32, non-negative (ReLU)
    labels: np.ndarray   # (C,) group of each channel
    filters: tuple       # the generating filter h_g of each group (2-D arrays)


def filtered_groups(filters: Sequence[np.ndarray], group_sizes: Sequence[int], *,
                    n_images: int = 400, size: int = 12, noise: float = 1.0,
                    gain: tuple[float, float] = (0.75, 1.25), latent: str = "gaussian",
                    sparsity: float = 0.05, offset: float = 0.0, position_mean: float = 0.0,
                    random_state=None) -> FilteredGroups:
    """Groups of channels sharing latent fields ``s_g = h_g * z_g`` (module docstring).

    ``latent``: "gaussian" (z white standard normal) or "spiky" (z = centred sparse spikes,
    Bernoulli(``sparsity``) times Exponential(1)); s_g is scaled to unit variance.  ``gain``: the
    range of the uniform per-channel gains.  ``noise``: std of each channel's own white noise.
    ``offset``: std of a per-image offset shared by the channels of a group (before the ReLU).
    ``position_mean``: amplitude of a Gaussian blob (sigma size/4) added at every position's
    mean, the same for every image.
    """
    if len(filters) != len(group_sizes) or not filters:
        raise SparsenetError(f"{len(filters)} filters and {len(group_sizes)} group sizes; "
                             f"accepted: one filter per group, at least one")
    if latent not in ("gaussian", "spiky"):
        raise SparsenetError(f"latent={latent!r}; accepted: 'gaussian' or 'spiky'")
    if n_images < 1 or size < 1:
        raise SparsenetError(f"n_images={n_images!r}, size={size!r}; accepted: integers >= 1")
    rng = np.random.default_rng(random_state)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c0 = (size - 1) / 2
    blob = np.exp(-((yy - c0) ** 2 + (xx - c0) ** 2) / (2 * (size / 4) ** 2))
    C = int(sum(group_sizes))
    X = np.zeros((n_images, C, size, size), dtype=np.float32)
    labels = np.zeros(C, dtype=np.int64)
    start = 0
    for g, (h, n_ch) in enumerate(zip(filters, group_sizes)):
        h = np.asarray(h, dtype=np.float64)
        shape = (n_images, size + h.shape[0] - 1, size + h.shape[1] - 1)
        if latent == "gaussian":
            z = rng.standard_normal(shape)
        else:
            z = (rng.random(shape) < sparsity) * rng.exponential(1.0, shape)
            z = (z - sparsity) / np.sqrt(sparsity * (2 - sparsity))
        s = fftconvolve(z, h[None], mode="valid") / np.sqrt((h * h).sum())
        gains = rng.uniform(gain[0], gain[1], n_ch)
        off = offset * rng.standard_normal((n_images, 1, 1, 1))
        eps = rng.standard_normal((n_images, n_ch, size, size))
        pre = gains[None, :, None, None] * s[:, None] + noise * eps + off + position_mean * blob
        X[:, start:start + n_ch] = np.maximum(pre, 0.0)
        labels[start:start + n_ch] = g
        start += n_ch
    return FilteredGroups(X=X, labels=labels, filters=tuple(np.asarray(h) for h in filters))
