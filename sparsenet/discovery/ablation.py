"""Ablations of a discovery: the same shape with the discovered part replaced by chance.

They isolate what discovery contributes to a grown network (``sparsenet.grow`` with ``ablation``):

* ``random_clusters``: clusters of the same sizes and kernel sizes, their channels drawn at random
  from the layer's active channels (a random partition when the discovered clusters are disjoint,
  independent random subsets when they overlap).
* ``random_kernels``: the same clusters, each one's kernel size drawn independently from the
  discovered distribution: the kernel size of a channel picked uniformly among the clustered
  channels (so a size found for many channels is drawn often).  A discovery whose clusters all
  have one kernel size is returned with that size everywhere, i.e. unchanged.

Both are pure functions of (discovery, seed), drawn with ``numpy.random.default_rng(seed)``, and
note the ablation in the provenance.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sparsenet.discovery.value import Cluster, Discovery
from sparsenet.errors import SparsenetError

__all__ = ["ABLATIONS", "ablate", "random_clusters", "random_kernels"]


def _disjoint(discovery: Discovery) -> bool:
    seen = [ch for c in discovery.clusters for ch in c.channels]
    return len(seen) == len(set(seen))


def _noted(discovery: Discovery, clusters, labels, what: str, seed: int) -> Discovery:
    provenance = {**discovery.provenance, "ablation": what, "ablation_seed": seed}
    return replace(discovery, clusters=tuple(clusters), labels=tuple(labels), provenance=provenance)


def random_clusters(discovery: Discovery, seed: int) -> Discovery:
    """Clusters of the discovered sizes (and kernel sizes) with randomly drawn channels."""
    rng = np.random.default_rng(seed)
    active = np.array([i for i, v in enumerate(discovery.labels) if v >= 0], dtype=int)
    sizes = [c.size for c in discovery.clusters]
    if any(s > len(active) for s in sizes):
        raise SparsenetError(f"random_clusters: a cluster of {max(sizes)} channels cannot be drawn from "
                             f"{len(active)} active channels")
    if _disjoint(discovery):
        order = rng.permutation(active)
        bounds = np.cumsum([0] + sizes)
        members = [sorted(order[bounds[k]:bounds[k + 1]].tolist()) for k in range(len(sizes))]
        labels = [-1] * discovery.channels
        for k, chans in enumerate(members):
            for ch in chans:
                labels[ch] = k
    else:
        members = [sorted(rng.choice(active, size=s, replace=False).tolist()) for s in sizes]
        labels = list(discovery.labels)
    clusters = [Cluster(id=c.id, channels=tuple(m), kernel_size=c.kernel_size) for c, m in
                zip(discovery.clusters, members)]
    return _noted(discovery, clusters, labels, "random_clusters", seed)


def random_kernels(discovery: Discovery, seed: int) -> Discovery:
    """The discovered clusters, each with a kernel size drawn from the discovered (per-channel) distribution."""
    rng = np.random.default_rng(seed)
    pool = np.array([c.kernel_size for c in discovery.clusters for _ in c.channels], dtype=int)
    if len(pool) == 0:
        raise SparsenetError("random_kernels: the discovery has no clustered channel to draw kernel sizes from")
    drawn = rng.choice(pool, size=len(discovery.clusters), replace=True)
    clusters = [replace(c, kernel_size=int(k), spatial_profile=()) for c, k in zip(discovery.clusters, drawn)]
    return _noted(discovery, clusters, discovery.labels, "random_kernels", seed)


ABLATIONS = {"random_clusters": random_clusters, "random_kernels": random_kernels}


def ablate(discovery: Discovery, ablation: str | None, seed: int) -> Discovery:
    """``discovery`` with ``ablation`` applied (unchanged for None or "none")."""
    if ablation in (None, "none"):
        return discovery
    if ablation not in ABLATIONS:
        raise SparsenetError(f"unknown ablation {ablation!r}; expected one of {['none', *ABLATIONS]}")
    return ABLATIONS[ablation](discovery, seed)
