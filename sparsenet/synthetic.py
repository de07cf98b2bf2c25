"""Kept so that ``from sparsenet.synthetic import planted_groups`` (the README's example before the
layout of issue 10) still works; the generators live in :mod:`sparsenet.data.synthetic`."""

from sparsenet.data.synthetic import *  # noqa: F401,F403
from sparsenet.data.synthetic import __all__  # noqa: F401
