"""Mini-batch iteration over in-memory tensors, reproducible given a ``torch.Generator``."""

from __future__ import annotations

from typing import Iterator

import torch

from sparsenet.data.transforms import Augment
from sparsenet.errors import SparsenetError

__all__ = ["iterate_batches", "image_loader", "NormalizedImages"]


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


class NormalizedImages(torch.utils.data.Dataset):
    """In-memory images (and labels) normalised batch by batch as they are read: a ``Dataset``
    indexed by a list of indices (one batch per index list, see :func:`image_loader`)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, mean, std):
        self.x, self.y, self.mean, self.std = x, y, mean, std

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        from sparsenet.data.transforms import normalize

        xb = normalize(self.x[index], self.mean, self.std)
        return xb if self.y is None else (xb, self.y[index])


class _Batches(torch.utils.data.Sampler):
    """Index lists of ``batch_size``, in order or in one permutation drawn from ``generator``
    when iteration starts (the same draws as :func:`iterate_batches`)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None):
        self.n, self.batch_size, self.shuffle, self.generator = n, batch_size, shuffle, generator

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            yield order[start:start + self.batch_size]


def image_loader(x: torch.Tensor, y: torch.Tensor | None, mean, std, *, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, num_workers: int = 0,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` of normalised batches (``x`` alone, or ``(x, y)``) of in-memory images.

    ``shuffle`` draws one permutation per pass from ``generator`` (required then), so the same
    generator state gives the same batches as :func:`iterate_batches`.  Workers and pinned
    memory (for a CUDA device) are the DataLoader's own.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SparsenetError(f"batch_size must be a positive integer, got {batch_size!r}")
    if shuffle and not isinstance(generator, torch.Generator):
        raise SparsenetError("shuffle=True needs generator=torch.Generator().manual_seed(SEED) so batches are "
                             f"reproducible; got generator={generator!r}")
    # the loader's own generator seeds its workers; without one, each pass would draw that seed
    # from torch's global RNG and shift the dropout masks of the training that follows
    return torch.utils.data.DataLoader(NormalizedImages(x, y, mean, std), batch_size=None,
                                       sampler=_Batches(len(x), batch_size, shuffle, generator),
                                       num_workers=num_workers, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(0))
