"""The discovery file: what `sparsenet discover` found, as versioned JSON.

A discovery is the plain value that joins the analyser to the builder: which channels of a
layer fire together (clusters) and how far each cluster's correlation spreads in space (its
kernel size), with the evidence (significance, stability) and where it came from (provenance).
``load_discovery`` validates a file before anything is built from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, jsonable

FORMAT = "sparsenet.discovery"
VERSION = 1
KERNEL_SIZES = (1, 3, 5, 7)


@dataclass(frozen=True)
class Cluster:
    id: int                       # 0..K-1, in the order of `clusters`
    channels: tuple[int, ...]     # indices of the layer's channels in this cluster
    kernel_size: int              # odd spatial extent measured for the cluster (1, 3, 5, ...)
    spatial_profile: tuple[float, ...] = ()  # within-cluster correlation at radius r = 0..R

    @property
    def size(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class Discovery:
    channels: int                         # C, the analysed layer's channel count
    labels: tuple[int, ...]               # cluster of each channel; -1 = inactive (dead/constant)
    clusters: tuple[Cluster, ...]
    significance: dict[str, Any] = field(default_factory=dict)  # at least z and p when computed
    stability: float | None = None        # mean adjusted Rand index across resampled halves
    provenance: dict[str, Any] = field(default_factory=dict)    # model, layer, data, samples, seed, version
    settings: dict[str, Any] = field(default_factory=dict)      # analyser parameters used
    overlapping: bool = False             # True: clusters may share channels (labels = primary cluster)

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    @property
    def inactive(self) -> tuple[int, ...]:
        """Channels in no cluster (dead or constant; with overlapping clusters: in no neighbourhood)."""
        return tuple(i for i, label in enumerate(self.labels) if label < 0)

    @property
    def shared(self) -> tuple[int, ...]:
        """Channels that belong to more than one cluster (only with ``overlapping``)."""
        counts = [0] * self.channels
        for c in self.clusters:
            for i in c.channels:
                counts[i] += 1
        return tuple(i for i, n in enumerate(counts) if n > 1)

    def to_dict(self) -> dict[str, Any]:
        clusters = [
            {"id": c.id, "channels": list(c.channels), "size": c.size,
             "kernel_size": c.kernel_size, "spatial_profile": list(c.spatial_profile)}
            for c in self.clusters
        ]
        return {
            "format": FORMAT, "version": VERSION,
            "channels": self.channels, "n_clusters": self.n_clusters, "overlapping": self.overlapping,
            "labels": list(self.labels), "inactive": list(self.inactive),
            "clusters": clusters,
            "significance": jsonable(self.significance),
            "stability": self.stability,
            "provenance": jsonable(self.provenance),
            "settings": jsonable(self.settings),
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())


def from_labels(labels, kernel_sizes, spatial_profiles=None, *, neighbourhoods=None, **extra) -> Discovery:
    """A Discovery from per-channel labels (-1 inactive) and per-cluster kernel sizes.

    ``neighbourhoods`` (K sequences of channel indices, which may share channels) makes an
    overlapping discovery: the clusters are those sets and ``labels`` gives each channel's
    primary cluster (-1 for a channel in none).
    """
    labels = [int(v) for v in labels]
    if neighbourhoods is not None:
        members = [tuple(sorted(int(i) for i in m)) for m in neighbourhoods]
        extra["overlapping"] = True
    else:
        members = [tuple(i for i, v in enumerate(labels) if v == k) for k in range(max(labels, default=-1) + 1)]
    n_clusters = len(members)
    profiles = list(spatial_profiles) if spatial_profiles is not None else [()] * n_clusters
    clusters = tuple(
        Cluster(id=k, channels=members[k],
                kernel_size=int(kernel_sizes[k]),
                spatial_profile=tuple(float(p) for p in profiles[k]))
        for k in range(n_clusters)
    )
    discovery = Discovery(channels=len(labels), labels=tuple(labels), clusters=clusters, **extra)
    return validate(discovery.to_dict(), source="<labels>")


def _fail(source: str, what: str) -> SparsenetError:
    return SparsenetError(f"{source} is not a valid discovery file: {what}")


def validate(data: Any, source: str = "<discovery>") -> Discovery:
    """Check a parsed discovery dict and turn it into a Discovery, or raise naming the field."""
    if not isinstance(data, dict):
        raise _fail(source, f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise _fail(source, f"field 'format' is {data.get('format')!r}, expected {FORMAT!r} "
                            "(written by `sparsenet discover`)")
    if data.get("version") != VERSION:
        raise _fail(source, f"field 'version' is {data.get('version')!r}; this release reads version {VERSION}")
    for key in ("channels", "labels", "clusters"):
        if key not in data:
            raise _fail(source, f"missing field {key!r}")
    channels, labels = data["channels"], data["labels"]
    if not isinstance(channels, int) or channels < 1:
        raise _fail(source, f"field 'channels' must be a positive integer, got {channels!r}")
    if not isinstance(labels, list) or len(labels) != channels or not all(isinstance(v, int) for v in labels):
        raise _fail(source, f"field 'labels' must be a list of {channels} integers")
    overlapping = data.get("overlapping", False)
    if not isinstance(overlapping, bool):
        raise _fail(source, f"field 'overlapping' must be true or false, got {overlapping!r}")
    if not isinstance(data["clusters"], list) or not data["clusters"]:
        raise _fail(source, "field 'clusters' must be a non-empty list")
    clusters, seen = [], set()
    for k, c in enumerate(data["clusters"]):
        if not isinstance(c, dict):
            raise _fail(source, f"clusters[{k}] must be an object")
        ids = c.get("channels")
        if c.get("id") != k:
            raise _fail(source, f"clusters[{k}].id is {c.get('id')!r}, expected {k}")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and 0 <= i < channels for i in ids):
            raise _fail(source, f"clusters[{k}].channels must be a non-empty list of channel indices in 0..{channels - 1}")
        if len(set(ids)) != len(ids):
            raise _fail(source, f"clusters[{k}].channels lists a channel twice")
        if seen.intersection(ids) and not overlapping:
            raise _fail(source, f"clusters[{k}].channels repeats channels {sorted(seen.intersection(ids))[:5]} of an earlier "
                                "cluster (allowed only with \"overlapping\": true)")
        if (any(labels[i] < 0 for i in ids) if overlapping else any(labels[i] != k for i in ids)):
            raise _fail(source, f"clusters[{k}].channels disagree with 'labels'"
                                + (" (a channel of a cluster needs its primary cluster, not -1)" if overlapping else ""))
        seen.update(ids)
        ks = c.get("kernel_size")
        if not isinstance(ks, int) or ks < 1 or ks % 2 == 0:
            raise _fail(source, f"clusters[{k}].kernel_size must be a positive odd integer, got {ks!r}")
        profile = c.get("spatial_profile", [])
        clusters.append(Cluster(id=k, channels=tuple(ids), kernel_size=ks,
                                spatial_profile=tuple(float(p) if p is not None else math.nan for p in profile)))
    unassigned = [i for i, v in enumerate(labels) if v >= 0 and i not in seen]
    if unassigned or any(v >= len(clusters) or v < -1 for v in labels):
        raise _fail(source, "field 'labels' refers to clusters that are not listed")
    if overlapping and any(v >= 0 and i not in clusters[v].channels for i, v in enumerate(labels)):
        raise _fail(source, "field 'labels' names, for some channel, a primary cluster that does not contain it")
    return Discovery(
        channels=channels, labels=tuple(labels), clusters=tuple(clusters),
        significance=data.get("significance") or {}, stability=data.get("stability"),
        provenance=data.get("provenance") or {}, settings=data.get("settings") or {},
        overlapping=overlapping,
    )


def load_discovery(path: str | Path) -> Discovery:
    """Read and validate DIR/discovery.json (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "discovery.json"
    if not path.is_file():
        raise SparsenetError(f"no discovery file at {path}; run `sparsenet discover --out DIR` to make DIR/discovery.json")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(str(path), f"not JSON ({exc})") from None
    return validate(data, source=str(path))
