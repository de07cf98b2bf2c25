"""Clusters of channels from an affinity matrix, and the choice of their number K.

All functions here work on the affinity among *active* channels only (the estimator drops
inactive channels first), so every node has a meaningful row.

Spectrum.  With W the affinity among active channels (self-loops ignored, as in scikit-learn's
spectral embedding, plus ``_EPS`` so that the graph is connected) and D its degrees, the
symmetric normalised Laplacian ``L = I - D^-1/2 W D^-1/2`` has eigenvalues
``0 = l_1 <= l_2 <= ... <= l_n``.  A graph of K weakly joined blocks has K eigenvalues near 0;
a structureless graph has l_2 .. l_n in a bulk around 1.

Choice of K (``n_clusters="auto"``): *the eigenvalues below the noise edge*,

    K = #{i : l_i < edge},   clipped to 1..bound,

(l_1 = 0 always counts), the edge being where the noise bulk of the data's spectrum begins
when the data has no cluster structure.  :mod:`sparsenet.analyser.noise_edge` measures it from
the data (the higher of two references: channel-shuffled copies, Horn's parallel analysis in its
permutation form, and degree-matched references, the data's degrees without cluster structure
plus a sample of the affinity's noise); on structureless data K > 1 in about 5%.  A block of s
channels with within-block affinity a separates from the bulk when its own eigenvalue does,
whatever the number of blocks, which is why many small groups are found (the eigengap instead
compares l_2 - l_1 with all later gaps, and the first gap, against l_1 = 0, wins on weak
structure).

The bound: ``max_clusters="auto"`` is ``n // 2`` (a group needs two channels to co-fire), an
int caps it further.  Without samples (fitting a ``ChannelStats``) there is nothing to shuffle
and K falls back to the eigengap, ``argmax_k l_{k+1} - l_k`` over k = 1..bound (von Luxburg
2007, section 8.3).  docs/analyser.md compares the rules on several generator families.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import laplacian
from scipy.spatial.distance import squareform

from sparsenet.analyser.settings import METHODS
from sparsenet.blas import one_blas_thread
from sparsenet.errors import SparsenetError


# Added to every off-diagonal affinity before spectral steps so that a graph with isolated
# parts stays connected (no "graph is not fully connected" warnings, well-defined embedding);
# far below any affinity that matters.
_EPS = 1e-8

# Above this many channels the leading eigenpairs come from Lanczos (scipy eigsh) instead of a
# full dense eigendecomposition (about 10x faster at 1,024 channels when K is small).
_DENSE_MAX = 400


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


def cluster_bound(max_clusters, n: int) -> int:
    """Largest K searched among ``n`` active channels: ``n // 2`` for "auto", capped by an int."""
    bound = max(1, n // 2)
    return bound if max_clusters == "auto" else max(1, min(int(max_clusters), bound))


def laplacian_spectrum(affinity: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetric normalised Laplacian of ``affinity``."""
    with one_blas_thread():
        eigenvalues = np.linalg.eigvalsh(laplacian(_connected(affinity), normed=True))
    return np.clip(np.sort(eigenvalues), 0.0, 2.0)


def laplacian_eigenpairs(affinity: np.ndarray, k: int, seed: int = 0):
    """The ``k`` smallest Laplacian eigenvalues (ascending) and the spectral embedding:
    the matching eigenvectors of ``D^-1/2 W D^-1/2`` divided by ``sqrt(degree)``, as
    scikit-learn's ``spectral_embedding`` returns them (n x k)."""
    S = np.asarray(affinity, dtype=np.float64) + _EPS  # _connected without its diagonal, in place
    np.fill_diagonal(S, 0.0)
    dd = np.sqrt(S.sum(axis=1))
    S /= dd[:, None]
    S /= dd[None, :]
    mu, vectors = leading_eigenpairs(S, k, seed)
    return np.clip(1.0 - mu, 0.0, 2.0), vectors / dd[:, None]


def degrees(affinity: np.ndarray) -> np.ndarray:
    """Each channel's degree as the Laplacian sees it: its row sum without the self-loop,
    ``_EPS`` added to every off-diagonal affinity."""
    W = np.asarray(affinity, dtype=np.float64)
    return W.sum(axis=1) - np.diag(W) + _EPS * (W.shape[0] - 1)


def leading_eigenpairs(S: np.ndarray, k: int, seed: int):
    """The ``k`` largest eigenvalues of the symmetric ``S`` (descending) and their vectors:
    dense for small matrices or many pairs, Lanczos otherwise; one BLAS thread."""
    n = S.shape[0]
    k = max(1, min(int(k), n))
    with one_blas_thread():
        if n <= _DENSE_MAX or k >= n // 4:
            from scipy.linalg import eigh

            mu, vectors = eigh(S, subset_by_index=[n - k, n - 1])
        else:
            from scipy.sparse.linalg import eigsh

            v0 = np.random.RandomState(seed).uniform(-1, 1, n)
            mu, vectors = eigsh(S, k=k, which="LA", v0=v0, tol=1e-10)
    order = np.argsort(-mu)
    return mu[order], vectors[:, order]


def edge_n_clusters(eigenvalues: np.ndarray, edge: float, bound: int) -> int:
    """K = #{i : l_i < edge} (l_1 = 0 counts), clipped to 1..bound (module docstring)."""
    return int(np.clip(np.sum(np.asarray(eigenvalues) < edge), 1, max(1, bound)))


def eigengap_n_clusters(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """K with the largest gap ``l_{K+1} - l_K`` among K = 1..min(max_clusters, n-1)."""
    n_candidates = min(int(max_clusters), len(eigenvalues) - 1)
    if n_candidates < 1:
        return 1
    gaps = np.diff(eigenvalues[: n_candidates + 1])
    return int(np.argmax(gaps)) + 1


def choose_k(affinity: np.ndarray, max_clusters, seed: int, edge: float | None):
    """Automatic K and the leading spectrum it was read from: the eigenvalues below ``edge``
    (Lanczos grows the number computed until one lies above it), or the eigengap when there is
    no reference (``edge=None``: the full spectrum)."""
    n = affinity.shape[0]
    bound = cluster_bound(max_clusters, n)
    if edge is None:
        eigenvalues = laplacian_spectrum(affinity)
        return eigengap_n_clusters(eigenvalues, bound), eigenvalues, None
    k = min(bound + 1, n, 2)  # structureless copies, most of the null, stop at l_2
    while True:
        eigenvalues, embedding = laplacian_eigenpairs(affinity, k, seed)
        if eigenvalues[-1] >= edge or k >= min(bound + 1, n):
            return edge_n_clusters(eigenvalues, edge, bound), eigenvalues, embedding
        k = min(4 * k, bound + 1, n)


def cluster_affinity(affinity, method, n_clusters, max_clusters, seed, *,
                     spectrum: bool = True, edge: float | None = None) -> Clustering:
    """Cluster the active channels of ``affinity`` (already restricted to them).

    ``n_clusters`` is an int or "auto" (``edge``: the noise edge of the reference copies, None
    for the eigengap; see the module docstring); for "communities" it is an upper bound
    (modularity decides the number, ``max_clusters`` bounds it under "auto").  ``spectrum=False``
    skips the full Laplacian spectrum (``eigenvalues`` is then None, or only the leading
    eigenvalues that chose K), as the significance null and the stability halves need only the
    labels.
    """
    n = affinity.shape[0]
    auto = n_clusters == "auto"
    embedding = None
    eigenvalues = None
    if auto:
        k, eigenvalues, embedding = choose_k(affinity, max_clusters, seed, edge)
    else:
        k = min(int(n_clusters), n)
    if spectrum and (eigenvalues is None or len(eigenvalues) < n):
        eigenvalues = laplacian_spectrum(affinity)
    tree = None
    if method == "spectral":
        labels = spectral_labels(affinity, k, seed, embedding=embedding)
    elif method == "hierarchical":
        labels, tree = hierarchical_labels(affinity, k)
    else:
        labels = community_labels(affinity, cluster_bound(max_clusters, n) if auto else k)
    return Clustering(canonical_labels(labels), eigenvalues, tree)


def spectral_labels(affinity: np.ndarray, k: int, seed: int, *, embedding=None) -> np.ndarray:
    """Spectral clustering of the precomputed affinity: the k leading vectors of the spectral
    embedding (scikit-learn's, see ``laplacian_eigenpairs``), assigned by ``cluster_qr``
    (Damle, Minden & Ying 2019, scikit-learn's ``assign_labels="cluster_qr"``): deterministic,
    no k-means restarts.  ``embedding`` (n x >= k) reuses vectors already computed."""
    n = affinity.shape[0]
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=int)
    if k >= n:
        return np.arange(n)
    if embedding is None or embedding.shape[1] < k:
        _, embedding = laplacian_eigenpairs(affinity, k, seed)
    return cluster_qr(embedding[:, :k])


def cluster_qr(vectors: np.ndarray) -> np.ndarray:
    """Labels from an n x k embedding: QR with column pivoting picks k representative rows,
    the polar factor of their block rotates the embedding onto the axes, argmax assigns."""
    from scipy.linalg import qr, svd

    k = vectors.shape[1]
    with one_blas_thread():
        _, _, piv = qr(vectors.T, pivoting=True, mode="economic")
        ut, _, v = svd(vectors[piv[:k], :].T)
        return np.abs(vectors @ (ut @ v.conj())).argmax(axis=1)


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
