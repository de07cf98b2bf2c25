"""What training and growth read: the splits as torch ``Dataset``s (or ``DataLoader``s), streamed.

A built-in :class:`~sparsenet.data.registry.Dataset` becomes one with :func:`as_training_data`:
its splits are wrapped in :class:`~sparsenet.data.loader.NormalizedImages`, normalised with the
training split's mean and std as they are read.  A user's own data becomes one with
:meth:`TrainingData.from_torch`: any map-style ``Dataset`` of ``(image, label)`` pairs (read
through :func:`~sparsenet.data.loader.train_loader`: seeded shuffling, ``batch_size`` from the
training recipe, workers, pinned memory) or any ``DataLoader`` of ``(images, labels)`` batches
(used as it is: its own batches and order).  Nothing needs the whole dataset in memory; the
images must already be normalised the way the model should see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sparsenet.errors import SparsenetError

__all__ = ["TrainingData", "as_training_data", "split_batches", "split_length"]

_ACCEPTED = ("a sparsenet.data.Dataset (load_dataset) or a TrainingData "
             "(TrainingData.from_torch(train=..., test=..., num_classes=...) over torch Datasets or DataLoaders)")


@dataclass(frozen=True, eq=False)
class TrainingData:
    """The splits a training reads and what a network must know about them."""

    name: str                        # recorded in metrics and checkpoints (a resume checks it)
    train: Any                       # Dataset of (image, label) (batched and shuffled by sparsenet) or DataLoader (as is)
    test: Any                        # Dataset or DataLoader of (image, label): the accuracy reported
    input_shape: tuple[int, int, int]  # C, H, W of one image
    num_classes: int                 # outputs of the classifier head
    val: Any = None                  # optional validation split (model selection, early stopping)
    hflip: bool = False              # whether TrainConfig.augment may flip images horizontally
    normalization: dict | None = None  # {"mean", "std"} sparsenet applied (built-in data); None: as given
    source: str = ""                 # where the data came from, for provenance

    @property
    def in_channels(self) -> int:
        return int(self.input_shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.input_shape[1]), int(self.input_shape[2])

    @classmethod
    def from_torch(cls, train, test, *, num_classes: int, val=None, name: str = "user data",
                   hflip: bool = False, source: str = "") -> "TrainingData":
        """Training data from torch ``Dataset``s or ``DataLoader``s of ``(image, label)``; the
        image shape is read from the first training item."""
        for split, value in (("train", train), ("test", test), ("val", val)):
            if value is None and split != "val":
                raise SparsenetError(f"TrainingData.from_torch: no {split} split given; accepted: {_SPLIT}")
            if value is not None:
                _check_split(value, split)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise SparsenetError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        x = _first_image(train)
        if x.ndim != 3:
            raise SparsenetError(f"the training images have shape {tuple(x.shape)}; accepted: C x H x W per image "
                                 "(batches N x C x H x W)")
        return cls(name=str(name), train=train, test=test, val=val, input_shape=tuple(int(s) for s in x.shape),
                   num_classes=num_classes, hflip=bool(hflip), source=source or _describe(train))


_SPLIT = "a map-style torch Dataset of (image, label) pairs or a DataLoader of (images, labels) batches"


def _check_split(value, split: str) -> None:
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(value, IterableDataset) or not isinstance(value, (Dataset, DataLoader)):
        raise SparsenetError(f"the {split} split is a {type(value).__name__}; accepted: {_SPLIT} "
                             "(an IterableDataset goes inside a DataLoader)")


def _describe(value) -> str:
    inner = getattr(value, "dataset", None)
    return type(value).__name__ + (f" of {type(inner).__name__}" if inner is not None else "")


def _pair(item, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor)):
        raise SparsenetError(f"{what} is a {type(item).__name__}; accepted: an (images, labels) pair of tensors")
    y = torch.as_tensor(item[1])
    return item[0], y


def _first_image(split) -> torch.Tensor:
    from torch.utils.data import DataLoader

    if isinstance(split, DataLoader):
        xb, _ = _pair(next(iter(split)), "the first batch of the training DataLoader")
        return xb[0]
    if len(split) == 0:
        raise SparsenetError("the training split is empty")
    x, _ = _pair(split[0], "item 0 of the training Dataset")
    return x


def as_training_data(data) -> TrainingData:
    """``data`` as :class:`TrainingData`: a built-in ``Dataset`` is wrapped (normalised with its
    training split's mean and std); a ``TrainingData`` is returned as it is."""
    from sparsenet.data.loader import NormalizedImages
    from sparsenet.data.registry import Dataset

    if isinstance(data, TrainingData):
        return data
    if not isinstance(data, Dataset):
        raise SparsenetError(f"cannot train on a {type(data).__name__}; accepted: {_ACCEPTED}")
    mean, std = data.mean_std()
    val = NormalizedImages(data.x_val, data.y_val, mean, std) if data.x_val is not None else None
    return TrainingData(name=data.name, train=NormalizedImages(data.x_train, data.y_train, mean, std),
                        test=NormalizedImages(data.x_test, data.y_test, mean, std), val=val,
                        input_shape=tuple(data.input_shape), num_classes=data.num_classes, hflip=data.hflip,
                        normalization={"mean": list(mean), "std": list(std)}, source=data.source)


def split_batches(split, batch_size: int, *, generator: torch.Generator | None = None, shuffle: bool = False,
                  sampler=None, num_workers: int = 0, pin_memory: bool = False, worker_seed: int = 0):
    """The batches of one split: a ``DataLoader`` as it is, or a ``Dataset`` through
    :func:`~sparsenet.data.loader.train_loader` (which takes the sampler, e.g. a DistributedSampler)."""
    from torch.utils.data import DataLoader

    from sparsenet.data.loader import train_loader

    if isinstance(split, DataLoader):
        return split
    return train_loader(split, batch_size, shuffle=shuffle, generator=generator, sampler=sampler,
                        num_workers=num_workers, pin_memory=pin_memory, worker_seed=worker_seed)


def pairs(batches, what: str):
    """(images, labels) of each batch, with a clear error for anything else."""
    for i, item in enumerate(batches):
        yield _pair(item, f"batch {i} of the {what} split")


def split_length(split) -> int | None:
    """How many images a split holds (None when it cannot say)."""
    try:
        return len(split.dataset) if hasattr(split, "dataset") else len(split)
    except TypeError:
        return None
