"""Every analysis default, declared once: the settings a pipeline passes to the analyser.

``AnalysisSettings`` is what ``discover``, ``grow`` and a comparison's ``[candidates.analysis]``
table choose; ``CorrelationAnalyzer``'s own defaults are those of ``DISCOVER``.  The three
presets differ on purpose, and only here:

* ``DISCOVER``: ``sparsenet discover`` and the estimator (2,000 images, 20 permutations).
* ``GROW``: ``sparsenet grow`` records a new layer at every step, so fewer images and
  resamples per discovery.
* ``EXPERIMENT``: the default of an experiment's analysis table.  Its ``pearson_abs`` and 10
  permutations are what the committed comparisons in docs/results.md ran with; a config that
  wants the discover defaults names them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sparsenet.errors import SparsenetError
from sparsenet.limits import MAX_CHANNELS, MAX_SEED

__all__ = ["AnalysisSettings", "DISCOVER", "GROW", "EXPERIMENT", "AFFINITIES", "PEARSON_AFFINITIES", "METHODS"]

# The names the analyser accepts.  Declared here, beside the defaults, so the command line and the
# experiment schema read them without loading numpy or scipy; the modules that implement them
# (affinity.py, clustering.py) import them from here.
AFFINITIES = ("pearson_abs", "pearson_pos", "cofire_lift", "cofire_jaccard", "arora")
PEARSON_AFFINITIES = ("pearson_abs", "pearson_pos")  # from the correlation alone: no co-firing counts
METHODS = ("spectral", "hierarchical", "communities")


@dataclass(frozen=True)
class AnalysisSettings:
    clusters: int | str = "auto"      # K, or "auto" (eigengap of the normalised Laplacian)
    affinity: str = "pearson_pos"     # see CorrelationAnalyzer (positive part: units that fire together)
    method: str = "spectral"          # spectral | hierarchical | communities
    max_samples: int = 2000           # images recorded (every spatial position is a sample)
    seed: int = 0                     # clustering, null permutations and resampling
    permutations: int = 20            # shuffled-null repeats for the significance test
    resamples: int = 5                # half-splits for the stability score
    mass_fraction: float = 0.8        # kernel = smallest window holding this share of the
    #                                   generating filter's mass (analyser/footprint.py)

    def validate(self) -> "AnalysisSettings":
        """Refuse bad settings before any training or recording starts."""
        if self.affinity not in AFFINITIES:
            raise SparsenetError(f"unknown affinity {self.affinity!r}; accepted: {', '.join(AFFINITIES)}")
        if self.method not in METHODS:
            raise SparsenetError(f"unknown method {self.method!r}; accepted: {', '.join(METHODS)}")
        if self.clusters != "auto" and not (isinstance(self.clusters, int) and self.clusters >= 1):
            raise SparsenetError(f"clusters must be a positive integer or 'auto', got {self.clusters!r}")
        if self.max_samples < 2:
            raise SparsenetError(f"max_samples must be at least 2, got {self.max_samples}")
        from sparsenet.analyser.footprint import check_mass_fraction  # (numpy: not at the CLI's import)

        check_mass_fraction(self.mass_fraction)
        if self.permutations < 0 or self.resamples < 0:
            raise SparsenetError("permutations and resamples must be >= 0 (0 skips the test)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SparsenetError(f"seed must be an integer in 0..{MAX_SEED}, got {self.seed!r}")
        if self.clusters != "auto" and self.clusters > MAX_CHANNELS:
            raise SparsenetError(f"clusters is {self.clusters}; a layer has at most {MAX_CHANNELS:,} channels")
        return self


DISCOVER = AnalysisSettings()
GROW = replace(DISCOVER, max_samples=1000, resamples=3)
EXPERIMENT = replace(DISCOVER, affinity="pearson_abs", max_samples=1000, permutations=10, resamples=3)
