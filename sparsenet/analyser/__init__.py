"""Channel clustering by co-firing (Arora et al. 2014) and spatial extent per cluster.

Modules, one concept each: ``affinity`` (how strongly channels fire together), ``clustering``
(clusters and the choice of K), ``spatial`` (cluster extent -> kernel size), ``significance``
(shuffled null and split-half stability) and ``estimator`` (``CorrelationAnalyzer``, the
scikit-learn style estimator that ties them together).
"""

from sparsenet.analyser.estimator import CorrelationAnalyzer
from sparsenet.analyser.spatial import kernel_size_from_profile

__all__ = ["CorrelationAnalyzer", "kernel_size_from_profile"]
