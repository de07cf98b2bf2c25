"""The discovery: the value (``value``: groups, kernel sizes, significance, provenance; JSON), its
plots (``plots``) and its Markdown report (``report``)."""

from sparsenet.discovery.value import Discovery, from_labels, load_discovery  # noqa: F401
