"""Ring geometry: the offsets at one Chebyshev distance, and where they fit in an H x W map.

Ring ``r`` is every offset ``d = (dy, dx)`` with ``max(|dy|, |dx|) == r``.  The statistics sum
over half of a ring's offsets only (``S_{-d} = S_d^T``: the other half is the transpose), and
for each offset over the positions ``p`` with ``p + d`` inside the map.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Window = tuple[slice, slice]


def ring_offsets(r: int, *, half: bool = False) -> list[tuple[int, int]]:
    """Offsets ``(dy, dx)`` at Chebyshev distance ``r`` (``max(|dy|, |dx|) == r``).

    ``half=True`` keeps one of each pair ``{d, -d}`` (``dy > 0``, or ``dy == 0`` and ``dx > 0``):
    ``4 r`` offsets instead of ``8 r``.  ``r == 0`` is the single offset ``(0, 0)``.
    """
    if r == 0:
        return [(0, 0)]
    out = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if max(abs(dy), abs(dx)) != r:
                continue
            if half and not (dy > 0 or (dy == 0 and dx > 0)):
                continue
            out.append((dy, dx))
    return out


def valid_range(d: int, size: int) -> tuple[int, int]:
    """Positions ``p`` (one axis) with both ``p`` and ``p + d`` inside ``[0, size)``."""
    return max(0, -d), min(size, size - d)


def ring_windows(r: int, H: int, W: int) -> Iterator[tuple[Window, Window]]:
    """For each half-ring offset d of radius r that fits an H x W map: the window of positions p
    with p + d inside too, as (slice of p, slice of p + d) over the (H, W) axes."""
    for dy, dx in ring_offsets(r, half=True):
        h0, h1 = valid_range(dy, H)
        w0, w1 = valid_range(dx, W)
        if h0 < h1 and w0 < w1:
            yield ((slice(h0, h1), slice(w0, w1)),
                   (slice(h0 + dy, h1 + dy), slice(w0 + dx, w1 + dx)))


def count_maps(max_radius: int, H: int, W: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per ring 1..R: (first[h,w], second[h,w]) = how many half-ring offsets d pair position
    (h,w) as p (first factor) or as p + d (second factor) with both inside the map."""
    maps = []
    for r in range(1, max_radius + 1):
        first = np.zeros((H, W))
        second = np.zeros((H, W))
        for p, q in ring_windows(r, H, W):
            first[p] += 1
            second[q] += 1
        maps.append((first, second))
    return maps
