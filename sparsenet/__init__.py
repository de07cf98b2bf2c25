"""sparsenet: discover Inception-like topology from the correlation structure of trained layers.

``sparsenet.discover(model, layer, data, **analysis_settings)`` discovers the groups of a layer
of any ``nn.Module`` on a DataLoader, Dataset or tensor (see :mod:`sparsenet.discover`, a
callable module); ``sparsenet.CorrelationAnalyzer`` is the estimator behind it.
"""

from sparsenet.version import __version__

__all__ = ["__version__", "CorrelationAnalyzer", "discover"]


def __getattr__(name):  # lazy, so `import sparsenet` stays light for the CLI
    if name == "CorrelationAnalyzer":
        from sparsenet.analyser import CorrelationAnalyzer

        return CorrelationAnalyzer
    if name == "discover":  # the pipeline module, callable: sparsenet.discover(model, layer, data)
        import importlib

        return importlib.import_module("sparsenet.discover")
    raise AttributeError(f"module 'sparsenet' has no attribute {name!r}")
