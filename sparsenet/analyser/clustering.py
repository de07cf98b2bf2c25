"""Clusters of channels from an affinity matrix, and the choice of their number K.

All functions here work on the affinity among *active* channels only (the estimator drops
inactive channels first), so every node has a meaningful row.

Choice of K (``n_clusters="auto"``): the eigengap heuristic (von Luxburg 2007, "A tutorial on
spectral clustering", section 8.3).  With the eigenvalues ``l_1 <= l_2 <= ... <= l_n`` of the
symmetric normalised Laplacian ``L = I - D^-1/2 A D^-1/2`` (self-loops ignored, as in
scikit-learn's spectral embedding), K is the k in ``1..min(max_clusters, n - 1)`` with the
largest gap ``l_{k+1} - l_k`` (the smallest such k on ties).  A graph made of K weakly joined
blocks has K eigenvalues near 0 and then a jump.  k = 1 is allowed, and chosen only when the
first gap ``l_2 - l_1`` is the largest, i.e. when the graph has no block structure stronger than
its overall connectivity (structureless data: all eigenvalues but the first bunch near 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import laplacian
from scipy.spatial.distance import squareform

from sparsenet.blas import one_blas_thread
from sparsenet.errors import SparsenetError

METHODS = ("spectral", "hierarchical", "communities", "arora")  # arora: analyser/arora.py (overlapping)

# Added to every off-diagonal affinity before spectral steps so that a graph with isolated
# parts stays connected (no "graph is not fully connected" warnings, well-defined embedding);
# far below any affinity that matters.
_EPS = 1e-8


@dataclass(frozen=True)
class Clustering:
    """Result of clustering the active channels."""

    labels: np.ndarray  # (n_active,) ints 0..K-1, numbered by first appearance
    eigenvalues: np.ndarray | None  # (n_active,) normalised Laplacian spectrum, ascending
    linkage: np.ndarray | None  # scipy linkage matrix for "hierarchical", else None


def check_method(method) -> str:
    """Return ``method`` if it is a known clustering method, else raise SparsenetError."""
    if not isinstance(method, str) or method not in METHODS:
        raise SparsenetError(
            f"unknown method {method!r}; accepted: {', '.join(repr(m) for m in METHODS)}"
        )
    return method


def laplacian_spectrum(affinity: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetric normalised Laplacian of ``affinity``."""
    with one_blas_thread():
        eigenvalues = np.linalg.eigvalsh(laplacian(_connected(affinity), normed=True))
    return np.clip(np.sort(eigenvalues), 0.0, 2.0)


def eigengap_n_clusters(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """K with the largest gap ``l_{K+1} - l_K`` among K = 1..min(max_clusters, n-1)."""
    n_candidates = min(int(max_clusters), len(eigenvalues) - 1)
    if n_candidates < 1:
        return 1
    gaps = np.diff(eigenvalues[: n_candidates + 1])
    return int(np.argmax(gaps)) + 1


def cluster_affinity(affinity, method, n_clusters, max_clusters, seed, *,
                     spectrum: bool = True) -> Clustering:
    """Cluster the active channels of ``affinity`` (already restricted to them).

    ``n_clusters`` is an int or "auto"; for "communities" it is an upper bound (modularity
    decides the number, ``max_clusters`` bounds it under "auto").  ``spectrum=False`` skips
    the Laplacian spectrum (an O(n^3) eigendecomposition; ``eigenvalues`` is then None) when K
    is given, as the significance null and the stability halves need only the labels.
    """
    n = affinity.shape[0]
    auto = n_clusters == "auto"
    eigenvalues = laplacian_spectrum(affinity) if (spectrum or auto) else None
    k = min(eigengap_n_clusters(eigenvalues, max_clusters) if auto else int(n_clusters), n)
    tree = None
    if method == "spectral":
        labels = spectral_labels(affinity, k, seed)
    elif method == "hierarchical":
        labels, tree = hierarchical_labels(affinity, k)
    else:
        labels = community_labels(affinity, min(max_clusters, n) if auto else k)
    return Clustering(canonical_labels(labels), eigenvalues, tree)


def spectral_labels(affinity: np.ndarray, k: int, seed: int) -> np.ndarray:
    """scikit-learn SpectralClustering on the precomputed affinity, seeded."""
    n = affinity.shape[0]
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=int)
    if k >= n:
        return np.arange(n)
    from sklearn.cluster import SpectralClustering

    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="cluster_qr"
    )
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore", UserWarning)
        return model.fit_predict(_connected(affinity))


def hierarchical_labels(affinity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Average linkage on distances ``1 - affinity``; cut into at most k clusters."""
    n = affinity.shape[0]
    if n <= 1:
        return np.zeros(n, dtype=int), None
    distance = 1.0 - affinity
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(np.clip(distance, 0.0, 1.0), checks=False), method="average")
    return fcluster(tree, t=max(k, 1), criterion="maxclust") - 1, tree


def community_labels(affinity: np.ndarray, max_k: int) -> np.ndarray:
    """Greedy modularity communities (Clauset-Newman-Moore) of the weighted graph.

    The number of communities is the one that maximises modularity, merged further down to
    at most ``max_k``.  Deterministic (no random seed is involved).
    """
    n = affinity.shape[0]
    if n <= 1 or max_k <= 1:
        return np.zeros(n, dtype=int)
    import networkx as nx
    from networkx.algorithms.community import greedy_modularity_communities

    weights = _connected(affinity)
    np.fill_diagonal(weights, 0.0)
    graph = nx.from_numpy_array(weights)
    communities = greedy_modularity_communities(graph, weight="weight", best_n=min(max_k, n))
    labels = np.empty(n, dtype=int)
    for index, members in enumerate(communities):
        labels[list(members)] = index
    return labels


def canonical_labels(labels) -> np.ndarray:
    """Renumber labels 0..K-1 in order of first appearance (channel order)."""
    labels = np.asarray(labels)
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping[value] for value in labels], dtype=int)


def expand_labels(active_labels: np.ndarray, inactive: np.ndarray) -> np.ndarray:
    """Full-length labels: active channels get their cluster, inactive ones -1."""
    labels = np.full(inactive.shape[0], -1, dtype=int)
    labels[~inactive] = active_labels
    return labels


def check_n_clusters(n_clusters, n_active: int, inactive_idx) -> None:
    """K larger than the number of active channels is an error."""
    if n_clusters != "auto" and n_clusters > n_active:
        raise SparsenetError(
            f"n_clusters={n_clusters} is more than the {n_active} active channels "
            f"(inactive channels, dead or constant: {list(map(int, inactive_idx))}); "
            f"use n_clusters <= {n_active} or 'auto'"
        )


def _connected(affinity: np.ndarray) -> np.ndarray:
    out = np.asarray(affinity, dtype=np.float64) + _EPS
    np.fill_diagonal(out, 1.0)
    return out
