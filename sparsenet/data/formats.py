"""Readers for standard image-classification file formats, without pickle.

Every reader returns a :class:`RawSplit` of numpy arrays (images N x C x H x W, labels int64)
and leaves scaling to [0, 1], resizing and tensor conversion to :mod:`sparsenet.data.registry`.
Bad files raise :class:`~sparsenet.errors.SparsenetError` naming the file and what was expected;
missing files raise :class:`~sparsenet.errors.DataNotFoundError` naming where we looked.

Formats:

- idx (MNIST / Fashion-MNIST): :func:`read_idx` is the generic reader (any ndim, any of the
  six idx dtypes, gzipped or not); :func:`load_idx_dir` reads the four standard files.
- CIFAR binary: :func:`load_cifar_binary` (CIFAR-10 ``data_batch_*.bin``/``test_batch.bin``,
  CIFAR-100 ``train.bin``/``test.bin``). The python-pickle versions are refused.
- ImageFolder: :func:`load_imagefolder` (``DIR/train/<class>/*``, ``DIR/test/<class>/*`` or
  ``DIR/<class>/*`` with a stratified seeded split), read with Pillow.
- npz: :func:`load_npz` (``x``, ``y`` and optionally ``x_test``, ``y_test``), read with
  ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsenet.data.transforms import resize
from sparsenet.errors import DataNotFoundError, SparsenetError
from sparsenet.limits import MAX_IMAGE_PIXELS

__all__ = [
    "RawSplit",
    "IDX_FILES",
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "IMAGE_EXTENSIONS",
    "read_idx",
    "find_idx_files",
    "load_idx_dir",
    "load_cifar_binary",
    "load_imagefolder",
    "load_npz",
    "to_nchw",
    "stratified_split",
]


@dataclass(frozen=True)
class RawSplit:
    """What a reader found, before scaling: numpy arrays and class names."""

    x_train: np.ndarray  # N x C x H x W, uint8 (0..255) or float
    y_train: np.ndarray  # int64, N
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]  # one name per class index
    source: str  # the file or directory read


# ----------------------------------------------------------------------------- idx

# dtype code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# role -> file name stem; each may be gzipped (".gz") or not
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _read_bytes(path: Path) -> bytes:
    """Whole file, transparently un-gzipped (detected by the gzip magic, not the suffix)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataNotFoundError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise SparsenetError(f"{path} is a directory; expected a file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise SparsenetError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzipped or not) into a native-endian numpy array of its declared shape.

    Header: two zero bytes, a dtype code (0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int,
    0x0D float, 0x0E double), the number of dimensions, then one big-endian uint32 per dimension.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise SparsenetError(f"{path}: {len(data)} bytes is too short for an idx header (4 bytes)")
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES:
        raise SparsenetError(
            f"{path}: not an idx file (magic bytes {data[:4].hex()}); expected 0000 followed by a "
            f"dtype code in {{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} and the number of "
            "dimensions"
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise SparsenetError(f"{path}: idx header declares {ndim} dimensions but is truncated or empty")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a claimed shape cannot overflow
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise SparsenetError(
            f"{path}: idx file is {what}: shape {shape} of {dtype.name} needs {expected} data "
            f"bytes, found {actual}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def find_idx_files(directory: str | os.PathLike) -> dict[str, Path | None]:
    """Map each role in IDX_FILES to the file found in ``directory`` (plain or .gz), or None.

    Also accepts the common variant spelling with a dot (``train-images.idx3-ubyte``).
    """
    directory = Path(directory)
    found: dict[str, Path | None] = {}
    for role, stem in IDX_FILES.items():
        candidates = [stem, stem.replace("-idx", ".idx")]
        found[role] = next(
            (directory / (c + ext) for c in candidates for ext in ("", ".gz") if (directory / (c + ext)).is_file()),
            None,
        )
    return found


def _idx_missing_message(directory: Path, found: dict[str, Path | None]) -> str:
    missing = [IDX_FILES[r] for r, p in found.items() if p is None]
    where = "does not exist" if not directory.exists() else "lacks " + ", ".join(f"{m}[.gz]" for m in missing)
    return (
        f"idx data directory {directory} {where}; expected the four MNIST-format files "
        + ", ".join(f"{s}[.gz]" for s in IDX_FILES.values())
    )


def load_idx_dir(directory: str | os.PathLike, classes: tuple[str, ...] | None = None) -> RawSplit:
    """Read the four standard idx files (official train/test split) from ``directory``."""
    directory = Path(directory).expanduser()
    if directory.is_file():
        raise SparsenetError(f"{directory} is a file; idx:DIR expects a directory holding the four idx files")
    found = find_idx_files(directory)
    if any(p is None for p in found.values()):
        raise DataNotFoundError(_idx_missing_message(directory, found))
    arrays = {role: read_idx(p) for role, p in found.items()}
    parts = []
    for split in ("train", "test"):
        ipath, lpath = found[f"{split}_images"], found[f"{split}_labels"]
        x = to_nchw(arrays[f"{split}_images"], str(ipath))
        y = _check_labels(arrays[f"{split}_labels"], str(lpath))
        if len(x) != len(y):
            raise SparsenetError(
                f"{ipath} holds {len(x)} images but {lpath} holds {len(y)} labels; they must match"
            )
        parts += [x, y]
    classes = classes or _numeric_classes(parts[1], parts[3])
    _check_label_range(parts[1], parts[3], len(classes), str(directory))
    return RawSplit(*parts, classes=classes, source=str(directory.resolve()))


# ----------------------------------------------------------------------------- CIFAR binary

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
    lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
    oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
    train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)

_CIFAR = {
    # variant: (train files, test files, label bytes, number of classes, subfolders, meta file, names)
    "cifar10": (
        [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, 10,
        ("cifar-10-batches-bin",), "batches.meta.txt", CIFAR10_CLASSES,
    ),
    "cifar100": (
        ["train.bin"], ["test.bin"], 2, 100,
        ("cifar-100-binary",), "fine_label_names.txt", CIFAR100_CLASSES,
    ),
}  # fmt: skip

_CIFAR_PICKLE_HINT = {
    "cifar10": ("cifar-10-batches-py", "data_batch_1", "the binary version, cifar-10-binary.tar.gz"),
    "cifar100": ("cifar-100-python", "meta", "the binary version, cifar-100-binary.tar.gz"),
}


def _cifar_dir(directory: Path, variant: str) -> Path:
    train, test, *_rest = _CIFAR[variant]
    subdirs = _CIFAR[variant][4]
    for cand in (directory, *(directory / s for s in subdirs)):
        if all((cand / f).is_file() for f in train + test):
            return cand
    pickle_dir, pickle_file, binary = _CIFAR_PICKLE_HINT[variant]
    if (directory / pickle_dir).is_dir() or (directory / pickle_file).is_file():
        raise SparsenetError(
            f"{directory} holds the CIFAR python-pickle version, which sparsenet refuses to load "
            f"(unpickling can run foreign code); download {binary} from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass that directory"
        )
    if directory.is_file():
        raise SparsenetError(
            f"{directory} is a file; {variant}:DIR expects the extracted directory"
            + (" (extract the archive first)" if directory.name.endswith((".tar.gz", ".tgz", ".tar")) else "")
        )
    looked = ", ".join(str(c) for c in (directory, *(directory / s for s in subdirs)))
    raise DataNotFoundError(
        f"CIFAR binary files not found in {looked}; expected {', '.join(train + test)} "
        f"({binary} from https://www.cs.toronto.edu/~kriz/cifar.html, extracted)"
    )


def _read_cifar_file(path: Path, label_bytes: int, num_classes: int, variant: str) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        other = {1: "a CIFAR-100 file (use cifar100:DIR)", 2: "a CIFAR-10 file (use cifar10:DIR)"}[label_bytes]
        raise SparsenetError(
            f"{path}: {raw.size} bytes is not a positive multiple of the {variant} record size "
            f"({record} bytes: {label_bytes} label byte(s) + 3072 pixel bytes); truncated, or {other}?"
        )
    rec = raw.reshape(-1, record)
    y = rec[:, label_bytes - 1].astype(np.int64)  # CIFAR-100: coarse, fine -> take fine
    if y.max() >= num_classes:
        raise SparsenetError(
            f"{path}: label {int(y.max())} out of range for {variant} ({num_classes} classes); "
            "is this the right CIFAR variant?"
        )
    x = rec[:, label_bytes:].reshape(-1, 3, 32, 32)
    return x, y


def _read_names(path: Path, n: int) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip())
    return names if len(names) == n else None


def load_cifar_binary(directory: str | os.PathLike, variant: str = "cifar10") -> RawSplit:
    """Read CIFAR-10 or CIFAR-100 in the binary format (official train/test split)."""
    if variant not in _CIFAR:
        raise SparsenetError(f"unknown CIFAR variant {variant!r}; expected one of {sorted(_CIFAR)}")
    train, test, label_bytes, k, _subdirs, meta, default_names = _CIFAR[variant]
    d = _cifar_dir(Path(directory).expanduser(), variant)
    parts = []
    for files in (train, test):
        xs, ys = zip(*(_read_cifar_file(d / f, label_bytes, k, variant) for f in files))
        parts += [np.concatenate(xs), np.concatenate(ys)]
    classes = _read_names(d / meta, k) or default_names
    return RawSplit(*parts, classes=classes, source=str(d.resolve()))


# ----------------------------------------------------------------------------- ImageFolder

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def _class_dirs(directory: Path) -> list[Path]:
    dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise SparsenetError(
            f"{directory} has no class folders; ImageFolder layout is DIR/<class>/*.png|jpg "
            "(or DIR/train/<class>/... and DIR/test/<class>/...)"
        )
    return dirs


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(
        p for p in class_dir.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )  # fmt: skip
    if not files:
        raise SparsenetError(
            f"class folder {class_dir} holds no images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
        )
    return files


def _scan(directory: Path) -> dict[str, list[Path]]:
    return {d.name: _image_files(d) for d in _class_dirs(directory)}


def _open_images(paths: list[Path]):
    from PIL import Image, UnidentifiedImageError

    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise SparsenetError(f"{p}: the image header claims {w}x{h} = {w * h:,} pixels; at most "
                                         f"{MAX_IMAGE_PIXELS:,} pixels an image are read (Pillow's decompression-"
                                         "bomb limit)")
                im.load()
                images.append(im.copy())
        except SparsenetError:
            raise
        except Image.DecompressionBombError:
            raise SparsenetError(f"{p}: the image header claims more than {MAX_IMAGE_PIXELS:,} pixels (Pillow's "
                                 "decompression-bomb limit); such images are not read") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
            raise SparsenetError(f"{p}: cannot read image ({str(e)[:200] or type(e).__name__}); expected a "
                                 f"PNG, JPEG or another format Pillow reads") from None
    return images


def _images_to_arrays(paths: list[Path], image_size: int | None) -> list[np.ndarray]:
    """Each image as a uint8 C x H x W array; grayscale if every image is single-band, else RGB."""
    images = _open_images(paths)
    gray = all(im.mode in ("L", "1") for im in images)
    arrays = []
    for im in images:
        a = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)
        arrays.append(a[None] if gray else a.transpose(2, 0, 1))
    if image_size is None:
        sizes = {}
        for p, a in zip(paths, arrays):
            sizes.setdefault(a.shape[1:], p)
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise SparsenetError(
                f"images differ in size ({p1} is {s1[0]}x{s1[1]}, {p2} is {s2[0]}x{s2[1]}); "
                "pass image_size to resize them all to one size"
            )
    return arrays


def load_imagefolder(
    directory: str | os.PathLike, *, seed: int = 0, test_fraction: float = 0.2, image_size: int | None = None
) -> RawSplit:
    """Read an ImageFolder tree with Pillow.

    With ``train/`` and ``test/`` subfolders those are the split (test classes must be among the
    train classes); otherwise ``DIR/<class>/...`` is split stratified by ``seed``/``test_fraction``.
    Images come back uint8 when they all share a size; with mixed sizes (only allowed when
    ``image_size`` is given) they are resized here, one by one, and come back float in [0, 1].
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        if directory.exists():
            raise SparsenetError(f"{directory} is a file; imagefolder:DIR expects a directory")
        raise DataNotFoundError(f"image folder {directory} does not exist")
    has_train, has_test = (directory / "train").is_dir(), (directory / "test").is_dir()
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise SparsenetError(
            f"{directory} has a {present}/ folder but no {absent}/ folder; give both "
            "(DIR/train/<class>/..., DIR/test/<class>/...) or neither (DIR/<class>/...)"
        )
    if has_train:
        train, test = _scan(directory / "train"), _scan(directory / "test")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise SparsenetError(
                f"{directory / 'test'} has class folders {unknown} that are not in "
                f"{directory / 'train'} (classes {sorted(train)})"
            )
        classes = tuple(sorted(train))
        index = {c: i for i, c in enumerate(classes)}
        groups = [[(p, index[c]) for c, ps in split.items() for p in ps] for split in (train, test)]
    else:
        scanned = _scan(directory)
        classes = tuple(sorted(scanned))
        items = [(p, i) for i, c in enumerate(classes) for p in scanned[c]]
        labels = np.array([i for _, i in items])
        tr, te = stratified_split(labels, test_fraction=test_fraction, seed=seed, what=str(directory))
        groups = [[items[i] for i in tr], [items[i] for i in te]]

    all_paths = [p for g in groups for p, _ in g]
    arrays = _images_to_arrays(all_paths, image_size)
    if len({a.shape for a in arrays}) > 1:  # mixed sizes: resize each one now

        import torch

        arrays = [
            resize(torch.from_numpy(a[None].astype(np.float32) / 255.0), image_size)[0].numpy() for a in arrays
        ]
    n_train = len(groups[0])
    x = np.stack(arrays)
    y = np.array([i for g in groups for _, i in g], dtype=np.int64)
    return RawSplit(x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, str(directory.resolve()))


# ----------------------------------------------------------------------------- npz


def load_npz(path: str | os.PathLike, *, seed: int = 0, test_fraction: float = 0.2) -> RawSplit:
    """Read ``x``, ``y`` (and optionally ``x_test``, ``y_test``) from an .npz file, no pickle.

    Without a test part, ``x``/``y`` are split stratified by ``seed``/``test_fraction``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        if path.is_dir():
            raise SparsenetError(f"{path} is a directory; npz:FILE expects an .npz file")
        raise DataNotFoundError(f"npz file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"x", "y"} <= keys:
                raise SparsenetError(
                    f"{path} holds arrays {sorted(keys)}; expected 'x' and 'y' "
                    "(and optionally 'x_test' and 'y_test')"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise SparsenetError(f"{path} has only one of 'x_test' and 'y_test'; give both or neither")
            arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test") if k in keys}
    except SparsenetError:
        raise
    except Exception:  # zipfile and numpy raise many types for foreign bytes; numpy's own text
        # advises allow_pickle, which sparsenet never turns on, so it is not quoted
        raise SparsenetError(
            f"{path}: cannot read as .npz without pickle (empty, truncated, not an .npz archive, or holding "
            "Python objects, which are not loaded); save plain numeric arrays with numpy.savez(file, x=..., y=...)"
        ) from None
    x = to_nchw(arrays["x"], f"{path}['x']")
    y = _check_labels(arrays["y"], f"{path}['y']")
    if len(x) != len(y):
        raise SparsenetError(f"{path}: 'x' holds {len(x)} images but 'y' holds {len(y)} labels; they must match")
    if "x_test" in arrays:
        xt = to_nchw(arrays["x_test"], f"{path}['x_test']")
        yt = _check_labels(arrays["y_test"], f"{path}['y_test']")
        if len(xt) != len(yt):
            raise SparsenetError(
                f"{path}: 'x_test' holds {len(xt)} images but 'y_test' holds {len(yt)} labels; they must match"
            )
        if xt.shape[1:] != x.shape[1:]:
            raise SparsenetError(
                f"{path}: 'x' images are C x H x W = {x.shape[1:]} but 'x_test' images are {xt.shape[1:]}"
            )
    else:
        tr, te = stratified_split(y, test_fraction=test_fraction, seed=seed, what=str(path))
        x, xt, y, yt = x[tr], x[te], y[tr], y[te]
    classes = _numeric_classes(y, yt)
    return RawSplit(x, y, xt, yt, classes, str(path.resolve()))


# ----------------------------------------------------------------------------- shared helpers


def to_nchw(x: np.ndarray, what: str) -> np.ndarray:
    """N x H x W, N x H x W x C (last dim 1 or 3 and 2nd dim not) or N x C x H x W -> N x C x H x W."""
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise SparsenetError(f"{what}: images have dtype {x.dtype}; expected a numeric array (uint8 or float)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise SparsenetError(
            f"{what}: images have shape {x.shape}; expected N x H x W, N x H x W x C or N x C x H x W"
        )
    if x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise SparsenetError(f"{what}: no images (shape {x.shape})")
    return np.ascontiguousarray(x)


def _check_labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise SparsenetError(f"{what}: labels have shape {y.shape}; expected one label per image (1-D)")
    if y.dtype.kind not in "ui":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SparsenetError(f"{what}: labels have dtype {y.dtype}; expected integer class indices")
    if y.size == 0:
        raise SparsenetError(f"{what}: no labels")
    if y.min() < 0:
        raise SparsenetError(f"{what}: negative label {int(y.min())}; expected class indices 0..K-1")
    return y.astype(np.int64)


def _numeric_classes(*ys: np.ndarray) -> tuple[str, ...]:
    """Class names '0'..'K-1' for K = the largest label + 1, refused (before K names are made)
    when K exceeds the number of samples: such labels are not class indices 0..K-1."""
    top, n = int(max(int(y.max()) for y in ys)), sum(len(y) for y in ys)
    if top >= n:
        raise SparsenetError(f"label {top} among {n} samples: expected class indices 0..K-1, and K cannot exceed "
                             "the number of samples")
    return tuple(str(i) for i in range(top + 1))


def _check_label_range(y_train: np.ndarray, y_test: np.ndarray, k: int, what: str) -> None:
    top = int(max(y_train.max(), y_test.max()))
    if top >= k:
        raise SparsenetError(f"{what}: label {top} out of range for {k} classes")


def stratified_split(y: np.ndarray, *, test_fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), stratified by class and reproducible per ``seed``."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise SparsenetError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    idx = np.arange(len(y))
    try:
        tr, te = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    except ValueError as e:
        counts = np.bincount(y)
        raise SparsenetError(
            f"{what}: cannot split {len(y)} samples stratified with test_fraction={test_fraction} "
            f"(class sizes {counts.tolist()}; every class needs at least 2 samples and both parts "
            f"at least one sample per class): {e}"
        ) from None
    return tr, te  # shuffled order, so a prefix of either part has every class
