"""Kept so that ``from sparsenet.spec import ...`` (the documented path before the layout of issue 10)
still works; the code lives in :mod:`sparsenet.builder.spec`."""

from sparsenet.builder.spec import *  # noqa: F401,F403
from sparsenet.builder.spec import __all__  # noqa: F401
