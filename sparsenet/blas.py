"""One BLAS thread for numpy's small linear algebra (eigendecompositions, per-chunk products).

Those are chains of small calls whose thread synchronisation costs more than it gains at these
sizes, and far more on a machine shared with other jobs (1,024 channels on 2 busy cores: spectrum
0.9 s with two threads, 0.13-0.2 s with one; ``sparsenet bench``, docs/performance.md).  The
controller is made once: building a ``threadpool_limits`` scans the loaded libraries each time
(about 4 ms), more than a small eigendecomposition takes.
"""

from __future__ import annotations

from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread():
    """A context manager limiting numpy's BLAS to one thread inside it."""
    return _controller().limit(limits=1, user_api="blas")
