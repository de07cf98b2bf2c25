"""Kept so that ``from sparsenet.rules import ...`` (the documented path before the layout of issue 10)
still works; the code lives in :mod:`sparsenet.builder.rules`."""

from sparsenet.builder.rules import *  # noqa: F401,F403
from sparsenet.builder.rules import __all__  # noqa: F401
