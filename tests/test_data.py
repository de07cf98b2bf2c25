"""Datasets: format round trips on tiny files written here, registered datasets, errors, batching."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsenet.data import (
    Augment,
    Dataset,
    DatasetInfo,
    dataset_names,
    iterate_batches,
    list_datasets,
    load_dataset,
    normalize,
    read_idx,
)
from sparsenet.data.registry import FASHION_MNIST_ROOT
from sparsenet.errors import DataNotFoundError, SparsenetError

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


# ----------------------------------------------------------------------------- writers (the oracle)


def idx_bytes(arr: np.ndarray) -> bytes:
    code = IDX_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_idx_dir(d: Path, gz: bool, n_train=12, n_test=6, hw=(5, 4), seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 3).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 3).astype(np.uint8),
    }
    for role, arr in arrays.items():
        write_idx(d / IDX_NAMES[role], arr, gz)
    return arrays


def make_cifar(d: Path, variant: str, n_per_file=4, seed=0):
    """Write tiny CIFAR binary files; return {'train': (x, y), 'test': (x, y)}."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    if variant == "cifar10":
        files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
        label_bytes, k = 1, 10
    else:
        files = {"train": ["train.bin"], "test": ["test.bin"]}
        label_bytes, k = 2, 100
    out = {}
    for split, names in files.items():
        xs, ys = [], []
        for name in names:
            x = rng.integers(0, 256, (n_per_file, 3, 32, 32), dtype=np.uint8)
            y = rng.integers(0, k, n_per_file).astype(np.uint8)
            coarse = (y // 5).astype(np.uint8)
            labels = y[:, None] if label_bytes == 1 else np.stack([coarse, y], 1)
            (d / name).write_bytes(np.concatenate([labels, x.reshape(n_per_file, -1)], 1).tobytes())
            xs.append(x)
            ys.append(y)
        out[split] = (np.concatenate(xs), np.concatenate(ys).astype(np.int64))
    return out


def write_png(path: Path, arr: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def class_of(ds: Dataset, part: str) -> list[str]:
    return [ds.classes[i] for i in getattr(ds, f"y_{part}").tolist()]


# ----------------------------------------------------------------------------- idx


@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_generic_dtypes_and_ndim(tmp_path, dtype):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((2, 3, 4)) * 50).astype(dtype) if dtype not in (np.uint8,) else rng.integers(
        0, 256, (2, 3, 4), dtype=np.uint8
    )
    for gz in (False, True):
        p = write_idx(tmp_path / f"a{gz}.idx", arr, gz)
        out = read_idx(p)
        assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)
    one_d = np.arange(7, dtype=np.int32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b.idx", one_d, False)), one_d)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir_round_trip(tmp_path, gz):
    arrays = make_idx_dir(tmp_path / "d", gz)
    ds = load_dataset(f"idx:{tmp_path / 'd'}")
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.input_shape == (1, 5, 4) and ds.in_channels == 1 and ds.image_size == (5, 4)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), arrays["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test_labels"])
    assert ds.num_classes == 3 and ds.classes == ("0", "1", "2") and not ds.hflip
    assert str(tmp_path / "d") in ds.source


def test_idx_resize(tmp_path):
    make_idx_dir(tmp_path / "d", False)
    ds = load_dataset(f"idx:{tmp_path / 'd'}", image_size=16)
    assert ds.input_shape == (1, 16, 16)
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0


def test_idx_bad_magic(tmp_path):
    make_idx_dir(tmp_path, False)
    (tmp_path / IDX_NAMES["train_images"]).write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(SparsenetError, match=r"train-images-idx3-ubyte: not an idx file.*magic"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_truncated(tmp_path):
    make_idx_dir(tmp_path, False)
    p = tmp_path / IDX_NAMES["test_images"]
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(SparsenetError, match=r"t10k-images-idx3-ubyte: idx file is truncated.*found"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_truncated_gzip(tmp_path):
    make_idx_dir(tmp_path, True)
    p = tmp_path / (IDX_NAMES["train_labels"] + ".gz")
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(SparsenetError, match=r"train-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_count_mismatch(tmp_path):
    make_idx_dir(tmp_path, False)
    write_idx(tmp_path / IDX_NAMES["train_labels"], np.zeros(11, np.uint8), False)
    with pytest.raises(SparsenetError, match=r"holds 12 images but .*train-labels-idx1-ubyte holds 11 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_missing_file(tmp_path):
    make_idx_dir(tmp_path, False)
    (tmp_path / IDX_NAMES["test_labels"]).unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset(f"idx:{tmp_path}")


# ----------------------------------------------------------------------------- CIFAR


def test_cifar10_round_trip(tmp_path):
    ref = make_cifar(tmp_path / "cifar-10-batches-bin", "cifar10")
    for spec in (f"cifar10:{tmp_path}", f"cifar10:{tmp_path / 'cifar-10-batches-bin'}"):
        ds = load_dataset(spec)
        assert len(ds.x_train) == 20 and len(ds.x_test) == 4
        assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10 and ds.hflip
        assert ds.classes[0] == "airplane"
        np.testing.assert_allclose(ds.x_train.numpy(), ref["train"][0] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(ds.y_train.numpy(), ref["train"][1])
        np.testing.assert_array_equal(ds.y_test.numpy(), ref["test"][1])


def test_cifar100_round_trip_uses_fine_labels(tmp_path):
    ref = make_cifar(tmp_path, "cifar100")
    ds = load_dataset(f"cifar100:{tmp_path}")
    assert ds.num_classes == 100 and len(ds.classes) == 100 and ds.classes[0] == "apple"
    np.testing.assert_array_equal(ds.y_train.numpy(), ref["train"][1])
    np.testing.assert_allclose(ds.x_test.numpy(), ref["test"][0] / 255.0, rtol=1e-6)


def test_cifar_truncated_and_wrong_variant(tmp_path):
    make_cifar(tmp_path / "a", "cifar10")
    p = tmp_path / "a" / "data_batch_3.bin"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(SparsenetError, match=r"data_batch_3.bin: .* not a positive multiple .*3073"):
        load_dataset(f"cifar10:{tmp_path / 'a'}")
    make_cifar(tmp_path / "b", "cifar100")
    with pytest.raises(DataNotFoundError, match=r"expected data_batch_1.bin.*test_batch.bin"):
        load_dataset(f"cifar10:{tmp_path / 'b'}")
    c100 = (tmp_path / "b" / "train.bin").read_bytes()  # CIFAR-100 records under CIFAR-10 names
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / "b" / name).write_bytes(c100)
    with pytest.raises(SparsenetError, match=r"data_batch_1.bin: .*or a CIFAR-100 file \(use cifar100:DIR\)"):
        load_dataset(f"cifar10:{tmp_path / 'b'}")


def test_cifar_refuses_pickle_version(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(SparsenetError, match=r"python-pickle version.*binary version"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "c100").mkdir()
    (tmp_path / "c100" / "meta").write_bytes(b"\x80")
    with pytest.raises(SparsenetError, match=r"refuses.*cifar-100-binary"):
        load_dataset(f"cifar100:{tmp_path / 'c100'}")


# ----------------------------------------------------------------------------- ImageFolder


def test_imagefolder_train_test_gray(tmp_path):
    rng = np.random.default_rng(0)
    ref = {}
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                a = rng.integers(0, 256, (6, 5), dtype=np.uint8)
                write_png(tmp_path / split / c / f"{i}.png", a)
                ref[(split, c, i)] = a
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.classes == ("cat", "dog") and ds.num_classes == 2 and ds.hflip
    assert ds.input_shape == (1, 6, 5) and len(ds.x_train) == 6 and len(ds.x_test) == 4
    assert class_of(ds, "train") == ["cat"] * 3 + ["dog"] * 3
    np.testing.assert_allclose(ds.x_train[0, 0].numpy(), ref[("train", "cat", 0)] / 255.0, rtol=1e-6)


def test_imagefolder_flat_rgb_split_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        for i in range(5):
            write_png(tmp_path / c / f"{i}.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    write_png(tmp_path / "a" / "gray.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))  # mixed -> RGB
    ds = load_dataset(f"imagefolder:{tmp_path}", seed=1, test_fraction=0.4)
    assert ds.in_channels == 3 and ds.num_classes == 3
    assert set(class_of(ds, "test")) == {"a", "b", "c"} and set(class_of(ds, "train")) == {"a", "b", "c"}
    assert len(ds.x_train) + len(ds.x_test) == 16
    big = load_dataset(f"imagefolder:{tmp_path}", image_size=9)
    assert big.input_shape == (3, 9, 9)


def test_imagefolder_mixed_sizes(tmp_path):
    write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "a" / "1.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "b" / "0.png", np.full((6, 3), 255, np.uint8))
    write_png(tmp_path / "b" / "1.png", np.full((4, 4), 255, np.uint8))
    with pytest.raises(SparsenetError, match=r"images differ in size .*pass image_size"):
        load_dataset(f"imagefolder:{tmp_path}", test_fraction=0.5)
    ds = load_dataset(f"imagefolder:{tmp_path}", test_fraction=0.5, image_size=5)
    assert ds.input_shape == (1, 5, 5)


def test_imagefolder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SparsenetError, match=r"empty has no class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    write_png(tmp_path / "x" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "x" / "b").mkdir()
    (tmp_path / "x" / "b" / "readme.txt").write_text("no images")
    with pytest.raises(SparsenetError, match=r"class folder .*b holds no images"):
        load_dataset(f"imagefolder:{tmp_path / 'x'}")
    (tmp_path / "y" / "train" / "a").mkdir(parents=True)
    with pytest.raises(SparsenetError, match=r"has a train/ folder but no test/ folder"):
        load_dataset(f"imagefolder:{tmp_path / 'y'}")
    with pytest.raises(DataNotFoundError, match=r"image folder .*nope does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    write_png(tmp_path / "z" / "train" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "z" / "test" / "a").mkdir(parents=True)
    (tmp_path / "z" / "test" / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SparsenetError, match=r"bad.png: cannot read image"):
        load_dataset(f"imagefolder:{tmp_path / 'z'}")


# ----------------------------------------------------------------------------- npz


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, (10, 3 if layout != "NHW" else 1, 6, 5), dtype=np.uint8)
    x = {"NHW": nchw[:, 0], "NHWC": nchw.transpose(0, 2, 3, 1), "NCHW": nchw}[layout]
    y = np.arange(10) % 2
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:4], y_test=y[:4])
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.input_shape == (nchw.shape[1], 6, 5)
    np.testing.assert_allclose(ds.x_train.numpy(), nchw / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test.numpy(), y[:4])
    assert ds.num_classes == 2 and not ds.hflip


def test_npz_split_and_float(tmp_path):
    x = np.random.default_rng(0).random((20, 4, 4)).astype(np.float32)
    y = np.repeat([0, 1, 2, 3], 5)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", seed=3, test_fraction=0.2)
    assert len(ds.x_test) == 4 and sorted(ds.y_test.tolist()) == [0, 1, 2, 3]
    np.savez(tmp_path / "e.npz", x=x * 255, y=y)
    with pytest.raises(SparsenetError, match=r"float pixel values span .*expected floats in \[0, 1\]"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 3, 3)), y=np.zeros(2))
    with pytest.raises(SparsenetError, match=r"holds arrays \['images', 'y'\]; expected 'x' and 'y'"):
        load_dataset(f"npz:{tmp_path / 'a.npz'}")
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 3, 3), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(SparsenetError, match=r"'x' holds 3 images but 'y' holds 2 labels"):
        load_dataset(f"npz:{tmp_path / 'b.npz'}")
    np.savez(tmp_path / "c.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(SparsenetError, match=r"cannot read as .npz without pickle"):
        load_dataset(f"npz:{tmp_path / 'c.npz'}")
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with pytest.raises(SparsenetError, match=r"d.npz: cannot read"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")
    np.savez(tmp_path / "e.npz", x=np.zeros((4, 3), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(SparsenetError, match=r"images have shape \(4, 3\); expected N x H x W"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}")
    np.savez(tmp_path / "f.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.zeros(4, np.int64), x_test=np.zeros((1, 3, 3)))
    with pytest.raises(SparsenetError, match=r"only one of 'x_test' and 'y_test'"):
        load_dataset(f"npz:{tmp_path / 'f.npz'}")
    np.savez(tmp_path / "g.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 0, 0, 1]))
    with pytest.raises(SparsenetError, match=r"cannot split 4 samples stratified.*class sizes \[3, 1\]"):
        load_dataset(f"npz:{tmp_path / 'g.npz'}")
    with pytest.raises(DataNotFoundError, match=r"npz file .*missing.npz does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")


# ----------------------------------------------------------------------------- registered datasets


def test_mnist5k_shapes_ranges_and_stratified_split():
    ds = load_dataset("mnist5k", seed=0)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10 and not ds.hflip
    assert len(ds.x_train) == 4000 and len(ds.x_test) == 1000
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [100] * 10  # stratified: 500 each, 20 %
    assert torch.bincount(ds.y_train, minlength=10).tolist() == [400] * 10
    assert len(set(ds.y_train[:50].tolist())) > 5  # shuffled, not class-sorted
    mean, std = ds.mean_std()
    assert len(mean) == 1 and 0.05 < mean[0] < 0.3 and 0.2 < std[0] < 0.45
    again = load_dataset("mnist5k", seed=0)
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.y_train, again.y_train)
    other = load_dataset("mnist5k", seed=1)
    assert not torch.equal(ds.x_test, other.x_test)
    assert torch.bincount(other.y_test, minlength=10).min() > 0


def test_digits_and_resize():
    ds = load_dataset("digits", seed=0)
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and float(ds.x_train.max()) == 1.0
    assert set(ds.y_test.tolist()) == set(range(10))
    big = load_dataset("digits", seed=0, image_size=28)
    assert big.input_shape == (1, 28, 28) and torch.equal(big.y_test, ds.y_test)


def test_list_datasets_and_names():
    names = dataset_names()
    assert {"mnist5k", "digits", "fashion-mnist"} <= set(names)
    infos = {i.name: i for i in list_datasets()}
    assert all(isinstance(i, DatasetInfo) for i in infos.values())
    assert infos["mnist5k"].present and infos["digits"].present
    assert "dataset-fashion-mnist" in infos["fashion-mnist"].how_to_get
    assert infos["fashion-mnist"].present == Path(FASHION_MNIST_ROOT, "train-images-idx3-ubyte.gz").exists()


def test_fashion_mnist_missing_gives_how_to_get(tmp_path):
    how = r"looked in .*nowhere for train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"
    with pytest.raises(DataNotFoundError, match=how):
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")
    make_idx_dir(tmp_path / "fm", True, n_train=10, n_test=10)  # a fake one in a given root loads
    ds = load_dataset("fashion-mnist", root=tmp_path / "fm")
    assert ds.num_classes == 10 and ds.classes[-1] == "Ankle boot" and ds.hflip


@pytest.mark.skipif(
    not Path(FASHION_MNIST_ROOT, "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert len(ds.x_train) == 60000 and len(ds.x_test) == 10000 and ds.num_classes == 10
    assert ds.input_shape == (1, 28, 28) and set(ds.y_test.tolist()) == set(range(10))


def test_unknown_name_and_bad_arguments(tmp_path):
    known = r"unknown dataset 'mnist'; registered datasets: mnist5k, digits, fashion-mnist.*idx:DIR.*npz:FILE"
    with pytest.raises(SparsenetError, match=known):
        load_dataset("mnist")
    with pytest.raises(SparsenetError, match=r"unknown dataset 'hdf5:/x'"):
        load_dataset("hdf5:/x")
    with pytest.raises(SparsenetError, match=r"names no path"):
        load_dataset("idx:")
    with pytest.raises(SparsenetError, match=r"image_size must be a positive integer"):
        load_dataset("digits", image_size=0)
    with pytest.raises(SparsenetError, match=r"test_fraction must be strictly between 0 and 1"):
        load_dataset("digits", test_fraction=1.0)
    with pytest.raises(SparsenetError, match=r"'digits' takes no root"):
        load_dataset("digits", root=tmp_path)


# ----------------------------------------------------------------------------- transforms and batching


def test_normalize():
    x = torch.rand(4, 3, 5, 5)
    out = normalize(x, (0.5, 0.4, 0.3), (0.1, 0.2, 0.3))
    torch.testing.assert_close(out[:, 1], (x[:, 1] - 0.4) / 0.2)
    torch.testing.assert_close(normalize(x[0], [0.5] * 3, [2.0] * 3), (x[0] - 0.5) / 2.0)
    with pytest.raises(SparsenetError, match=r"2 mean and 2 std values for 3 channels"):
        normalize(x, (0.1, 0.2), (1.0, 1.0))
    with pytest.raises(SparsenetError, match=r"std must be positive"):
        normalize(x, (0.1,) * 3, (1.0, 0.0, 1.0))


def test_augment_deterministic_and_shape():
    x = torch.rand(8, 3, 6, 7)
    aug = Augment(crop_padding=2, hflip=True)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(Augment()(x, torch.Generator()), x)


def test_augment_matches_reference_crop_and_flip():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    p = 1
    g = torch.Generator().manual_seed(0)
    out = Augment(crop_padding=p, hflip=True)(x, g)
    g = torch.Generator().manual_seed(0)  # replay the draws: dy, dx, flip
    dy, dx = torch.randint(0, 3, (2,), generator=g), torch.randint(0, 3, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(2):
        ref = padded[i, :, dy[i] : dy[i] + 4, dx[i] : dx[i] + 4]
        torch.testing.assert_close(out[i], ref.flip(-1) if flip[i] else ref)
    with pytest.raises(SparsenetError, match=r"crop_padding must be a non-negative integer"):
        Augment(crop_padding=-1)


def test_iterate_batches():
    x, y = torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10)
    plain = list(iterate_batches(x, y, 4, shuffle=False))
    assert [len(b[1]) for b in plain] == [4, 4, 2] and plain[0][1].tolist() == [0, 1, 2, 3]
    assert [len(b[1]) for b in iterate_batches(x, y, 4, shuffle=False, drop_last=True)] == [4, 4]
    s1 = list(iterate_batches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    s2 = list(iterate_batches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(s1, s2))
    seen = torch.cat([b[1] for b in s1])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(xb.flatten(), yb.float()) for xb, yb in s1)  # pairs stay together
    aug = list(iterate_batches(torch.rand(6, 1, 4, 4), y[:6], 4, shuffle=True,
                               generator=torch.Generator().manual_seed(1), augment=Augment(1, True)))  # fmt: skip
    assert aug[0][0].shape == (4, 1, 4, 4)
    with pytest.raises(SparsenetError, match=r"batch_size must be a positive integer, got 0"):
        next(iterate_batches(x, y, 0, shuffle=False))
    with pytest.raises(SparsenetError, match=r"needs generator="):
        next(iterate_batches(x, y, 2, shuffle=True))
    with pytest.raises(SparsenetError, match=r"x holds 10 samples but y holds 9"):
        next(iterate_batches(x, y[:9], 2, shuffle=False))
