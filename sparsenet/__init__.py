"""sparsenet: discover Inception-like topology from the correlation structure of trained layers."""

__version__ = "0.1.0"

__all__ = ["__version__", "CorrelationAnalyzer"]


def __getattr__(name):  # lazy, so `import sparsenet` stays light for the CLI
    if name == "CorrelationAnalyzer":
        from sparsenet.analyser import CorrelationAnalyzer

        return CorrelationAnalyzer
    raise AttributeError(f"module 'sparsenet' has no attribute {name!r}")
