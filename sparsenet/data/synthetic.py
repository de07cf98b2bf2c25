"""Activations with planted ground truth, for testing and documenting the analysis.

Two generators:

* ``planted_groups`` -- maps ``N x C x H x W`` whose channels form groups that fire together,
  each group with a known spatial extent (the kernel size 1, 3 or 5 a GoogLeNet branch would
  use to cover it).  The analyser must recover the groups and their kernel sizes.
* ``arora_network`` -- Arora et al.'s (2014) sparse random deep network: a sparse top layer
  pushed down through random sparse +-1 graphs and a threshold; units that share a parent
  fire together, which is what the Hebbian layer-by-layer learning exploits.

Both are deterministic given ``random_state`` (an int, None or ``numpy.random.Generator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sparsenet.errors import SparsenetError

__all__ = ["PlantedActivations", "planted_groups", "AroraSample", "ArorASample", "arora_network",
           "arora_layer"]


def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (isinstance(random_state, (int, np.integer))
                                and not isinstance(random_state, bool) and random_state >= 0):
        return np.random.default_rng(random_state)
    raise SparsenetError(f"random_state={random_state!r}; accepted: None, an int >= 0 or a "
                         f"numpy.random.Generator")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise SparsenetError(f"{name}={value!r}; accepted: an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class PlantedActivations:
    """Planted maps and their ground truth (see ``planted_groups``)."""

    X: np.ndarray  # N x C x H x W float32, non-negative (ReLU-like)
    labels: np.ndarray  # (C,) int: true group of each channel; -1 for planted dead channels
    kernel_sizes: np.ndarray  # (G,) int: true spatial extent k (odd) of each group

    @property
    def support_radius(self) -> np.ndarray:
        """(G,) the Chebyshev radius ``k - 1`` up to which each group is correlated (the reach
        of a k x k box's autocorrelation)."""
        return self.kernel_sizes - 1

    @property
    def n_groups(self) -> int:
        return int(self.kernel_sizes.shape[0])


def planted_groups(
    n_samples: int = 256,
    group_sizes: Sequence[int] = (8, 8, 8, 8),
    kernel_sizes: Sequence[int] = (1, 3, 5, 1),
    *,
    size: int = 12,
    noise: float = 0.5,
    sparsity: float = 0.1,
    n_dead: int = 0,
    shuffle: bool = False,
    random_state=None,
) -> PlantedActivations:
    """Maps whose channels fire in planted groups with planted spatial extents.

    Model.  Group ``g`` (kernel size ``k_g``, odd) has a latent spike map
    ``z_g(n, y, x) = Bernoulli(sparsity) * Uniform(0.5, 1.5)``, independent at every position
    (spatially white).  It is blurred with a **k_g x k_g box** (sum over a ``k_g x k_g``
    window), normalised to unit variance: ``b_g``.  Every channel ``c`` of the
    group is ``relu(gain_c * b_g + noise * eps_c)`` with ``gain_c ~ Uniform(0.75, 1.25)`` and
    ``eps_c`` independent standard normal noise at every position; groups are independent of
    each other.  Spikes are drawn on a canvas ``k_g - 1`` larger than the map, so the blurred
    map is stationary (no border effect).  ``n_dead`` extra channels are identically 0 and get
    label -1.  Channels are ordered group by group (dead ones last) unless ``shuffle=True``
    (then a random permutation; ``labels`` follows it).

    Kernel size = footprint.  The generating filter of group g is the ``k_g x k_g`` box, whose
    mass a centred ``k_g x k_g`` window holds entirely and a ``(k_g - 2) x (k_g - 2)`` one only
    ``((k_g - 2) / k_g)^2`` of (1/9 for 3, 9/25 for 5): its footprint
    (``sparsenet.analyser.footprint``) is ``k_g`` for any mass fraction above 0.36.  Its
    autocovariance is ``(k - |dy|)(k - |dx|) / k^2`` of the variance at offset ``(dy, dx)``,
    positive exactly for ``max(|dy|, |dx|) <= k - 1``: a k x k footprint *reaches* radius
    k - 1, twice its kernel's radius (k - 1) / 2 -- which is why the kernel size is fitted to
    the whole profile rather than read off its reach.  (Before the footprint definition the
    blur was a ``(k + 1) / 2`` box, whose reach was (k - 1) / 2: its footprint was 3 for k = 5.)
    Channels of different groups are uncorrelated at every offset.

    Parameters: ``n_samples`` maps of ``size x size``; ``group_sizes[g]`` channels in group g
    of kernel size ``kernel_sizes[g]`` (odd, <= size); ``noise`` = std of the
    per-channel noise relative to the unit-variance group signal (0.5: within-group
    correlation at offset 0 about 0.8-0.9; average-linkage clustering of ``1 - correlation``
    recovers the groups with ARI 1.0, still so at noise 1.5 where it is about 0.5);
    ``sparsity`` =
    probability of a latent spike per position.
    """
    n_samples = _positive_int("n_samples", n_samples)
    size = _positive_int("size", size)
    n_dead = _positive_int("n_dead", n_dead, minimum=0)
    try:
        gs = [int(g) for g in group_sizes]
        ks = [int(k) for k in kernel_sizes]
    except (TypeError, ValueError):
        raise SparsenetError(f"group_sizes={group_sizes!r}, kernel_sizes={kernel_sizes!r}; "
                             f"accepted: sequences of integers") from None
    if not gs or len(gs) != len(ks):
        raise SparsenetError(f"{len(gs)} group sizes and {len(ks)} kernel sizes; accepted: "
                             f"one kernel size per group, at least one group")
    if any(g < 1 for g in gs):
        raise SparsenetError(f"group_sizes={tuple(gs)}; accepted: integers >= 1")
    if any(k < 1 or k % 2 == 0 or k > size for k in ks):
        raise SparsenetError(f"kernel_sizes={tuple(ks)}; accepted: odd integers >= 1 with "
                             f"k <= size={size}")
    if not (isinstance(noise, (int, float)) and np.isfinite(noise) and noise >= 0):
        raise SparsenetError(f"noise={noise!r}; accepted: a finite number >= 0")
    if not (isinstance(sparsity, (int, float)) and 0 < sparsity <= 1):
        raise SparsenetError(f"sparsity={sparsity!r}; accepted: a number in (0, 1]")
    rng = _rng(random_state)

    C = sum(gs) + n_dead
    X = np.zeros((n_samples, C, size, size), dtype=np.float32)
    labels = np.full(C, -1, dtype=np.int64)
    amp_mean, amp_sq = 1.0, 1.0 + 1.0 / 12.0  # Uniform(0.5, 1.5): E a, E a^2
    spike_var = sparsity * amp_sq - (sparsity * amp_mean) ** 2
    c0 = 0
    for g, (n_ch, k) in enumerate(zip(gs, ks)):
        w = k  # the generating filter: a k x k box (footprint k)
        canvas = size + w - 1
        z = (rng.random((n_samples, canvas, canvas)) < sparsity) \
            * rng.uniform(0.5, 1.5, (n_samples, canvas, canvas))
        b = _box_sum(z, w)  # n x size x size
        if spike_var > 0:
            b = (b - w * w * sparsity * amp_mean) / (w * np.sqrt(spike_var))
        else:  # sparsity == 1 with constant amplitude cannot happen (amplitudes vary)
            b = b - b.mean()
        gains = rng.uniform(0.75, 1.25, n_ch)
        eps = rng.standard_normal((n_samples, n_ch, size, size))
        chans = gains[None, :, None, None] * b[:, None] + noise * eps
        X[:, c0:c0 + n_ch] = np.maximum(chans, 0.0)
        labels[c0:c0 + n_ch] = g
        c0 += n_ch
    if shuffle:
        perm = rng.permutation(C)
        X = np.ascontiguousarray(X[:, perm])
        labels = labels[perm]
    return PlantedActivations(X=X, labels=labels, kernel_sizes=np.asarray(ks, dtype=np.int64))


def _box_sum(z: np.ndarray, w: int) -> np.ndarray:
    """Sums over every ``w x w`` window of the last two axes (valid part only)."""
    if w == 1:
        return z.astype(np.float64)
    c = np.zeros((z.shape[0], z.shape[1] + 1, z.shape[2] + 1))
    c[:, 1:, 1:] = z.cumsum(axis=1).cumsum(axis=2)
    return c[:, w:, w:] - c[:, :-w, w:] - c[:, w:, :-w] + c[:, :-w, :-w]


@dataclass(frozen=True)
class AroraSample:
    """Samples of Arora et al.'s sparse random network (see ``arora_network``)."""

    layers: list  # [h_top (N x n_top), h_1 (N x n_1), ..., h_bottom]: {0, 1} float32, top first
    weights: list  # weights[i]: (n_{i+1} x n_i) int8 in {-1, 0, +1}: layer i -> layer i + 1
    true_parents: list  # true_parents[i]: (n_{i+1} x degree) int: parents in layer i (arora_layer: one array per unit)

    @property
    def observed(self) -> np.ndarray:
        """The bottom layer (what an analysis sees)."""
        return self.layers[-1]

    def siblings(self, layer: int = -1, *, positive: bool = True) -> np.ndarray:
        """(n, n) bool: units of ``layers[layer]`` (not the top) sharing a parent; with
        ``positive=True`` only parents that excite both (+1 edges).  Diagonal False."""
        idx = range(len(self.layers))[layer]
        if idx == 0:
            raise SparsenetError("the top layer has no parents; accepted: layer >= 1 or negative")
        Wt = self.weights[idx - 1]
        E = (Wt > 0) if positive else (Wt != 0)
        E = E.astype(np.int64)
        S = (E @ E.T) > 0
        np.fill_diagonal(S, False)
        return S


    def neighbourhoods(self, layer: int = 0) -> list:
        """Per unit of ``layers[layer]`` (not the bottom): the sorted units of the layer below it
        excites (+1 edges), i.e. the set Arora's step should recover for it."""
        idx = range(len(self.layers))[layer]
        if idx == len(self.layers) - 1:
            raise SparsenetError("the bottom layer drives nothing; accepted: a layer above the bottom")
        Wt = self.weights[idx]
        return [np.flatnonzero(Wt[:, k] > 0) for k in range(Wt.shape[1])]


ArorASample = AroraSample  # spelling used in an early brief


def arora_layer(
    n_samples: int = 5000,
    n_hidden: int = 64,
    n_observed: int = 256,
    *,
    degree: int = 8,
    density: float = 0.05,
    random_state=None,
) -> AroraSample:
    """One layer of Arora et al.'s model with the *hidden* side's degree fixed (as in the paper).

    Every hidden unit has ``degree`` distinct children among ``n_observed`` (uniform), each edge
    +1 or -1 with probability 1/2; each hidden unit is on independently with probability
    ``density``; ``observed = 1[W h > 0]``.  (``arora_network`` instead fixes each child's
    number of parents.)  Children of one unit overlap with those of others, so the recovered
    neighbourhoods must be allowed to share units.
    """
    n_samples = _positive_int("n_samples", n_samples)
    n_hidden = _positive_int("n_hidden", n_hidden)
    n_observed = _positive_int("n_observed", n_observed)
    degree = _positive_int("degree", degree)
    if degree > n_observed:
        raise SparsenetError(f"degree={degree} > n_observed={n_observed}; accepted: degree <= n_observed")
    if not (isinstance(density, (int, float)) and 0 < density <= 1):
        raise SparsenetError(f"density={density!r}; accepted: a number in (0, 1]")
    rng = _rng(random_state)
    Wt = np.zeros((n_observed, n_hidden), dtype=np.int8)
    for k in range(n_hidden):
        children = rng.choice(n_observed, size=degree, replace=False)
        Wt[children, k] = rng.choice(np.array([-1, 1], dtype=np.int8), size=degree)
    h = (rng.random((n_samples, n_hidden)) < density).astype(np.float32)
    y = ((h @ Wt.T.astype(np.float32)) > 0).astype(np.float32)
    parents = [np.flatnonzero(Wt[c]) for c in range(n_observed)]
    return AroraSample(layers=[h, y], weights=[Wt], true_parents=[parents])


def arora_network(
    n_samples: int = 2000,
    n_top: int = 10,
    layer_sizes: Sequence[int] = (60, 60),
    *,
    degree: int | Sequence[int] = 3,
    top_sparsity: float = 0.2,
    threshold: float = 0.0,
    random_state=None,
) -> AroraSample:
    """Arora et al.'s generative model: a sparse top layer sent down random sparse +-1 graphs.

    The top layer ``h_top`` (``n_top`` units) has each unit on independently with probability
    ``top_sparsity``.  Each next layer (sizes ``layer_sizes``, top to bottom) is
    ``h_{i+1} = 1[W_i h_i > threshold]`` where ``W_i`` (``n_{i+1} x n_i``) is a random sparse
    graph: every unit of layer ``i+1`` has ``degree`` distinct parents in layer ``i`` (uniform),
    each edge weighted +1 or -1 with probability 1/2.  Units are in {0, 1}.

    With the defaults (10 -> 60 -> 60, degree 3, top_sparsity 0.2, threshold 0) the hidden
    and bottom layers are sparse (about 20-25% of units on per sample; a unit whose edges are
    all -1, probability 1/8, never fires), and bottom units sharing an excitatory
    parent co-fire about three times as often as unrelated pairs (0.19 vs 0.06 of samples for
    ``random_state=0``) -- the statistic the Hebbian rule clusters on (``siblings()`` gives the
    true pairs).  ``degree`` may be one int or one per generated layer.
    """
    n_samples = _positive_int("n_samples", n_samples)
    n_top = _positive_int("n_top", n_top)
    try:
        sizes = [int(s) for s in layer_sizes]
    except (TypeError, ValueError):
        raise SparsenetError(f"layer_sizes={layer_sizes!r}; accepted: a sequence of "
                             f"integers >= 1") from None
    if not sizes or any(s < 1 for s in sizes):
        raise SparsenetError(f"layer_sizes={tuple(sizes)}; accepted: at least one integer >= 1")
    degrees = [degree] * len(sizes) if isinstance(degree, (int, np.integer)) else list(degree)
    if len(degrees) != len(sizes):
        raise SparsenetError(f"degree has {len(degrees)} values for {len(sizes)} layers; "
                             f"accepted: one int or one per layer")
    full = [n_top] + sizes
    for i, d in enumerate(degrees):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d <= full[i]:
            raise SparsenetError(f"degree {d!r} for layer {i + 1} (whose parent layer has "
                                 f"{full[i]} units); accepted: 1 <= degree <= {full[i]}")
    if not (isinstance(top_sparsity, (int, float)) and 0 < top_sparsity <= 1):
        raise SparsenetError(f"top_sparsity={top_sparsity!r}; accepted: a number in (0, 1]")
    if not (isinstance(threshold, (int, float)) and np.isfinite(threshold)):
        raise SparsenetError(f"threshold={threshold!r}; accepted: a finite number")
    rng = _rng(random_state)

    h = (rng.random((n_samples, n_top)) < top_sparsity).astype(np.float32)
    layers, weights, parents = [h], [], []
    for i, (n_out, d) in enumerate(zip(sizes, degrees)):
        n_in = full[i]
        par = np.stack([rng.choice(n_in, size=int(d), replace=False) for _ in range(n_out)])
        Wt = np.zeros((n_out, n_in), dtype=np.int8)
        signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=par.shape)
        np.put_along_axis(Wt, par, signs, axis=1)
        h = ((h @ Wt.T.astype(np.float32)) > threshold).astype(np.float32)
        layers.append(h)
        weights.append(Wt)
        parents.append(par)
    return AroraSample(layers=layers, weights=weights, true_parents=parents)
