"""Every analysis default, declared once: the settings a pipeline passes to the analyser.

``AnalysisSettings`` is what ``discover``, ``grow`` and a comparison's ``[candidates.analysis]``
table choose; ``CorrelationAnalyzer``'s own defaults are those of ``DISCOVER``.  The three
presets differ on purpose, and only here:

* ``DISCOVER``: ``sparsenet discover`` and the estimator (2,000 images, 99 permutations: the
  smallest reachable p is 1/100, so a structure can pass 0.01).
* ``GROW``: ``sparsenet grow`` records a new layer at every step, so fewer images and
  resamples per discovery.
* ``EXPERIMENT``: the default of an experiment's analysis table.  Its ``pearson_abs`` and 10
  permutations are what the committed comparisons in docs/results.md ran with; a config that
  wants the discover defaults names them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace

from sparsenet.errors import SparsenetError
from sparsenet.limits import MAX_CHANNELS, MAX_PERMUTATIONS, MAX_RESAMPLES, MAX_SEED

__all__ = ["AnalysisSettings", "DISCOVER", "GROW", "EXPERIMENT", "AFFINITIES", "PEARSON_AFFINITIES", "METHODS",
           "SPATIAL_METHODS", "FIELDS", "ARORA_EXTENT_LEVEL"]

# The names the analyser accepts.  Declared here, beside the defaults, so the command line and the
# experiment schema read them without loading numpy or scipy; the modules that implement them
# (affinity.py, clustering.py, estimator.py) import them from here.
AFFINITIES = ("pearson_abs", "pearson_pos", "cofire_lift", "cofire_jaccard", "arora")
PEARSON_AFFINITIES = ("pearson_abs", "pearson_pos")  # from the correlation alone: no co-firing counts
METHODS = ("spectral", "hierarchical", "communities", "arora")  # arora: analyser/arora.py (overlapping)
SPATIAL_METHODS = ("cluster_maps", "channel_pairs")
# method="arora": overlapping neighbourhoods have no partition for the footprint's cluster maps, so
# their kernel still comes from the reach of the summed profile at this level (the rule before the
# footprint; issue 12 names its bias).  Flat (N x C) layers, Arora's own setting, get 1x1 anyway.
ARORA_EXTENT_LEVEL = 0.1


@dataclass(frozen=True)
class AnalysisSettings:
    clusters: int | str = "auto"      # K, or "auto" (eigenvalues below the shuffled copies' noise edge)
    affinity: str = "pearson_pos"     # see CorrelationAnalyzer (positive part: units that fire together)
    method: str = "spectral"          # spectral | hierarchical | communities | arora
    max_samples: int = 2000           # images recorded (every spatial position is a sample)
    seed: int = 0                     # clustering, null permutations and resampling
    permutations: int = 99            # shuffled-null repeats for the significance test (p >= 1/100)
    resamples: int = 5                # half-splits for the stability score
    max_clusters: int | str = "auto"  # largest K searched: "auto" = half the active channels, or an int
    threshold: float | str = 0.0      # activity threshold: a number, or "quantile:q" (0 < q < 1)
    max_radius: int = 2               # radii of spatial correlation measured (kernels up to 2R+1)
    mass_fraction: float = 0.8        # kernel = smallest window holding this share of the
    #                                   generating filter's mass (analyser/footprint.py)
    graph_threshold: float = 2.0      # lift above which affinity "arora" draws an edge
    spatial_method: str = "cluster_maps"  # cluster_maps (two passes) | channel_pairs (one pass)
    cofiring_alpha: float = 0.05      # method "arora": family-wise false-edge rate of the co-firing test

    def validate(self) -> "AnalysisSettings":
        """Refuse bad settings before any training or recording starts (by name, with what is accepted)."""
        from sparsenet.analyser.footprint import check_mass_fraction
        from sparsenet.stats.inputs import parse_threshold

        if self.affinity not in AFFINITIES:
            raise SparsenetError(f"unknown affinity {self.affinity!r}; accepted: {', '.join(AFFINITIES)}")
        if self.method not in METHODS:
            raise SparsenetError(f"unknown method {self.method!r}; accepted: {', '.join(METHODS)}")
        if self.spatial_method not in SPATIAL_METHODS:
            raise SparsenetError(f"unknown spatial_method {self.spatial_method!r}; accepted: "
                                 f"{', '.join(SPATIAL_METHODS)}")
        if self.clusters != "auto" and not _positive(self.clusters):
            raise SparsenetError(f"clusters must be a positive integer or 'auto', got {self.clusters!r}")
        if self.max_clusters != "auto" and not _positive(self.max_clusters):
            raise SparsenetError(f"max_clusters must be a positive integer or 'auto', got {self.max_clusters!r}")
        if not _positive(self.max_samples) or self.max_samples < 2:
            raise SparsenetError(f"max_samples must be at least 2, got {self.max_samples}")
        for name, most in (("permutations", MAX_PERMUTATIONS), ("resamples", MAX_RESAMPLES)):
            value = getattr(self, name)
            if not _positive(value, minimum=0) or value > most:
                raise SparsenetError(f"{name} must be an integer from 0 to {most:,} (0 skips it), got {value!r}")
        if not _positive(self.max_radius, minimum=0):
            raise SparsenetError(f"max_radius must be an integer >= 0 (0: 1x1 kernels only), got {self.max_radius!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float, str)):
            raise SparsenetError(f"threshold must be a number or 'quantile:q' with 0 < q < 1, got {self.threshold!r}")
        parse_threshold(self.threshold)
        check_mass_fraction(self.mass_fraction)
        check_graph_threshold(self.graph_threshold)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SparsenetError(f"seed must be an integer in 0..{MAX_SEED}, got {self.seed!r}")
        if self.clusters != "auto" and self.clusters > MAX_CHANNELS:
            raise SparsenetError(f"clusters is {self.clusters}; a layer has at most {MAX_CHANNELS:,} channels")
        if isinstance(self.cofiring_alpha, bool) or not isinstance(self.cofiring_alpha, (int, float)) \
                or not 0 < self.cofiring_alpha < 1:
            raise SparsenetError(f"cofiring_alpha must be a number in (0, 1), got {self.cofiring_alpha!r}")
        return self

    def estimator_params(self) -> dict:
        """The ``CorrelationAnalyzer`` parameters these settings ask for."""
        return dict(n_clusters=self.clusters, affinity=self.affinity, method=self.method,
                    max_clusters=self.max_clusters, threshold=self.threshold, max_radius=self.max_radius,
                    mass_fraction=self.mass_fraction, graph_threshold=self.graph_threshold,
                    n_permutations=self.permutations, n_resamples=self.resamples,
                    random_state=self.seed, spatial_method=self.spatial_method,
                    cofiring_alpha=self.cofiring_alpha)


def check_graph_threshold(value) -> float:
    """The lift above which "arora" draws an edge must be a finite number > 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SparsenetError(f"graph_threshold must be a number > 1 (a lift); got {value!r}")
    if not math.isfinite(value) or value <= 1:
        raise SparsenetError(
            f"graph_threshold must be a finite lift > 1 (1 = independent units); got {value!r}"
        )
    return float(value)


def _positive(value, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


FIELDS = tuple(f.name for f in fields(AnalysisSettings))  # what a config may set

DISCOVER = AnalysisSettings()
GROW = replace(DISCOVER, max_samples=1000, resamples=3)
EXPERIMENT = replace(DISCOVER, affinity="pearson_abs", max_samples=1000, permutations=10, resamples=3)
