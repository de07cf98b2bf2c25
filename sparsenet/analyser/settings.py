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

from sparsenet.analyser.affinity import AFFINITIES
from sparsenet.analyser.clustering import METHODS
from sparsenet.errors import SparsenetError

__all__ = ["AnalysisSettings", "DISCOVER", "GROW", "EXPERIMENT", "AFFINITIES", "METHODS"]


@dataclass(frozen=True)
class AnalysisSettings:
    clusters: int | str = "auto"      # K, or "auto" (eigengap of the normalised Laplacian)
    affinity: str = "pearson_pos"     # see CorrelationAnalyzer (positive part: units that fire together)
    method: str = "spectral"          # spectral | hierarchical | communities
    max_samples: int = 2000           # images recorded (every spatial position is a sample)
    seed: int = 0                     # clustering, null permutations and resampling
    permutations: int = 20            # shuffled-null repeats for the significance test
    resamples: int = 5                # half-splits for the stability score
    cofiring_alpha: float = 0.05      # method "arora": family-wise false-edge rate of the co-firing test

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
        if self.permutations < 0 or self.resamples < 0:
            raise SparsenetError("permutations and resamples must be >= 0 (0 skips the test)")
        if isinstance(self.cofiring_alpha, bool) or not isinstance(self.cofiring_alpha, (int, float)) \
                or not 0 < self.cofiring_alpha < 1:
            raise SparsenetError(f"cofiring_alpha must be a number in (0, 1), got {self.cofiring_alpha!r}")
        return self


DISCOVER = AnalysisSettings()
GROW = replace(DISCOVER, max_samples=1000, resamples=3)
EXPERIMENT = replace(DISCOVER, affinity="pearson_abs", max_samples=1000, permutations=10, resamples=3)
