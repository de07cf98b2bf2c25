"""The fitted state of the streaming statistics, and the error for reading it before any data."""

from __future__ import annotations

from sparsenet.errors import SparsenetError


class NotFittedError(SparsenetError, AttributeError):
    """A fitted attribute was read before ``partial_fit`` saw any data."""
