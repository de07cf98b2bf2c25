"""The discovery file: what `sparsenet discover` found, as versioned JSON.

A discovery is the plain value that joins the analyser to the builder: which channels of a
layer fire together (clusters) and how far each cluster's correlation spreads in space (its
kernel size), with the evidence (significance, stability) and where it came from (provenance).
``load_discovery`` validates a file before anything is built from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, jsonable, read_json
from sparsenet.limits import MAX_CHANNELS, MAX_KERNEL_SIZE

FORMAT = "sparsenet.discovery"
VERSION = 1
KERNEL_SIZES = (1, 3, 5, 7)


@dataclass(frozen=True)
class Cluster:
    id: int                       # 0..K-1, in the order of `clusters`
    channels: tuple[int, ...]     # indices of the layer's channels in this cluster
    kernel_size: int              # odd spatial extent measured for the cluster (1, 3, 5, ...)
    spatial_profile: tuple[float, ...] = ()  # within-cluster correlation at radius r = 0..R
    footprint: dict[str, Any] = field(default_factory=dict)  # the fit behind kernel_size (optional):
    #   profile (cross-pair ring profile, r = 0..2R+1), model (fitted), candidate, mass_fractions
    #   ({"1": .., "3": ..}), residual, runner_up, runner_up_residual, margin
    stability: float | None = None  # mean best-match Jaccard across resampled halves (Hennig 2007)

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
             "kernel_size": c.kernel_size, "spatial_profile": list(c.spatial_profile), "stability": c.stability,
             **({"footprint": jsonable(c.footprint)} if c.footprint else {})}
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


def from_labels(labels, kernel_sizes, spatial_profiles=None, footprints=None, *, neighbourhoods=None,
                cluster_stability=None, **extra) -> Discovery:
    """A Discovery from per-channel labels (-1 inactive) and per-cluster kernel sizes (and,
    optionally, each cluster's footprint fit as a dict and its stability, ``cluster_stability``).

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
    # a kernel past the map's reach equals one of the reach (its extra weights only see padding)
    reach, _ = _largest_kernel(extra.get("provenance") or {})
    fits = list(footprints) if footprints is not None else [{}] * n_clusters
    if cluster_stability is not None and len(cluster_stability) != n_clusters:
        raise SparsenetError(f"cluster_stability has {len(cluster_stability)} values for {n_clusters} clusters")
    stable = [None] * n_clusters if cluster_stability is None else \
        [None if v is None or not math.isfinite(v) else float(v) for v in cluster_stability]
    clusters = tuple(
        Cluster(id=k, channels=members[k],
                kernel_size=min(int(kernel_sizes[k]), max(reach, 1)),
                spatial_profile=tuple(float(p) for p in profiles[k]),
                footprint=dict(fits[k] or {}), stability=stable[k])
        for k in range(n_clusters)
    )
    if "stability" in extra and extra["stability"] is not None and not math.isfinite(extra["stability"]):
        extra = {**extra, "stability": None}  # undefined (e.g. degenerate halves): recorded as not measured
    discovery = Discovery(channels=len(labels), labels=tuple(labels), clusters=clusters, **extra)
    return validate(discovery.to_dict(), source="<labels>")


def _fail(source: str, what: str) -> SparsenetError:
    return SparsenetError(f"{source} is not a valid discovery file: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _largest_kernel(provenance: dict) -> tuple[int, str]:
    """The largest kernel the analysed layer allows, or MAX_KERNEL_SIZE when the file does not
    say the layer's shape.  On an H x W map a centred ('same'-padded) k x k window reaches every
    pixel once k = 2 max(H, W) - 1; a larger one only ever multiplies padding.  Flat N x C
    activations have no map: only 1."""
    shape = provenance.get("layer_shape")
    if isinstance(shape, list) and all(_is_int(v) and v > 0 for v in shape):
        if len(shape) == 1:
            return 1, f"the layer is flat (layer_shape {shape}):"
        if len(shape) == 3:
            reach = 2 * max(shape[1], shape[2]) - 1
            return min(reach, MAX_KERNEL_SIZE), f"on the layer's {shape[1]}x{shape[2]} map,"
    return MAX_KERNEL_SIZE, "the file gives no layer_shape:"


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
    if not _is_int(channels) or not 1 <= channels <= MAX_CHANNELS:
        raise _fail(source, f"field 'channels' must be an integer in 1..{MAX_CHANNELS}, got {str(channels)[:40]}")
    if not isinstance(labels, list) or len(labels) != channels or not all(_is_int(v) for v in labels):
        raise _fail(source, f"field 'labels' must be a list of {channels} integers (not booleans)")
    for key in ("provenance", "significance", "settings"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise _fail(source, f"field {key!r} must be an object or null, got {type(data[key]).__name__}")
    stability = data.get("stability")
    if stability is not None and not (_is_number(stability) and -1.0 <= stability <= 1.0):
        raise _fail(source, f"field 'stability' must be null or a number in [-1, 1] (an adjusted Rand index), "
                            f"got {str(stability)[:40]}")
    largest, why = _largest_kernel(data.get("provenance") or {})
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
        if not _is_int(c.get("id")) or c.get("id") != k:
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
        if "size" in c and (not _is_int(c["size"]) or c["size"] != len(ids)):
            raise _fail(source, f"clusters[{k}].size is {str(c['size'])[:40]} but it lists {len(ids)} channels")
        seen.update(ids)
        ks = c.get("kernel_size")
        if not _is_int(ks) or ks < 1 or ks % 2 == 0:
            raise _fail(source, f"clusters[{k}].kernel_size must be a positive odd integer, got {str(ks)[:40]}")
        if ks > largest:
            raise _fail(source, f"clusters[{k}].kernel_size is {ks}; {why} odd sizes up to {largest} are accepted, larger ones "
                                "only multiply padding")
        profile = c.get("spatial_profile", [])
        if profile is None:
            profile = []
        if not isinstance(profile, list) or not all(p is None or _is_number(p) for p in profile):
            raise _fail(source, f"clusters[{k}].spatial_profile must be a list of numbers (or nulls)")
        footprint = c.get("footprint") or {}
        if not isinstance(footprint, dict):
            raise _fail(source, f"clusters[{k}].footprint must be an object, got {type(footprint).__name__}")
        stable = c.get("stability")  # absent in files written before 2026-12-08
        if stable is not None and not (_is_number(stable) and 0.0 <= stable <= 1.0):
            raise _fail(source, f"clusters[{k}].stability must be null or a number in [0, 1] (a mean Jaccard "
                                f"similarity), got {str(stable)[:40]}")
        clusters.append(Cluster(id=k, channels=tuple(ids), kernel_size=ks,
                                spatial_profile=tuple(float(p) if p is not None else math.nan for p in profile),
                                footprint=footprint, stability=stable))
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
    return validate(read_json(path, "a valid discovery file"), source=str(path))
