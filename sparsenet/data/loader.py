"""Mini-batch iteration over in-memory tensors, reproducible given a ``torch.Generator``."""

from __future__ import annotations

from typing import Iterator

import torch

from sparsenet.data.transforms import Augment
from sparsenet.errors import SparsenetError

__all__ = ["iterate_batches"]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    augment: Augment | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An iterator of ``(x_batch, y_batch)`` pairs covering ``x``/``y`` once (arguments checked now).

    ``shuffle`` draws one permutation from ``generator``; ``augment`` is applied to each batch
    with the same generator. Both need a generator (no global RNG), so the same generator state
    gives the same batches. The last, smaller batch is kept unless ``drop_last``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SparsenetError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(x) != len(y):
        raise SparsenetError(f"x holds {len(x)} samples but y holds {len(y)}; they must match")
    if len(x) == 0:
        raise SparsenetError("no samples to iterate over (x and y are empty)")
    if (shuffle or augment is not None) and not isinstance(generator, torch.Generator):
        raise SparsenetError(
            "shuffle=True or augment needs generator=torch.Generator().manual_seed(SEED) "
            f"so batches are reproducible; got generator={generator!r}"
        )
    return _batches(x, y, batch_size, shuffle, generator, augment, drop_last)


def _batches(x, y, batch_size, shuffle, generator, augment, drop_last):
    n = len(x)
    order = torch.randperm(n, generator=generator, device=generator.device).to(x.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx.to(y.device)]
        if augment is not None:
            xb = augment(xb, generator)
        yield xb, yb
