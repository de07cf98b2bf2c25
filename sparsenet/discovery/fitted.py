"""A discovery together with the fitted analyser it came from, and the run directory it writes.

``from_analyzer`` turns an already fitted :class:`~sparsenet.analyser.CorrelationAnalyzer` into
a :class:`FittedDiscovery` without fitting again.  It *is* a
:class:`~sparsenet.discovery.value.Discovery` (same fields, same JSON) that also keeps the
analyser, so ``save(DIR)`` can write everything ``sparsenet discover`` writes:

* ``discovery.json``: the value (``discovery.value``), written last: its presence marks a whole run;
* ``report.md`` and the plots (``discovery.report``, ``discovery.plots``);
* the raw artefacts, for re-analysis without recording again (numpy files, no pickle):
  ``affinity.npy`` (C x C), ``spectrum.npy`` (ascending eigenvalues of the normalised
  Laplacian, when computed) and ``stats.npz`` (the ``ChannelStats``, with its spatial rings
  when the run kept them; ``sparsenet discover --stats DIR/stats.npz`` reads it).

The files are written into a staging directory and moved into place, all or nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sparsenet.discovery.value import Discovery, from_labels

__all__ = ["FittedDiscovery", "from_analyzer", "write_run", "RAW_FILES", "RUN_FILES"]

RAW_FILES = ("affinity.npy", "spectrum.npy", "stats.npz")
# what a discover run writes into its directory; a new run removes what an earlier one left
RUN_FILES = ("discovery.json", "report.md", "correlation.png", "spectrum.png", "dendrogram.png",
             "spatial_profiles.png", "cluster_sizes.png", "membership.png") + RAW_FILES


@dataclass(frozen=True)
class FittedDiscovery(Discovery):
    """A ``Discovery`` that keeps the fitted analyser (and the statistics to save beside it)."""

    analyzer: Any = field(default=None, repr=False, compare=False)  # the fitted CorrelationAnalyzer
    stats: Any = field(default=None, repr=False, compare=False)     # ChannelStats for stats.npz (None: analyzer.stats_)
    command: str | None = field(default=None, repr=False, compare=False)  # the command line, for the report

    def save(self, path: str | os.PathLike) -> Path:
        """``path`` ending in ``.json``: the discovery file alone (as ``Discovery.save``); else a
        run directory with everything ``sparsenet discover`` writes (see the module docstring)."""
        if str(path).endswith(".json"):
            return super().save(path)
        return write_run(self.analyzer, self, path, command=self.command, stats=self.stats)

    def as_discovery(self) -> Discovery:
        """The plain value, without the analyser."""
        return Discovery(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Discovery)})


def from_analyzer(analyzer, *, settings: Mapping[str, Any] | None = None,
                  provenance: Mapping[str, Any] | None = None, stats=None,
                  command: str | None = None) -> FittedDiscovery:
    """The discovery of a fitted analyser (nothing is fitted again)."""
    profiles = analyzer.spatial_profiles_ if analyzer.spatial_profiles_ is not None else None
    fits = getattr(analyzer, "footprints_", None)
    base = from_labels(analyzer.labels_, analyzer.kernel_sizes_, profiles,
                       footprints=[f.to_dict(analyzer.kernel_set_) for f in fits] if fits is not None else None,
                       neighbourhoods=analyzer.neighbourhoods_ if getattr(analyzer, "overlapping_", False) else None,
                       significance=dict(analyzer.significance_) if analyzer.significance_ else {},
                       stability=analyzer.stability_,
                       cluster_stability=getattr(analyzer, "cluster_stability_", None),
                       provenance=dict(provenance or {}),
                       settings=dict(settings or {}))
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(Discovery)}
    return FittedDiscovery(**values, analyzer=analyzer, stats=stats, command=command)


def _write_raw(analyzer, stats, out: Path) -> None:
    np.save(out / "affinity.npy", np.asarray(analyzer.affinity_, dtype=np.float64), allow_pickle=False)
    if getattr(analyzer, "eigenvalues_", None) is not None:
        np.save(out / "spectrum.npy", np.asarray(analyzer.eigenvalues_, dtype=np.float64), allow_pickle=False)
    stats = stats if stats is not None else getattr(analyzer, "stats_", None)
    if stats is not None:
        stats.save(out / "stats.npz")


def write_run(analyzer, discovery: Discovery, out_dir: str | os.PathLike, command: str | None = None,
              stats=None) -> Path:
    """Write discovery.json, the plots, report.md and the raw artefacts into out_dir, all or nothing.

    Files of an earlier run that this one does not write (a figure that no longer applies) are
    removed, so the directory never mixes two runs; staging folders of interrupted runs go too."""
    from sparsenet.discovery.plots import plot_discovery
    from sparsenet.discovery.report import write_report
    from sparsenet.io import check_out_dir, clean_stale, staging_prefix

    out = check_out_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent, out.name)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(out.name), suffix=".staging", dir=out.parent))
    try:
        title = discovery.provenance.get("layer") or discovery.provenance.get("activations")
        plots = plot_discovery(analyzer, staging, title=title)
        write_report(discovery, {k: Path(p).name for k, p in plots.items()}, staging, command=command)
        _write_raw(analyzer, stats, staging)
        discovery.save(staging / "discovery.json")  # last: its presence marks a finished run
        out.mkdir(exist_ok=True)
        written = {item.name for item in staging.iterdir()}
        for name in written | set(RUN_FILES):
            clean_stale(out, name)  # temporary files a killed writer left beside the results
        for item in sorted(staging.iterdir(), key=lambda p: p.name == "discovery.json"):
            if item.name == "discovery.json":
                for name in set(RUN_FILES) - written:
                    (out / name).unlink(missing_ok=True)
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
