"""``ChannelStats``: the streaming statistics of one layer's channels, as an estimator.

The class holds the settings and one running state (``state.StatsState``, None before any
data); each of its methods hands that state to the module that holds the concept: ``engine``
adds a batch, ``merge`` combines shards, ``readouts`` derives the fitted attributes and
``persistence`` writes and reads them.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np

from sparsenet.errors import SparsenetError
from sparsenet.stats import persistence, readouts
from sparsenet.stats.engine import COMPUTE_DTYPES, Scratch, add_batch, check_batch
from sparsenet.stats.inputs import Threshold, as_batch, parse_threshold
from sparsenet.stats.merge import merge_states
from sparsenet.stats.readouts import DEFAULT_TOL
from sparsenet.stats.state import NotFittedError, StatsState


def _state_field(name: str, *, copy: bool = False) -> property:
    """A read-only fitted attribute that is the state's field ``name`` (arrays: a copy)."""
    def get(self: "ChannelStats"):
        value = getattr(self._fitted_state(), name)
        return value.copy() if copy else value
    return property(get)


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
        if dtype not in COMPUTE_DTYPES:
            raise SparsenetError(f"dtype={dtype!r}; accepted: {sorted(COMPUTE_DTYPES)}")
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
        self._threshold = parse_threshold(threshold)
        self._state: StatsState | None = None  # None until the first batch
        self._scratch = Scratch()

    def release_buffers(self) -> None:
        """Free the scratch buffers kept between ``partial_fit`` calls."""
        self._scratch.release()

    @property
    def _tol(self) -> float:
        return DEFAULT_TOL[self.dtype] if self.tol is None else float(self.tol)

    def __repr__(self) -> str:
        state = self._state
        fitted = "" if state is None else f", fitted on {state.n} samples x {state.C} channels"
        pairs = "" if self.cofiring else ", cofiring=False"
        return (f"ChannelStats(max_radius={self.max_radius}, threshold={self.threshold!r}, "
                f"dtype={self.dtype!r}{pairs}{fitted})")

    # ------------------------------------------------------------------- fit
    def partial_fit(self, X: Any) -> "ChannelStats":
        """Add one batch ``X`` (N x C or N x C x H x W, numpy or torch) and return ``self``.

        For maps every ``(n, h, w)`` position is one sample of the C channels.  A batch that
        raises leaves the statistics unchanged.

        The batch is processed in chunks of whole maps of about ``kernels.CHUNK_BYTES`` each (a
        bounded scratch memory, whatever the batch size).  A chunk's element-wise work (the
        channels-last copy, thresholding, centring, shifted ring sums) runs in numpy,
        single-threaded; only its ``2 + R`` matrix products run in torch's multithreaded BLAS
        (see the docstring of ``sparsenet.stats.engine``).
        """
        T = as_batch(X)
        check_batch(T, self._state, self._threshold)
        # overflow and inf - inf in the sums are not warnings: they are reported as an error
        with np.errstate(over="ignore", invalid="ignore"):
            self._state = add_batch(self._state, T, max_radius=self.max_radius,
                                    dtype=self.dtype, cofiring=self.cofiring,
                                    threshold=self._threshold, scratch=self._scratch)
        return self

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
        if other._state is None:
            return self._with_state(None if self._state is None else self._state.copy())
        if self._state is None:
            out = other._with_state(other._state.copy())
            out.tol = self.tol
            return out
        return self._with_state(merge_states(self._state, other._state, self.max_radius))

    def _with_state(self, state: StatsState | None) -> "ChannelStats":
        """A new ChannelStats with this one's settings, holding ``state`` (not copied)."""
        out = ChannelStats(max_radius=self.max_radius, threshold=self.threshold,
                           dtype=self.dtype, tol=self.tol, cofiring=self.cofiring)
        kind, value = self._threshold
        out._threshold = Threshold(kind, value.copy() if isinstance(value, np.ndarray) else value)
        out._state = state
        return out

    # ------------------------------------------------------ fitted attributes
    def _fitted_state(self) -> StatsState:
        if self._state is None:
            raise NotFittedError("this ChannelStats has seen no data yet; "
                                 "call partial_fit(X) first")
        return self._state

    n_channels_ = _state_field("C")
    n_samples_ = _state_field("n")
    n_images_ = _state_field("n_images")
    spatial_ = _state_field("spatial")
    mean_ = _state_field("mean", copy=True)
    thresholds_ = _state_field("thresholds", copy=True)

    @property
    def covariance_(self) -> np.ndarray:
        return readouts.covariance(self._fitted_state())

    @property
    def std_(self) -> np.ndarray:
        return readouts.std(self._fitted_state())

    @property
    def cofiring_(self) -> np.ndarray:
        """(C, C) int64: samples where both i and j are active; the diagonal = active counts."""
        state = self._fitted_state()
        if not self.cofiring:
            raise SparsenetError(
                "this ChannelStats was built with cofiring=False: it counts each channel's active "
                "samples only (active_rate_, dead_); accepted: ChannelStats(cofiring=True) for "
                "the pairwise co-firing counts")
        return state.cofire.copy()

    @property
    def active_rate_(self) -> np.ndarray:
        return readouts.active_rate(self._fitted_state(), self.cofiring)

    @property
    def constant_(self) -> np.ndarray:
        """Channels with ``std <= tol * (|mean| + 1)``."""
        return readouts.constant(self._fitted_state(), self._tol)

    @property
    def dead_(self) -> np.ndarray:
        """Channels never active (never above their threshold)."""
        return readouts.dead(self._fitted_state(), self.cofiring)

    @property
    def inactive_(self) -> np.ndarray:
        """``constant_ | dead_``: channels whose correlation rows are set to 0."""
        return readouts.inactive(self._fitted_state(), self.cofiring, self._tol)

    @property
    def ring_pair_counts_(self) -> np.ndarray:
        """(R+1,) int64: (p, d) pairs behind each ring, counting d and -d (ring 0: samples)."""
        return readouts.ring_pair_counts(self._fitted_state())

    @property
    def correlation_(self) -> np.ndarray:
        """Pearson correlation at offset 0; inactive rows/columns (diagonal included) are 0."""
        return readouts.correlation(self._fitted_state(), self.cofiring, self._tol)

    def spatial_covariance(self) -> np.ndarray:
        """(R+1, C, C): cross-covariance per Chebyshev ring, centred with the global means.

        Ring ``r`` averages ``(x_i(p) - mean_i)(x_j(p + d) - mean_j)`` over every offset ``d``
        with ``max(|dy|, |dx|) == r`` (both ``d`` and ``-d``) and every position ``p`` with
        ``p + d`` inside the map, so each ring is symmetric.  Ring 0 is ``covariance_``.
        """
        return readouts.spatial_covariance(self._fitted_state(), self.max_radius)

    def spatial_correlation(self) -> np.ndarray:
        """``spatial_covariance()`` divided by ``std_i std_j``; inactive rows/columns are 0.

        Ring 0 equals ``correlation_``; other rings are not clipped (|value| <= 1 only
        approximately, as the ring average is not a Pearson correlation of its own)."""
        return readouts.spatial_correlation(self._fitted_state(), self.max_radius,
                                            self.cofiring, self._tol)

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects), e.g. for ``np.savez``; see ``from_dict``."""
        return persistence.to_dict(self._state, max_radius=self.max_radius, dtype=self.dtype,
                                   tol=self.tol, threshold=self.threshold,
                                   parsed=self._threshold, cofiring=self.cofiring)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ChannelStats":
        """Rebuild from ``to_dict()`` output (or the ``np.load`` of a saved one)."""
        out = cls(**persistence.settings_from_dict(d))
        out._state = persistence.state_from_dict(d, max_radius=out.max_radius,
                                                 cofiring=out.cofiring)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` with ``np.savez`` atomically (temporary file, then rename)."""
        persistence.save(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ChannelStats":
        """Read a file written by ``save`` (no pickle)."""
        return persistence.load(path, cls.from_dict)

    def state_nbytes(self) -> int:
        """Bytes held by the running state (constant in the number of samples)."""
        return sum(v.nbytes for v in self.to_dict().values())
