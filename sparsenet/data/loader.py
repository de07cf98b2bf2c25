"""Mini-batches, reproducible given a ``torch.Generator``: over in-memory tensors
(:func:`iterate_batches`) and through a ``DataLoader`` over any map-style ``Dataset``
(:func:`train_loader`, the one place such a loader is built)."""

from __future__ import annotations

from typing import Iterator

import torch

from sparsenet.data.transforms import Augment
from sparsenet.errors import SparsenetError

__all__ = ["iterate_batches", "train_loader", "image_loader", "NormalizedImages"]


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SparsenetError(f"batch_size must be a positive integer, got {batch_size!r}")


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
    _check_batch_size(batch_size)
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
    """In-memory images (and labels) normalised as they are read: a ``Dataset`` that is also
    indexed by a list of indices, one batch at a time (:func:`train_loader` reads it so, one
    slice per batch instead of one item per image)."""

    batch_indexed = True  # dataset[list of indices] is a whole batch (see train_loader)

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, mean, std):
        self.x, self.y, self.mean, self.std = x, y, mean, std

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        from sparsenet.data.transforms import normalize

        xb = normalize(self.x[index], self.mean, self.std)
        return xb if self.y is None else (xb, self.y[index])


class _Shuffled(torch.utils.data.Sampler):
    """One permutation of ``range(n)`` drawn from ``generator`` when iteration starts and
    nothing after (torch's ``RandomSampler`` draws a second, empty one when it runs out, in the
    middle of the augmentation's draws from the same generator)."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def check_num_workers(num_workers) -> None:
    """Refuse a DataLoader worker count that is not an integer from 0 to ``MAX_LOADER_WORKERS``
    (each worker is a forked process: 10^5 of them would start before anything fails)."""
    from sparsenet.limits import MAX_LOADER_WORKERS

    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or not 0 <= num_workers <= MAX_LOADER_WORKERS:
        raise SparsenetError(f"num_workers must be an integer from 0 to {MAX_LOADER_WORKERS} (worker processes; "
                             f"0: load in this process), got {num_workers!r}")


def train_loader(dataset: torch.utils.data.Dataset, batch_size: int, *, shuffle: bool = True,
                 generator: torch.Generator | None = None, sampler: torch.utils.data.Sampler | None = None,
                 drop_last: bool = False, num_workers: int = 0, pin_memory: bool = False,
                 worker_seed: int = 0) -> torch.utils.data.DataLoader:
    """The one place a ``DataLoader`` over a map-style ``dataset`` is built, for training,
    evaluation and recording.

    The indices come from ``sampler`` when given (e.g. a ``DistributedSampler``; the caller sets
    its epoch), else from one permutation per pass drawn from ``generator`` (``shuffle``;
    required then, so the same generator state gives the same batches as
    :func:`iterate_batches`), else in order.  ``batch_size`` of them make a batch.  A dataset
    with ``batch_indexed = True`` (:class:`NormalizedImages`) is read one slice per batch;
    any other is read item by item and collated by torch.  ``num_workers`` and ``pin_memory``
    are the DataLoader's own; ``worker_seed`` seeds its workers (their base seed would
    otherwise be drawn from torch's global RNG and shift the dropout masks of the training).
    """
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    _check_batch_size(batch_size)
    check_num_workers(num_workers)
    if sampler is None:
        if shuffle and not isinstance(generator, torch.Generator):
            raise SparsenetError("shuffle=True needs generator=torch.Generator().manual_seed(SEED) so batches are "
                                 f"reproducible; got generator={generator!r}")
        sampler = _Shuffled(len(dataset), generator) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size, drop_last)
    common = {"num_workers": num_workers, "pin_memory": pin_memory,
              "generator": torch.Generator().manual_seed(worker_seed)}
    if getattr(dataset, "batch_indexed", False):
        return DataLoader(dataset, batch_size=None, sampler=batches, **common)
    return DataLoader(dataset, batch_sampler=batches, **common)


def image_loader(x: torch.Tensor, y: torch.Tensor | None, mean, std, *, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, num_workers: int = 0,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` of normalised batches (``x`` alone, or ``(x, y)``) of in-memory images
    (:class:`NormalizedImages` through :func:`train_loader`)."""
    return train_loader(NormalizedImages(x, y, mean, std), batch_size, shuffle=shuffle, generator=generator,
                        num_workers=num_workers, pin_memory=pin_memory)
