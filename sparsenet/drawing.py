"""Kept so that ``from sparsenet.drawing import ...`` (the documented path before the layout of issue 10)
still works; the code lives in :mod:`sparsenet.builder.drawing`."""

from sparsenet.builder.drawing import *  # noqa: F401,F403
from sparsenet.builder.drawing import __all__  # noqa: F401
