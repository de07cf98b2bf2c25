"""Progress bars (tqdm) on stderr, so that they never mix with what a command prints on stdout.

``bar(...)`` shows a bar only where stderr is a terminal (``enabled=None``, the default), or
always / never with ``enabled=True`` / ``False``.  Recording, the permutation null, the stability
halves and training use it; ``sparsenet compare`` reports runs done / total with an ETA.
"""

from __future__ import annotations

import sys
from typing import Iterable


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
        enabled: bool | None = None):
    """A tqdm bar on stderr that disappears when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=None if enabled is None else not enabled)
