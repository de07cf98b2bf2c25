"""Property-based fuzzing of every loader and parser that reads a user's file.

Each test feeds mutated copies of a valid file (bytes flipped, inserted, deleted, truncated;
JSON and TOML values swapped for others) and wholly random inputs to one loader.  The property:
the loader returns a valid value or raises the project's own ``SparsenetError``; any other
exception is a bug.  The default profile runs a few examples per loader (the suite stays fast);
``pytest tests/test_fuzz.py --hypothesis-profile=long`` (or ``SPARSENET_FUZZ=long``) runs 1,000
each (docs/reliability.md has the figures).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import struct
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sparsenet.errors import SparsenetError

ROOT = Path(__file__).resolve().parents[1]


# -- strategies --------------------------------------------------------------------------------

def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    """``base`` with 1-6 random edits: a byte changed, bytes inserted, a slice deleted, truncated."""
    n = max(len(base), 1)
    op = st.one_of(
        st.tuples(st.just("set"), st.integers(0, n - 1), st.binary(min_size=1, max_size=1)),
        st.tuples(st.just("insert"), st.integers(0, n), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.integers(0, n - 1), st.integers(1, 64)),
        st.tuples(st.just("truncate"), st.integers(0, n), st.just(0)),
    )

    def apply(ops) -> bytes:
        data = bytearray(base)
        for kind, pos, arg in ops:
            pos = min(pos, len(data))
            if kind == "set" and pos < len(data):
                data[pos:pos + 1] = arg
            elif kind == "insert":
                data[pos:pos] = arg
            elif kind == "delete":
                del data[pos:pos + arg]
            else:
                del data[pos:]
        return bytes(data)

    return st.lists(op, min_size=1, max_size=6).map(apply)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, 1, -1, 2**31, 10**15])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_tree(draw, base):
    """``base`` (a JSON-like tree) with 1-4 values replaced by random ones, or keys removed."""
    tree = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return tree


def _dumps(tree) -> str:
    return json.dumps(tree, allow_nan=True)


def _holds(call):
    """Run ``call``: a value, or our own error; anything else fails the property."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return call()
    except SparsenetError:
        return None


@contextlib.contextmanager
def _scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# -- valid files to mutate ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    from sparsenet.cli import main

    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 4, 4)).astype(np.float32)
    x[:, :3] += rng.normal(size=(60, 1, 4, 4)).astype(np.float32)
    np.save(root / "acts.npy", x)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["discover", "--activations", str(root / "acts.npy"), "--clusters", "2", "--permutations",
                     "0", "--resamples", "0", "--out", str(root / "disc")]) == 0
        assert main(["build", "--discovery", str(root / "disc"), "--out", str(root / "spec.json")]) == 0
    from sparsenet.models import get_model
    from sparsenet.training.checkpoint import save_checkpoint

    model = get_model("plaincnn", width=2, num_classes=2, in_channels=1)
    save_checkpoint(root / "ck.pt", model="plaincnn", model_kwargs={"width": 2, "num_classes": 2, "in_channels": 1},
                    state_dict=model.state_dict(), epoch=1)
    torch.save(torch.from_numpy(x[:8]), root / "acts.pt")
    np.savez(root / "acts.npz", activations=x[:8])
    return {
        "root": root,
        "discovery": json.loads((root / "disc" / "discovery.json").read_text()),
        "spec": json.loads((root / "spec.json").read_text()),
        "toml": (ROOT / "experiments" / "smoke.toml").read_bytes(),
        "checkpoint": (root / "ck.pt").read_bytes(),
        "npy": (root / "acts.npy").read_bytes()[:2048],
        "pt": (root / "acts.pt").read_bytes(),
        "npz": (root / "acts.npz").read_bytes(),
    }


# -- discovery ---------------------------------------------------------------------------------

@given(data=st.data())
def test_discovery_loader(valid, data):
    from sparsenet.build import build
    from sparsenet.discovery.value import load_discovery

    how = data.draw(st.sampled_from(["tree", "bytes", "random"]))
    if how == "tree":
        text = _dumps(data.draw(mutated_tree(valid["discovery"]))).encode()
    elif how == "bytes":
        text = data.draw(mutated(_dumps(valid["discovery"]).encode()))
    else:
        text = _dumps(data.draw(JSON_VALUES)).encode()
    with _scratch() as d:
        (d / "discovery.json").write_bytes(text)
        if _holds(lambda: load_discovery(d)) is not None:  # valid: the builder must take it too
            _holds(lambda: build(discovery=d / "discovery.json", out=d / "spec.json"))


# -- spec --------------------------------------------------------------------------------------

@given(data=st.data())
def test_spec_loader(valid, data):
    from sparsenet.build import build

    if data.draw(st.booleans()):
        text = _dumps(data.draw(mutated_tree(valid["spec"]))).encode()
    else:
        text = data.draw(mutated(_dumps(valid["spec"]).encode()))
    with _scratch() as d:
        (d / "spec.json").write_bytes(text)
        _holds(lambda: build(spec=d / "spec.json"))


# -- experiment TOML ---------------------------------------------------------------------------

@given(data=st.data())
def test_experiment_loader(valid, data):
    from sparsenet.compare.experiment import load_experiment, parse_experiment

    if data.draw(st.booleans()):
        tree = data.draw(mutated_tree(tomllib.loads(valid["toml"].decode())))
        _holds(lambda: parse_experiment(tree))
    else:
        with _scratch() as d:
            (d / "e.toml").write_bytes(data.draw(mutated(valid["toml"])))
            _holds(lambda: load_experiment(d / "e.toml"))


# -- checkpoint --------------------------------------------------------------------------------

@given(data=st.data())
def test_checkpoint_loader(valid, data):
    from sparsenet.training.checkpoint import model_from_checkpoint

    with _scratch() as d:
        if data.draw(st.booleans()):
            (d / "c.pt").write_bytes(data.draw(mutated(valid["checkpoint"])))
        else:
            ck = torch.load(valid["root"] / "ck.pt", weights_only=True)
            field = data.draw(st.sampled_from(["model", "model_kwargs", "state_dict", "format", "version"]))
            value = data.draw(JSON_VALUES | st.builds(lambda n: torch.zeros(n), st.integers(0, 4)))
            torch.save({**ck, field: value}, d / "c.pt")
        _holds(lambda: model_from_checkpoint(d / "c.pt"))


# -- activations .npy / .npz / .pt -------------------------------------------------------------

ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(),
                    hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(max_len=2)),
    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
)


@given(data=st.data())
def test_activations_loader(valid, data):
    from sparsenet.discover import load_activations

    suffix = data.draw(st.sampled_from([".npy", ".npz", ".pt"]))
    with _scratch() as d:
        path = d / f"a{suffix}"
        if data.draw(st.booleans()):
            path.write_bytes(data.draw(mutated(valid[suffix[1:]])))
        else:
            arr = data.draw(ARRAYS)
            if suffix == ".npy":
                np.save(path, arr)
            elif suffix == ".npz":
                np.savez(path, **{data.draw(st.sampled_from(["activations", "x"])): arr})
            elif arr.dtype.kind in "biufc" and arr.dtype.byteorder in "=|":
                torch.save(torch.from_numpy(np.ascontiguousarray(arr)), path)
            else:
                torch.save({"not": "a tensor"}, path)
        acts = _holds(lambda: load_activations(path))
        if acts is not None:
            assert acts.values.dtype == torch.float32 and acts.values.ndim in (2, 4) and acts.values.numel() > 0


# -- datasets: npz, idx, CIFAR binary, ImageFolder ---------------------------------------------

@given(x=hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.int64, np.float64, np.bool_]),
                    shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6)),
       y=hnp.arrays(dtype=st.sampled_from([np.int64, np.uint8, np.float32, np.bool_, np.int8]),
                    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=12)),
       test=st.booleans())
def test_npz_dataset_loader(x, y, test):
    from sparsenet.data import load_dataset

    with _scratch() as d:
        arrays = {"x": x, "y": y, **({"x_test": x, "y_test": y} if test else {})}
        np.savez(d / "data.npz", **arrays)
        ds = _holds(lambda: load_dataset(f"npz:{d / 'data.npz'}"))
        if ds is not None:
            assert ds.num_classes >= 2 and len(ds.x_train) == len(ds.y_train)


def _idx(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


IDX_BASE = _idx(np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3))


@given(data=st.data())
def test_idx_loader(data):
    from sparsenet.data.formats import IDX_FILES, load_idx_dir, read_idx

    with _scratch() as d:
        how = data.draw(st.sampled_from(["mutated", "header", "random"]))
        if how == "mutated":
            raw = data.draw(mutated(IDX_BASE))
        elif how == "header":
            dims = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=4))
            raw = (b"\x00\x00" + bytes([data.draw(st.sampled_from([8, 9, 11, 12, 13, 14, 7]))]) + bytes([len(dims)])
                   + b"".join(struct.pack(">I", v) for v in dims) + data.draw(st.binary(max_size=64)))
        else:
            raw = data.draw(st.binary(max_size=200))
        (d / "f").write_bytes(raw)
        _holds(lambda: read_idx(d / "f"))
        labels = _idx((np.arange(4) % 2).astype(np.uint8))
        for role, stem in IDX_FILES.items():
            (d / stem).write_bytes(raw if role == "train_images" else IDX_BASE if "images" in role else labels)
        _holds(lambda: load_idx_dir(d))


@given(data=st.data())
def test_cifar_binary_loader(data):
    from sparsenet.data.formats import load_cifar_binary

    variant = data.draw(st.sampled_from(["cifar10", "cifar100"]))
    record = 3073 if variant == "cifar10" else 3074
    files = ([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]) if variant == "cifar10" \
        else ["train.bin", "test.bin"]
    base = (bytes([1] * (record - 3072)) + bytes(3072)) * 2
    with _scratch() as d:
        for f in files:
            raw = data.draw(mutated(base) | st.binary(max_size=2 * record + 3))
            (d / f).write_bytes(raw)
        if data.draw(st.booleans()):
            (d / ("batches.meta.txt" if variant == "cifar10" else "fine_label_names.txt")).write_bytes(
                data.draw(st.binary(max_size=100)))
        raw = _holds(lambda: load_cifar_binary(d, variant))
        if raw is not None:
            assert raw.x_train.shape[1:] == (3, 32, 32) and int(raw.y_train.max()) < len(raw.classes)


def _png_bytes(size=(4, 4), mode="L") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 7).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes()


@given(data=st.data())
def test_imagefolder_loader(data):
    from sparsenet.data.formats import load_imagefolder

    with _scratch() as d:
        for cls in ("a", "b"):
            (d / cls).mkdir()
            for i in range(2):
                (d / cls / f"{i}.png").write_bytes(PNG)
        target = d / data.draw(st.sampled_from(["a", "b"])) / data.draw(st.sampled_from(["0.png", "x.jpg"]))
        how = data.draw(st.sampled_from(["mutated", "random", "size"]))
        if how == "mutated":
            target.write_bytes(data.draw(mutated(PNG)))
        elif how == "random":
            target.write_bytes(data.draw(st.binary(max_size=300)))
        else:
            w, h = data.draw(st.integers(1, 2**31 - 1)), data.draw(st.integers(1, 2**31 - 1))
            target.write_bytes(PNG[:16] + struct.pack(">II", w, h) + PNG[24:])  # header claims w x h
        size = data.draw(st.sampled_from([None, 4, 6]))
        raw = _holds(lambda: load_imagefolder(d, image_size=size))
        if raw is not None:
            assert len(raw.x_train) + len(raw.x_test) >= 4 and math.isfinite(float(raw.x_train.max()))
