"""The analyser: channel clustering by co-firing (Arora et al. 2014) and spatial extent per cluster.

Modules, one concept each: ``settings`` (every analysis default, once), ``affinity`` (how
strongly channels fire together), ``clustering`` (clusters and the choice of K), ``spatial``
(cluster extent -> kernel size), ``significance`` (shuffled null and split-half stability) and
``estimator`` (``CorrelationAnalyzer``, the scikit-learn style estimator that ties them together).
"""

__all__ = ["CorrelationAnalyzer", "kernel_size_from_profile"]


def __getattr__(name):  # lazy, so the CLI can read the settings without loading the estimator
    if name == "CorrelationAnalyzer":
        from sparsenet.analyser.estimator import CorrelationAnalyzer

        return CorrelationAnalyzer
    if name == "kernel_size_from_profile":
        from sparsenet.analyser.spatial import kernel_size_from_profile

        return kernel_size_from_profile
    raise AttributeError(f"module 'sparsenet.analyser' has no attribute {name!r}")
