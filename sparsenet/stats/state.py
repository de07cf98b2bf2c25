"""The running sums of ``ChannelStats``: one value that the engine, the merge, the read-outs and
the persistence share, and the error for reading it before there is one.

Memory is ``(R + 2) * C * C`` numbers of 8 bytes (``m2``, the int64 ``cofire`` and the R
``ring_s``) plus ``O(C * R)``, whatever the number of samples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sparsenet.errors import SparsenetError


class NotFittedError(SparsenetError, AttributeError):
    """A fitted attribute was read before ``partial_fit`` saw any data."""


@dataclass(eq=False)
class StatsState:
    """The sums behind every fitted attribute of a ``ChannelStats`` (float64 unless noted).

    The ring sums are taken of ``a = x - shift`` with one fixed ``shift`` (the first batch's
    mean), so that they can be centred with the global means at the end; ``ring_*`` are None
    for flat features.
    """

    C: int
    spatial: bool
    n: int  # positions counted at offset 0: N*H*W summed over batches
    n_images: int  # N summed over batches
    mean: np.ndarray  # (C,)
    m2: np.ndarray  # (C, C): centred cross-products at offset 0
    cofire: np.ndarray  # (C, C) int64; (C,) active counts with cofiring=False
    thresholds: np.ndarray  # (C,)
    shift: np.ndarray  # (C,): the fixed shift K of the ring sums
    ring_s: np.ndarray | None = None  # (R, C, C): sum over half-ring d and valid p of a(p) a(p+d)^T
    ring_u: np.ndarray | None = None  # (R, C): sum of a(p) over the same pairs
    ring_v: np.ndarray | None = None  # (R, C): sum of a(p+d) over the same pairs
    ring_n: np.ndarray | None = None  # (R,) int64: number of (p, d) pairs

    @classmethod
    def empty(cls, C: int, spatial: bool, thresholds: np.ndarray, shift: np.ndarray, *,
              max_radius: int, cofiring: bool) -> "StatsState":
        """No samples yet, for C channels with these thresholds and ring shift."""
        R = max_radius
        return cls(
            C=C, spatial=spatial, n=0, n_images=0, mean=np.zeros(C), m2=np.zeros((C, C)),
            cofire=np.zeros((C, C) if cofiring else (C,), dtype=np.int64),
            thresholds=np.array(thresholds, dtype=np.float64),
            shift=np.array(shift, dtype=np.float64),
            ring_s=np.zeros((R, C, C)) if spatial else None,
            ring_u=np.zeros((R, C)) if spatial else None,
            ring_v=np.zeros((R, C)) if spatial else None,
            ring_n=np.zeros(R, dtype=np.int64) if spatial else None,
        )

    def copy(self) -> "StatsState":
        """A copy that shares no array with this one."""
        return dataclasses.replace(self, **{
            f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)})
