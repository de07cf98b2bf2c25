"""The noise edge of the automatic K: where the noise bulk of a structureless spectrum begins.

``n_clusters="auto"`` counts the Laplacian eigenvalues below an edge
(:func:`sparsenet.analyser.clustering.edge_n_clusters`); this module measures that edge from the
data.  Two references, each the lowest ``l_2`` (second eigenvalue of the normalised Laplacian) of
``REFERENCE_COPIES`` structureless copies; the edge is the higher of the two.

- *Shuffled copies* (no co-firing at all): the same affinity on ``REFERENCE_COPIES``
  channel-shuffled copies of the data (each channel permuted across images independently:
  every channel keeps its values, its distribution and its spatial structure within an image;
  co-firing is destroyed); their lowest l_2.  On structureless data the data and the copies are
  exchangeable, so the data's l_2 falls below all of the copies' with probability
  1 / (REFERENCE_COPIES + 1): ``REFERENCE_COPIES = 19`` makes K > 1 a 5% event.  This is Horn's
  (1965) parallel analysis in its permutation form (Buja & Eyuboglu 1992) on the Laplacian.
- *Degree-matched references* (``matched_second_eigenvalue``): data with the data's degrees
  and no cluster structure.  A copy has no structure, so its degrees are small (noise only);
  the Laplacian divides each affinity by the degrees, so the copies' bulk is wide.  Data whose
  channels share a common factor have large degrees, which squeeze their own noise into a
  narrow bulk near 1: sub-blocks inside such a block lie above the copies' edge and below the
  data's bulk, and the copies alone count them as one cluster (Dobriban & Owen 2019 call this
  "shadowing" in parallel analysis).  The reference is ``d d^T / vol + E`` normalised by the
  data's degrees ``d``: ``d d^T / vol`` is the structure-free graph with those degrees (the
  null of modularity, Newman 2004; its normalised Laplacian has 0 once and 1 elsewhere) and
  ``E`` a sample of the affinity's sampling noise, ``c (W_A - W_B)`` from a random split of
  the images into two parts (``W_A``, ``W_B``: the affinity on each; ``c`` makes its variance
  that of the full data's noise; the first part holds ``SPLIT_FRACTION`` of the images so that
  its third moment matches too, see there).  The split keeps whatever makes the noise what it
  is (dependent positions within an image, heavy tails, the noise at each pair's correlation),
  and ``W_A - W_B`` has no structure in expectation.  Lowest l_2 of ``REFERENCE_COPIES`` splits.

Why the higher: adding structure only adds affinity, so the data's degrees are at least the
copies' and its noise bulk can begin no lower than theirs; where the split's noise is a poor
sample (channels so heavy-tailed or sparse that the clipped affinity's noise is far from its
linearisation) the degree-matched edge falls below the copies' and the copies decide.  On
structureless data the two are close and K > 1 stays near the 5% of the copies
(docs/significance.md measures it).  The permutation null's copies are structureless, so they
choose K with the shuffled edge (``NoiseEdge.shuffled``): the edge of a shuffle of the data is
distributed as the data's own shuffles.  No constant is fitted to a generator.

Cost: 19 split affinities (two parts each, one full product in all) and 19 shuffled
affinities, each followed by the two leading eigenpairs; the copies run
``significance.workers()`` at a time
(:mod:`sparsenet.analyser.significance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsenet.analyser.affinity import sample_affinity
from sparsenet.analyser.clustering import degrees, laplacian_eigenpairs, leading_eigenpairs
from sparsenet.analyser.significance import MAX_ROWS, random_parts, row_index, shuffled_map, split_map

__all__ = ["NoiseEdge", "noise_edge", "matched_second_eigenvalue", "reference_edge", "REFERENCE_COPIES",
           "SPLIT_FRACTION"]

# Copies behind each reference whose lowest l_2 is its edge (module docstring):
# K > 1 on structureless data with probability 1 / (REFERENCE_COPIES + 1) = 0.05.
REFERENCE_COPIES = 19

# Share of the images in the first part of the split that samples the affinity's noise for the
# degree-matched reference (module docstring): with weights proportional to +1/f on that part and
# -1/(1 - f) on the rest, (1 - 2f) / sqrt(f (1 - f)) = 1 makes the noise sample's third moment equal
# to that of the data's own noise (Mammen's 1993 wild-bootstrap weights), which sets the order-p/N
# shift of the noise bulk's edge (Marchenko-Pastur: 2 sqrt(p/N) + p/N); halves (f = 1/2) miss it.
SPLIT_FRACTION = (5.0 - 5.0 ** 0.5) / 10.0

_SEED_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True)
class NoiseEdge:
    """The edge that chooses K and its two references (all None: no split possible, the eigengap)."""

    edge: float | None      # max(matched, shuffled): the data's K rule
    matched: float | None   # degree-matched references' lowest l_2
    shuffled: float | None  # channel-shuffled copies' lowest l_2: the permutation null's K rule


NO_EDGE = NoiseEdge(None, None, None)


def noise_edge(samples: np.ndarray, affinity: np.ndarray, inactive: np.ndarray, kind: str, thresholds,
               graph_threshold: float, rng: np.random.RandomState) -> NoiseEdge:
    """The noise edge of ``samples`` (N x C or N x C x H x W) for the automatic K.

    ``affinity`` (C x C) and ``inactive`` (C bools) are the fit's, computed from all of
    ``samples`` with affinity ``kind``, activity ``thresholds`` and ``graph_threshold`` (the
    references recompute it on parts and shuffles with the same settings).  Draws from ``rng``
    in a fixed order: the matched references' splits and seed, then the shuffled copies' rows
    and seeds.  ``NO_EDGE`` when the images cannot be split into two parts of at least two rows
    each (the caller falls back to the eigengap).
    """
    X3 = samples.reshape(samples.shape[0], samples.shape[1], -1)
    matched = _matched_edge(X3, affinity, ~np.asarray(inactive, dtype=bool), kind, thresholds,
                            graph_threshold, rng)
    if matched is None:
        return NO_EDGE
    shuffled = _shuffle_edge(X3, kind, thresholds, graph_threshold, rng)
    return NoiseEdge(max(matched, shuffled), matched, shuffled)


def _matched_edge(X3, affinity, active, kind, thresholds, graph_threshold, rng) -> float | None:
    """The lowest l_2 of ``REFERENCE_COPIES`` degree-matched references, the data's degrees
    without cluster structure plus a sample of the affinity's sampling noise, ``c (W_A - W_B)``
    from a random split of the images into a share ``SPLIT_FRACTION`` and the rest, scaled to
    the full data's noise; None when the images cannot be split into two parts of at least two
    rows each."""
    n_images, n_positions = X3.shape[0], X3.shape[2]
    if n_images < 2 or max(1, round(SPLIT_FRACTION * n_images)) * n_positions < 2:
        return None
    degree = degrees(affinity[np.ix_(active, active)])
    n_rows = n_images * n_positions
    parts = [random_parts(n_images, n_positions, MAX_ROWS, rng, SPLIT_FRACTION)
             for _ in range(REFERENCE_COPIES)]
    seed = rng.randint(_SEED_MAX)

    def second_eigenvalue(A, B):
        # var(W_A - W_B) = v / M_A + v / M_B; the full data's noise has v / n_rows
        scale = 1.0 / np.sqrt(n_rows * (1.0 / A.shape[0] + 1.0 / B.shape[0]))
        W_A, W_B = (sample_affinity(Z, kind, thresholds, graph_threshold=graph_threshold,
                                    overwrite=True)[0][np.ix_(active, active)] for Z in (A, B))
        W_A -= W_B
        W_A *= scale
        return matched_second_eigenvalue(degree, W_A, seed)

    return reference_edge(split_map(X3, parts, second_eigenvalue, desc="reference splits"))


def _shuffle_edge(X3, kind, thresholds, graph_threshold, rng) -> float:
    """The noise edge of structure-free data, the K rule of the permutation null's copies:
    the lowest l_2 of ``REFERENCE_COPIES`` channel-shuffled copies.  A copy has no
    cluster structure, so its own degree-matched reference is distributed as the copies
    themselves; the edge is the same for a shuffle of a shuffle."""
    rows, _ = row_index(np.arange(X3.shape[0]), X3.shape[2], MAX_ROWS, rng)
    seed = rng.randint(_SEED_MAX)

    def second_eigenvalue(Z):
        affinity, inactive = sample_affinity(Z, kind, thresholds, graph_threshold=graph_threshold,
                                             overwrite=True)
        active = ~inactive
        if active.sum() < 2:
            return np.inf
        return laplacian_eigenpairs(affinity[np.ix_(active, active)], 2, seed)[0][1]

    seeds = rng.randint(_SEED_MAX, size=REFERENCE_COPIES)
    return reference_edge(shuffled_map(X3, rows, second_eigenvalue, seeds))


def matched_second_eigenvalue(degree: np.ndarray, noise: np.ndarray, seed: int = 0) -> float:
    """l_2 of the degree-matched reference (module docstring): the Laplacian of
    ``d d^T / vol + noise`` normalised by the data's degrees ``d``, self-loops dropped.
    ``noise`` is a symmetric n x n sample of the affinity's sampling noise (zero mean)."""
    root = np.sqrt(degree)
    S = np.asarray(noise, dtype=np.float64) / root[:, None]
    S /= root[None, :]
    S += np.outer(root, root) / degree.sum()  # d_i d_j / vol, normalised
    np.fill_diagonal(S, 0.0)
    if S.shape[0] < 2:
        return np.inf
    mu, _ = leading_eigenpairs(S, 2, seed)
    return float(np.clip(1.0 - mu[1], 0.0, 2.0))


def reference_edge(second_eigenvalues) -> float:
    """A reference's edge: the lowest l_2 among its copies."""
    return float(np.min(second_eigenvalues))
