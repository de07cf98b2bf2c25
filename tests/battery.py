"""The hostile-user battery: bad inputs to every command, each with the message it must get.

``make_files(root)`` writes the inputs (good ones to start from, and their broken variants);
``CASES`` is the table of (argv, message fragment).  ``tests/test_battery.py`` runs every case
in-process through ``sparsenet.cli.main`` and checks: exit status 2, one line on stderr with
the fragment and no traceback, no internal staging name, and ``--out`` left as it was.  Run as
a script (``python tests/battery.py``) it runs the whole battery in one fresh process and prints
the counts and the process's peak memory (docs/reliability.md).
"""

from __future__ import annotations

import builtins
import copy
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

MARKER = "pickle-ran.txt"  # a malicious pickle creates this file if it is ever executed


class Evil:
    """Unpickling this calls open(MARKER, 'w'): proof that foreign code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    return b"\x00\x00" + bytes([code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _idx_dir(d: Path, n=20, labels=None, images=None, drop=None) -> None:
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = images if images is not None else rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
    y = labels if labels is not None else (np.arange(len(x)) % 2).astype(np.uint8)
    files = {"train-images-idx3-ubyte": _idx(x), "train-labels-idx1-ubyte": _idx(y),
             "t10k-images-idx3-ubyte": _idx(x), "t10k-labels-idx1-ubyte": _idx(y)}
    for name, data in files.items():
        if name != drop:
            (d / name).write_bytes(data)


def _png(path: Path, size=(8, 8), mode="L", value=0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _bomb_png(path: Path, w=30000, h=30000) -> None:
    """A valid PNG signature and IHDR claiming w x h, with (almost) no pixel data."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
                     + chunk(b"IEND", b""))


def make_files(root: Path) -> Path:
    """Every input the battery uses, under ``root``; returns root."""
    import torch

    from sparsenet.cli import main

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    # good inputs to start from
    x = rng.normal(size=(120, 8, 5, 5)).astype(np.float32)
    x[:, :4] += rng.normal(size=(120, 1, 5, 5)).astype(np.float32)
    np.save(root / "acts.npy", x)
    np.save(root / "flat.npy", x.mean(axis=(2, 3)))
    quiet = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        assert main(["train", "--data", "digits", "--epochs", "1", "--model-arg", "width=4", "--out",
                     str(root / "ck"), "--quiet"]) == 0
        assert main(["discover", "--activations", str(root / "acts.npy"), "--clusters", "2", "--permutations", "2",
                     "--resamples", "2", "--out", str(root / "disc")]) == 0
        assert main(["build", "--discovery", str(root / "disc"), "--out", str(root / "spec.json")]) == 0
    (root / "afile").write_text("a file, not a directory\n")
    (root / "emptydir").mkdir()
    # broken activations
    (root / "empty0.npy").write_bytes(b"")
    np.save(root / "empty.npy", np.zeros((0,), np.float32))
    np.save(root / "zero_n.npy", np.zeros((0, 8, 5, 5), np.float32))
    np.save(root / "zero_c.npy", np.zeros((10, 0), np.float32))
    np.save(root / "str.npy", np.array([["a", "b"]] * 10))
    np.save(root / "cplx.npy", (x + 1j).astype(np.complex64))
    np.save(root / "obj.npy", np.array([Evil(root / MARKER)] * 4, dtype=object), allow_pickle=True)
    np.save(root / "three.npy", x[:, :, 0])
    np.save(root / "one.npy", x.ravel()[:50])
    np.save(root / "five.npy", x[..., None])
    (root / "trunc.npy").write_bytes((root / "acts.npy").read_bytes()[:300])
    (root / "rand.npy").write_bytes(rng.bytes(500))
    (root / "text.npy").write_text("not an array at all\n" * 20)
    (root / "acts.txt").write_text("1 2 3\n")
    (root / "acts.csv").write_text("1,2,3\n")
    np.savez(root / "two.npz", a=x, b=x)
    (root / "bad.npz").write_bytes(b"PK\x03\x04" + rng.bytes(200))
    np.savez(root / "objz.npz", activations=np.array([Evil(root / MARKER)], dtype=object))
    np.savez(root / "strz.npz", activations=np.array(["x"] * 10))
    torch.save(Evil(root / MARKER), root / "evil.pt")
    torch.save({"a": torch.zeros(3)}, root / "dict.pt")
    torch.save([torch.zeros(3)], root / "list.pt")
    torch.save(torch.zeros(10, 8, 3), root / "three.pt")
    torch.save(torch.zeros(10, 8, dtype=torch.complex64), root / "cplx.pt")
    torch.save(torch.zeros(0, 8), root / "zero.pt")
    (root / "rand.pt").write_bytes(rng.bytes(400))
    (root / "empty.pt").write_bytes(b"")
    (root / "text.pt").write_text("hello\n")
    (root / "trunc.pt").write_bytes((root / "ck" / "checkpoint.pt").read_bytes()[:2000])
    (root / "trunc_stats.npz").write_bytes((root / "disc" / "stats.npz").read_bytes()[:3000])
    # broken checkpoints
    ck = torch.load(root / "ck" / "checkpoint.pt", weights_only=True)
    torch.save(ck["state_dict"], root / "statedict.pt")
    torch.save(torch.nn.Linear(3, 4).state_dict(), root / "linear.pt")
    torch.save({**ck, "format": "other"}, root / "format.pt")
    torch.save({**ck, "version": 99}, root / "version.pt")
    torch.save({k: v for k, v in ck.items() if k != "state_dict"}, root / "nostate.pt")
    torch.save({**ck, "model": "resnet"}, root / "model.pt")
    torch.save({**ck, "model_kwargs": {**ck["model_kwargs"], "width": 8}}, root / "shapes.pt")
    torch.save({**ck, "model_kwargs": {**ck["model_kwargs"], "colour": 1}}, root / "kwargs.pt")
    torch.save({**ck, "model_kwargs": [1, 2]}, root / "kwlist.pt")
    torch.save({**ck, "state_dict": {"x": torch.zeros(1)}}, root / "keys.pt")
    torch.save({**ck, "model_kwargs": {**ck["model_kwargs"], "width": 10**9}}, root / "hugeck.pt")
    zf = root / "zipnot.pt"
    with zipfile.ZipFile(zf, "w") as z:
        z.writestr("archive/data.pkl", b"garbage")
    # broken discoveries
    d = json.loads((root / "disc" / "discovery.json").read_text())
    for name, mutate in DISCOVERY_MUTATIONS.items():
        dd = copy.deepcopy(d)
        text = mutate(dd)
        (root / f"d_{name}.json").write_text(text if isinstance(text, str) else json.dumps(dd))
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "deepobj.json").write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    (root / "bigint.json").write_text("9" * 10_000)
    (root / "latin1.json").write_bytes(b"\xff\xfe{\x00}")
    # broken specs
    s = json.loads((root / "spec.json").read_text())
    for name, mutate in SPEC_MUTATIONS.items():
        ss = copy.deepcopy(s)
        text = mutate(ss)
        (root / f"s_{name}.json").write_text(text if isinstance(text, str) else json.dumps(ss))
    (root / "bench.json").write_text(json.dumps({"format": "sparsenet.bench", "measurements": {"nothing": 1}}))
    # broken experiments
    for name, text in EXPERIMENTS.items():
        (root / f"e_{name}.toml").write_text(text.replace("{f}", str(root)))
    (root / "e_binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    (root / "e_deep.toml").write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    # broken datasets
    xs = rng.random((20, 8, 8)).astype(np.float32)
    ys = np.arange(20) % 2
    npz = {
        "huge_label": dict(x=xs, y=np.r_[ys[:10], [10**9] * 10]),
        "one_class": dict(x=xs, y=np.zeros(20, int)),
        "bool_y": dict(x=xs, y=ys.astype(bool)),
        "float_y": dict(x=xs, y=ys + 0.5),
        "neg_y": dict(x=xs, y=ys - 1),
        "str_x": dict(x=np.array(["a"] * 20), y=ys),
        "cplx_x": dict(x=xs.astype(np.complex64), y=ys),
        "nan_x": dict(x=np.full_like(xs, np.nan), y=ys),
        "range_x": dict(x=xs * 300, y=ys),
        "int_range_x": dict(x=(xs * 1000).astype(np.int32), y=ys),
        "shape_x": dict(x=xs[:, 0], y=ys),
        "len_mismatch": dict(x=xs, y=ys[:10]),
        "no_y": dict(x=xs),
        "one_test": dict(x=xs, y=ys, x_test=xs),
        "test_shape": dict(x=xs, y=ys, x_test=xs[:, :4], y_test=ys),
        "y_2d": dict(x=xs, y=ys[:, None]),
        "empty_x": dict(x=xs[:0], y=ys[:0]),
        "few_per_class": dict(x=xs[:3], y=np.array([0, 1, 2])),
    }
    for name, arrays in npz.items():
        np.savez(root / f"n_{name}.npz", **arrays)
    np.savez(root / "n_obj.npz", x=np.array([Evil(root / MARKER)] * 20, dtype=object), y=ys)
    (root / "n_corrupt.npz").write_bytes(b"PK\x03\x04" + rng.bytes(100))
    (root / "n_text.npz").write_text("x,y\n")
    _idx_dir(root / "idx_missing", drop="t10k-labels-idx1-ubyte")
    _idx_dir(root / "idx_huge_label", labels=np.array([0] * 10 + [250] * 10, np.uint8))
    _idx_dir(root / "idx_one_class", labels=np.zeros(20, np.uint8))
    _idx_dir(root / "idx_len", labels=np.zeros(5, np.uint8))
    d_idx = root / "idx_bad_magic"
    _idx_dir(d_idx)
    (d_idx / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x56\x78" + rng.bytes(100))
    d_idx = root / "idx_trunc"
    _idx_dir(d_idx)
    (d_idx / "train-images-idx3-ubyte").write_bytes(_idx(np.zeros((20, 8, 8), np.uint8))[:200])
    d_idx = root / "idx_claims"
    _idx_dir(d_idx)
    (d_idx / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**20, 2**20))
    d_idx = root / "idx_gzip"
    _idx_dir(d_idx)
    (d_idx / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8b" + rng.bytes(100))
    (root / "cifar_empty").mkdir()
    c = root / "cifar_trunc"
    c.mkdir()
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (c / f).write_bytes(rng.bytes(3073 * 2 + 5))
    c = root / "cifar_label"
    c.mkdir()
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (c / f).write_bytes((b"\xc8" + rng.bytes(3072)) * 2)
    c = root / "cifar_pickle" / "cifar-10-batches-py"
    c.mkdir(parents=True)
    (c / "data_batch_1").write_bytes(b"\x80\x04garbage")
    c = root / "c100_as_c10"
    c.mkdir()
    for f in ["train.bin", "test.bin"]:
        (c / f).write_bytes((b"\x01\x02" + rng.bytes(3072)) * 2)
    f = root / "if_bomb"
    for cls in ("a", "b"):
        for i in range(3):
            _png(f / cls / f"{i}.png")
    _bomb_png(f / "a" / "bomb.png")
    f = root / "if_corrupt"
    for cls in ("a", "b"):
        for i in range(3):
            _png(f / cls / f"{i}.png")
    (f / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(50))
    f = root / "if_mixed"
    for cls in ("a", "b"):
        for i in range(3):
            _png(f / cls / f"{i}.png", size=(8 + i, 8))
    f = root / "if_one_class"
    for i in range(6):
        _png(f / "a" / f"{i}.png")
    f = root / "if_empty_class"
    _png(f / "a" / "0.png")
    (f / "b").mkdir()
    (root / "if_no_classes").mkdir()
    (root / "if_no_classes" / "x.png").write_bytes(b"")
    f = root / "if_train_only"
    _png(f / "train" / "a" / "0.png")
    f = root / "if_test_unknown"
    for split, cls in (("train", "a"), ("train", "b"), ("test", "c")):
        _png(f / split / cls / "0.png")
    f = root / "if_single"
    for cls in ("a", "b"):
        _png(f / cls / "0.png")
    return root


def _set(path: list, value):
    def mutate(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _drop(key):
    return lambda d: d.pop(key) and None


DISCOVERY_MUTATIONS = {
    "prov_list": _set(["provenance"], [1]),
    "prov_str": _set(["provenance"], "abc"),
    "prov_num": _set(["provenance"], 3),
    "sig_list": _set(["significance"], [1, 2]),
    "settings_str": _set(["settings"], "x"),
    "profile_strings": _set(["clusters", 0, "spatial_profile"], ["a", "b"]),
    "profile_number": _set(["clusters", 0, "spatial_profile"], 3),
    "profile_bool": _set(["clusters", 0, "spatial_profile"], True),
    "profile_bools": _set(["clusters", 0, "spatial_profile"], [True, False]),
    "profile_dict": _set(["clusters", 0, "spatial_profile"], {"a": 1}),
    "kernel_huge": _set(["clusters", 0, "kernel_size"], 4001),
    "kernel_101": _set(["clusters", 0, "kernel_size"], 101),
    "kernel_even": _set(["clusters", 0, "kernel_size"], 4),
    "kernel_zero": _set(["clusters", 0, "kernel_size"], 0),
    "kernel_float": _set(["clusters", 0, "kernel_size"], 3.0),
    "kernel_bool": _set(["clusters", 0, "kernel_size"], True),
    "kernel_str": _set(["clusters", 0, "kernel_size"], "3"),
    "size_wrong": _set(["clusters", 0, "size"], 99),
    "size_str": _set(["clusters", 0, "size"], "4"),
    "labels_bool": lambda d: d.__setitem__("labels", [True if v == 1 else v for v in d["labels"]]),
    "labels_str": lambda d: d.__setitem__("labels", [str(v) for v in d["labels"]]),
    "labels_short": lambda d: d.__setitem__("labels", d["labels"][:-1]),
    "labels_range": lambda d: d.__setitem__("labels", [7] * len(d["labels"])),
    "stability_nan": lambda d: json.dumps({**d, "stability": float("nan")}),
    "stability_inf": lambda d: json.dumps({**d, "stability": float("inf")}),
    "stability_big": _set(["stability"], 7.5),
    "cluster_stability_big": _set(["clusters", 0, "stability"], 1.5),
    "cluster_stability_str": _set(["clusters", 0, "stability"], "high"),
    "stability_str": _set(["stability"], "high"),
    "channels_huge": _set(["channels"], 10**15),
    "channels_zero": _set(["channels"], 0),
    "channels_bool": _set(["channels"], True),
    "no_format": _drop("format"),
    "version": _set(["version"], 2),
    "no_labels": _drop("labels"),
    "no_clusters": _drop("clusters"),
    "clusters_empty": _set(["clusters"], []),
    "clusters_dict": _set(["clusters"], {"0": 1}),
    "cluster_num": _set(["clusters", 0], 5),
    "cluster_id": _set(["clusters", 0, "id"], 5),
    "cluster_id_bool": _set(["clusters", 1, "id"], True),
    "channels_out": _set(["clusters", 0, "channels"], [0, 99]),
    "channels_neg": _set(["clusters", 0, "channels"], [-1]),
    "channels_repeat": lambda d: d["clusters"][1].__setitem__("channels", d["clusters"][0]["channels"]),
    "layer_shape_str": _set(["provenance", "layer_shape"], "8x5x5"),
    "layer_shape_c": _set(["provenance", "layer_shape"], [9, 5, 5]),
    "top_list": lambda d: "[1, 2, 3]",
    "top_null": lambda d: "null",
    "not_json": lambda d: "{not json",
    "empty": lambda d: "",
}

SPEC_MUTATIONS = {
    "in_huge": _set(["in_channels"], 10**15),
    "in_zero": _set(["in_channels"], 0),
    "in_bool": _set(["in_channels"], True),
    "in_float": _set(["in_channels"], 8.0),
    "width_huge": _set(["branches", 0, "width"], 10**9),
    "width_big": lambda d: (d["branches"][1].update(width=d["branches"][1]["width"] + 60_000, reduce=60_000,
                                                    kernel_size=5),
                            d.__setitem__("out_channels", d["out_channels"] + 60_000)) and None,
    "width_neg": _set(["branches", 0, "width"], -3),
    "kernel_huge": _set(["branches", 1, "kernel_size"], 4001),
    "kernel_even": _set(["branches", 1, "kernel_size"], 2),
    "kernel_big": lambda d: d["branches"][1].update(kernel_size=7, reduce=2) and None,
    "reduce_huge": _set(["branches", 1, "reduce"], 10**12),
    "inputs_out": _set(["branches", 0, "inputs"], [0, 10**15]),
    "inputs_str": _set(["branches", 0, "inputs"], "all"),
    "inputs_repeat": _set(["branches", 0, "inputs"], [0, 0]),
    "pool_huge": _set(["pool", "projection"], 10**10),
    "pool_kernel": _set(["pool", "kernel_size"], 1),
    "branches_empty": _set(["branches"], []),
    "branches_dict": _set(["branches"], {"a": 1}),
    "branch_unknown": _set(["branches", 0, "colour"], "red"),
    "connectivity": _set(["connectivity"], "sparse"),
    "bn_str": _set(["batch_norm"], "yes"),
    "provenance_list": _set(["provenance"], [1]),
    "kind": _set(["kind"], "layer"),
    "format": _set(["format"], "sparsenet.discovery"),
    "version": _set(["version"], 99),
    "out_channels": _set(["out_channels"], 12345),
    "unknown_top": _set(["colour"], 1),
    "no_branches": _drop("branches"),
    "top_list": lambda d: "[]",
    "not_json": lambda d: "{",
    "net_modules_huge": lambda d: json.dumps({"format": "sparsenet.spec", "version": 1, "kind": "network",
                                              "stem": {"in_channels": 1, "widths": [65536, 65536],
                                                       "kernel_sizes": [3, 3], "strides": [1, 1]},
                                              "modules": []}),
    "net_stem": lambda d: json.dumps({"format": "sparsenet.spec", "version": 1, "kind": "network",
                                      "stem": {"in_channels": 1, "widths": [8], "kernel_sizes": [3, 3],
                                               "strides": [1]}, "modules": []}),
}

_EXP_HEAD = '[experiment]\nname = "bad"\nseeds = [0]\n\n[data]\nname = "digits"\n\n[train]\nepochs = 1\n\n'
_PLAIN = '[[candidates]]\nname = "plain"\nkind = "plaincnn"\nwidth = 4\n'

EXPERIMENTS = {
    "seed_huge": _EXP_HEAD.replace("seeds = [0]", "seeds = [99999999999999999999]") + _PLAIN,
    "seed_big": _EXP_HEAD.replace("seeds = [0]", "seeds = [4294967296]") + _PLAIN,
    "seed_neg": _EXP_HEAD.replace("seeds = [0]", "seeds = [-1]") + _PLAIN,
    "seed_str": _EXP_HEAD.replace("seeds = [0]", 'seeds = ["a"]') + _PLAIN,
    "seeds_empty": _EXP_HEAD.replace("seeds = [0]", "seeds = []") + _PLAIN,
    "seeds_repeat": _EXP_HEAD.replace("seeds = [0]", "seeds = [1, 1]") + _PLAIN,
    "split_seed_huge": _EXP_HEAD.replace('name = "digits"', 'name = "digits"\nsplit_seed = 99999999999999999999')
    + _PLAIN,
    "no_name": _EXP_HEAD.replace('name = "bad"\n', "") + _PLAIN,
    "no_candidates": _EXP_HEAD,
    "unknown_section": _EXP_HEAD + "[colour]\nx = 1\n" + _PLAIN,
    "unknown_key": _EXP_HEAD.replace("epochs = 1", "epochs = 1\ncolour = 2") + _PLAIN,
    "epochs_zero": _EXP_HEAD.replace("epochs = 1", "epochs = 0") + _PLAIN,
    "lr_neg": _EXP_HEAD.replace("epochs = 1", "epochs = 1\nlr = -1.0") + _PLAIN,
    "data_unknown": _EXP_HEAD.replace('name = "digits"', 'name = "imagenet"') + _PLAIN,
    "image_size_huge": _EXP_HEAD.replace('name = "digits"', 'name = "digits"\nimage_size = 100000') + _PLAIN,
    "kind_unknown": _EXP_HEAD + '[[candidates]]\nname = "x"\nkind = "resnet"\n',
    "width_str": _EXP_HEAD + _PLAIN.replace("width = 4", 'width = "wide"'),
    "width_huge": _EXP_HEAD + _PLAIN.replace("width = 4", "width = 1000000000"),
    "budget_like": _EXP_HEAD + '[[candidates]]\nname = "g"\nkind = "grown"\nbudget_like = "foo:bar"\n',
    "not_toml": "[experiment\nname = ",
    "empty": "",
    "duplicate_names": _EXP_HEAD + _PLAIN + _PLAIN,
    "threads_zero": _EXP_HEAD.replace("seeds = [0]", "seeds = [0]\nthreads = 0") + _PLAIN,
    # OpenMP starts every thread asked for and crashes with SIGSEGV where it cannot
    "threads_huge": _EXP_HEAD.replace("seeds = [0]", "seeds = [0]\nthreads = 100000") + _PLAIN,
    "latency_threads_huge": _EXP_HEAD + _PLAIN + "[latency]\nthreads = 100000\n",
    "permutations_huge": _EXP_HEAD + '[[candidates]]\nname = "g"\nkind = "grown"\n[candidates.analysis]\n'
                         'permutations = 1000000000\n',
    "test_fraction": _EXP_HEAD.replace('name = "digits"', 'name = "digits"\ntest_fraction = 1.5') + _PLAIN,
    "data_npz_one_class": _EXP_HEAD.replace('name = "digits"', 'name = "npz:{f}/n_one_class.npz"') + _PLAIN,
}

# bad data specs, each tried with every command that loads a dataset
DATA = [
    ("npz:{f}/n_huge_label.npz", "label 1000000000 among 20 samples"),
    ("npz:{f}/n_one_class.npz", "only class \\[0\\].*at least two classes"),
    ("npz:{f}/n_bool_y.npz", "labels have dtype bool"),
    ("npz:{f}/n_float_y.npz", "labels have dtype float64"),
    ("npz:{f}/n_neg_y.npz", "negative label -1"),
    ("npz:{f}/n_str_x.npz", "images have dtype <U1"),
    ("npz:{f}/n_cplx_x.npz", "images have dtype complex64"),
    ("npz:{f}/n_nan_x.npz", "NaN or infinite"),
    ("npz:{f}/n_range_x.npz", "float pixel values span"),
    ("npz:{f}/n_int_range_x.npz", "integer pixel values span"),
    ("npz:{f}/n_shape_x.npz", "images have shape \\(20, 8\\)"),
    ("npz:{f}/n_len_mismatch.npz", "holds 20 images but 'y' holds 10 labels"),
    ("npz:{f}/n_no_y.npz", "expected 'x' and 'y'"),
    ("npz:{f}/n_one_test.npz", "only one of 'x_test' and 'y_test'"),
    ("npz:{f}/n_test_shape.npz", "'x_test' images are"),
    ("npz:{f}/n_y_2d.npz", "one label per image"),
    ("npz:{f}/n_empty_x.npz", "no images"),
    ("npz:{f}/n_few_per_class.npz", "cannot split 3 samples"),
    ("npz:{f}/n_obj.npz", "cannot read as .npz without pickle"),
    ("npz:{f}/n_corrupt.npz", "cannot read as .npz without pickle"),
    ("npz:{f}/n_text.npz", "cannot read as .npz without pickle"),
    ("npz:{f}/missing.npz", "does not exist"),
    ("npz:{f}/emptydir", "is a directory"),
    ("idx:{f}/idx_missing", "lacks t10k-labels-idx1-ubyte"),
    ("idx:{f}/idx_huge_label", "label 250 among 40 samples"),
    ("idx:{f}/idx_one_class", "at least two classes"),
    ("idx:{f}/idx_len", "holds 20 images but"),
    ("idx:{f}/idx_bad_magic", "not an idx file"),
    ("idx:{f}/idx_trunc", "idx file is truncated"),
    ("idx:{f}/idx_claims", "idx file is truncated"),
    ("idx:{f}/idx_gzip", "corrupt or truncated gzip"),
    ("idx:{f}/afile", "is a file"),
    ("cifar10:{f}/cifar_empty", "CIFAR binary files not found"),
    ("cifar10:{f}/cifar_trunc", "not a positive multiple of the cifar10 record size"),
    ("cifar10:{f}/cifar_label", "label 200 out of range for cifar10"),
    ("cifar10:{f}/cifar_pickle", "python-pickle version"),
    ("cifar100:{f}/cifar_empty", "CIFAR binary files not found"),
    ("cifar10:{f}/afile", "is a file"),
    ("imagefolder:{f}/if_bomb", "bomb.png: the image header claims"),
    ("imagefolder:{f}/if_corrupt", "bad.png: cannot read image"),
    ("imagefolder:{f}/if_mixed", "images differ in size"),
    ("imagefolder:{f}/if_one_class", "cannot split|at least two classes"),
    ("imagefolder:{f}/if_empty_class", "holds no images"),
    ("imagefolder:{f}/if_no_classes", "has no class folders"),
    ("imagefolder:{f}/if_train_only", "has a train/ folder but no test/ folder"),
    ("imagefolder:{f}/if_test_unknown", "class folders \\['c'\\]"),
    ("imagefolder:{f}/if_single", "cannot split 2 samples"),
    ("imagefolder:{f}/afile", "is a file"),
    ("imagefolder:{f}/nowhere", "does not exist"),
    ("hdf5:{f}/x.h5", "unknown dataset"),
    ("imagenet", "unknown dataset 'imagenet'"),
    ("npz:", "names no path"),
]

ACTIVATIONS = [
    ("empty0.npy", "not a numpy array file"),
    ("empty.npy", "have shape \\(0,\\)"),
    ("zero_n.npy", "no values"),
    ("zero_c.npy", "no values"),
    ("str.npy", "dtype <U1"),
    ("cplx.npy", "dtype complex64"),
    ("obj.npy", "holding Python objects, which are not loaded"),
    ("three.npy", "have shape \\(120, 8, 5\\)"),
    ("one.npy", "have shape \\(50,\\)"),
    ("five.npy", "have shape \\(120, 8, 5, 5, 1\\)"),
    ("trunc.npy", "not a numpy array file"),
    ("rand.npy", "not a numpy array file"),
    ("text.npy", "not a numpy array file"),
    ("acts.txt", "suffix '.txt'"),
    ("acts.csv", "suffix '.csv'"),
    ("two.npz", "holds arrays \\['a', 'b'\\]"),
    ("bad.npz", "not a numpy .npz archive"),
    ("objz.npz", "not a numpy .npz archive"),
    ("strz.npz", "dtype <U1"),
    ("evil.pt", "holding Python objects besides tensors \\(never unpickled\\)"),
    ("dict.pt", "holds a dict"),
    ("list.pt", "holds a list"),
    ("three.pt", "have shape \\(10, 8, 3\\)"),
    ("cplx.pt", "dtype torch.complex64"),
    ("zero.pt", "no values"),
    ("rand.pt", "not a tensor file"),
    ("empty.pt", "not a tensor file"),
    ("text.pt", "not a tensor file"),
    ("trunc.pt", "not a tensor file"),
    ("zipnot.pt", "not a tensor file"),
    ("missing.npy", "activations file .*missing.npy not found"),
    ("emptydir", "activations file .*emptydir is a directory, not a file"),
]

CHECKPOINTS = [
    ("rand.pt", "not a file written by torch.save"),
    ("empty.pt", "it is empty"),
    ("text.pt", "not a file written by torch.save"),
    ("evil.pt", "holds Python objects other than tensors"),
    ("trunc.pt", "not a file written by torch.save|or it is truncated"),
    ("zipnot.pt", "holds Python objects other than tensors.*or it is truncated"),
    ("statedict.pt", "not a sparsenet checkpoint"),
    ("format.pt", "not a sparsenet checkpoint"),
    ("version.pt", "checkpoint version 99"),
    ("nostate.pt", "lacks the fields \\['state_dict'\\]"),
    ("model.pt", "unknown model 'resnet'"),
    ("shapes.pt", "weights do not fit.*differ in shape \\(features"),
    ("kwargs.pt", "unexpected argument\\(s\\) 'colour'"),
    ("kwlist.pt", "must be a name, an object"),
    ("keys.pt", "weights do not fit.*missing"),
    ("hugeck.pt", "at most 100,000,000 parameters"),
    ("acts.npy", "not a file written by torch.save"),
    ("emptydir", "is a directory without a checkpoint.pt"),
    ("missing.pt", "checkpoint not found"),
]

_D_MSG = {
    "prov_list": "'provenance' must be an object", "prov_str": "'provenance' must be an object",
    "prov_num": "'provenance' must be an object", "sig_list": "'significance' must be an object",
    "settings_str": "'settings' must be an object", "profile_strings": "spatial_profile must be a list of numbers",
    "profile_number": "spatial_profile must be a list", "profile_bool": "spatial_profile must be a list",
    "profile_bools": "spatial_profile must be a list of numbers", "profile_dict": "spatial_profile must be a list",
    "kernel_huge": "kernel_size is 4001; on the layer's 5x5 map, odd sizes up to 9",
    "kernel_101": "kernel_size is 101", "kernel_even": "kernel_size must be a positive odd integer, got 4",
    "kernel_zero": "positive odd integer, got 0", "kernel_float": "positive odd integer, got 3.0",
    "kernel_bool": "positive odd integer, got True", "kernel_str": "positive odd integer, got 3",
    "size_wrong": "size is 99 but it lists", "size_str": "size is 4 but it lists",
    "labels_bool": "not booleans", "labels_str": "'labels' must be a list of 8 integers",
    "labels_short": "'labels' must be a list of 8", "labels_range": "disagree with 'labels'|refers to clusters",
    "stability_nan": "'stability' must be null or a number", "stability_inf": "'stability' must be null",
    "stability_big": "'stability' must be null",
    "cluster_stability_big": "clusters\\[0\\].stability must be null or a number in \\[0, 1\\]",
    "cluster_stability_str": "clusters\\[0\\].stability must be null", "stability_str": "'stability' must be null",
    "channels_huge": "'channels' must be an integer in 1..65536", "channels_zero": "'channels' must be an integer",
    "channels_bool": "'channels' must be an integer", "no_format": "field 'format' is None",
    "version": "this release reads version 1", "no_labels": "missing field 'labels'",
    "no_clusters": "missing field 'clusters'", "clusters_empty": "'clusters' must be a non-empty list",
    "clusters_dict": "'clusters' must be a non-empty list", "cluster_num": "clusters\\[0\\] must be an object",
    "cluster_id": "clusters\\[0\\].id is 5", "cluster_id_bool": "clusters\\[1\\].id is True",
    "channels_out": "channel indices in 0..7", "channels_neg": "channel indices in 0..7",
    "channels_repeat": "repeats channels", "layer_shape_str": "layer_shape is '8x5x5'",
    "layer_shape_c": "says C=9", "top_list": "expected a JSON object, got list",
    "top_null": "expected a JSON object, got NoneType", "not_json": "not JSON", "empty": "not JSON",
}

_S_MSG = {
    "in_huge": "in_channels is 1000000000000000; expected an integer >= 1 and <= 65,536",
    "in_zero": "in_channels is 0", "in_bool": "in_channels is True", "in_float": "in_channels is 8.0",
    "width_huge": "width is 1000000000", "width_big": "parameters in one module", "width_neg": "width is -3",
    "kernel_huge": "kernel_size is 4001; expected an odd integer", "kernel_even": "kernel_size is 2",
    "kernel_big": "unused",
    "reduce_huge": "reduce is 1000000000000", "inputs_out": "in_channels is 8|out of range",
    "inputs_str": "inputs is 'all'", "inputs_repeat": "at most once", "pool_huge": "projection is 10000000000",
    "pool_kernel": "kernel_size is 1; expected an odd integer >= 3", "branches_empty": "non-empty list",
    "branches_dict": "branches", "branch_unknown": "colour", "connectivity": "connectivity is 'sparse'",
    "bn_str": "batch_norm is 'yes'", "provenance_list": "provenance", "kind": "kind is 'layer'",
    "format": "format is 'sparsenet.discovery'", "version": "version is 99", "out_channels": "out_channels is 12345",
    "unknown_top": "colour", "no_branches": "branches.*required", "top_list": "expected a JSON object",
    "not_json": "not JSON", "net_modules_huge": "parameters in one network",
    "net_stem": "one kernel size and one stride per stem conv",
}

_E_MSG = {
    "seed_huge": "seeds\\[0\\] is 99999999999999999999; expected an integer >= 0 and <= 4294967295",
    "seed_big": "seeds\\[0\\] is 4294967296", "seed_neg": "seeds\\[0\\] is -1", "seed_str": "seeds\\[0\\] is 'a'",
    "seeds_empty": "seeds", "seeds_repeat": "seeds", "split_seed_huge": "split_seed is 99999999999999999999",
    "no_name": "name: missing", "no_candidates": "candidates", "unknown_section": "colour",
    "unknown_key": "colour: unknown key", "epochs_zero": "epochs is 0", "lr_neg": "lr is -1.0",
    "data_unknown": "data.name is 'imagenet'; unknown dataset", "image_size_huge": "image_size must be a positive integer up to 4096",
    "kind_unknown": "kind is 'resnet'", "width_str": "width is 'wide'",
    "width_huge": "at most 100,000,000 parameters", "budget_like": "budget_like.*'foo:bar' is not",
    "not_toml": "not valid TOML", "empty": "experiment", "duplicate_names": "plain",
    "threads_zero": "threads is 0", "threads_huge": "experiment.threads is 100000.*<= 1024",
    "latency_threads_huge": "latency.threads is 100000.*<= 1024",
    "permutations_huge": "permutations is 1000000000.*<= 100000", "test_fraction": "test_fraction is 1.5",
    "data_npz_one_class": "at least two classes", "binary": "not a text file",
    "deep": "nested too deeply",
}

# one command per line: the option under test and the message it must get
OPTIONS = [
    # train
    ("train --model resnet", "unknown model 'resnet'"),
    ("train --model googlenet --data digits", "googlenet"),
    ("train --model-arg nonsense", "KEY=VALUE"),
    ("train --model-arg =3", "KEY=VALUE"),
    ("train --model-arg colour=3 --data digits", "unexpected argument\\(s\\) 'colour'"),
    ("train --model-arg width=1000000000 --data digits", "at most 100,000,000 parameters"),
    ("train --model-arg width=3000 --data digits", "parameters; at most 100,000,000"),
    ("train --model-arg width=-4 --data digits", "width|cannot be built"),
    ("train --model-arg width=abc --data digits", "cannot be built|width"),
    ("train --workers 100000 --data digits", "--workers: invalid integer from 0 to 256"),
    ("train --workers -1 --data digits", "--workers: invalid integer from 0 to 256"),
    ("train --epochs 0", "positive integer"),
    ("train --epochs -1", "positive integer"),
    ("train --epochs x", "positive integer"),
    ("train --batch-size 0", "positive integer"),
    ("train --lr 0 --data digits", "lr must be a positive number"),
    ("train --lr -1 --data digits", "lr must be a positive number"),
    ("train --lr nan --data digits", "lr must be a positive number"),
    ("train --lr inf --data digits", "lr must be a positive number"),
    ("train --seed -1 --data digits", "seed must be an integer in 0..4294967295, got -1"),
    ("train --seed 99999999999999999999 --data digits", "seed must be an integer in 0..4294967295"),
    ("train --warmup-steps -5 --data digits", "warmup_steps must be an integer >= 0"),
    ("train --clip-grad-norm -1 --data digits", "clip_grad_norm must be a number >= 0"),
    ("train --clip-grad-norm nan --data digits", "clip_grad_norm must be a number >= 0"),
    ("train --image-size 0", "positive integer"),
    ("train --image-size 100000 --data digits", "image_size must be a positive integer up to 4096"),
    ("train --data digits --data-root {f}", "takes no root directory"),
    ("train --data fashion-mnist --data-root {f}/emptydir", "fashion"),
    ("train --data digits --resume", "nothing to resume"),
    ("train --data digits --out {f}/afile", "--out {f}/afile is a file"),
    ("train --data digits --out {f}/afile/sub", "cannot be created: {f}/afile is a file"),
    # discover
    ("discover --activations {f}/acts.npy --checkpoint {f}/ck", "cannot be combined"),
    ("discover --activations {f}/acts.npy --clusters 0", "K \\(a positive integer\\) or 'auto'"),
    ("discover --activations {f}/acts.npy --clusters many", "K \\(a positive integer\\) or 'auto'"),
    ("discover --activations {f}/acts.npy --clusters 70000", "at most 65,536 channels"),
    ("discover --activations {f}/acts.npy --clusters 9", "clusters|channels"),
    ("discover --activations {f}/acts.npy --affinity cosine", "unknown affinity 'cosine'"),
    ("discover --activations {f}/acts.npy --method kmeans2", "unknown method 'kmeans2'"),
    ("discover --activations {f}/acts.npy --max-samples 0", "positive integer"),
    ("discover --activations {f}/acts.npy --max-samples 1", "max_samples must be at least 2"),
    ("discover --activations {f}/acts.npy --permutations -1", "permutations must be an integer from 0"),
    ("discover --activations {f}/acts.npy --resamples -2", "resamples must be an integer from 0"),
    # one seed per copy is drawn up front: 10^9 of them would take 8 GB
    ("discover --activations {f}/acts.npy --permutations 1000000000", "permutations .* to 100,000 \\(0 skips it\\), got 1000000000"),
    ("discover --activations {f}/acts.npy --resamples 100000000", "resamples .* to 10,000 \\(0 skips it\\), got 100000000"),
    ("discover --activations {f}/acts.npy --seed -1", "seed must be an integer in 0..4294967295"),
    ("discover --activations {f}/acts.npy --seed 4294967296", "seed must be an integer in 0..4294967295"),
    ("discover --activations {f}/acts.npy --out {f}/afile", "--out {f}/afile is a file"),
    ("discover --stats {f}/trunc_stats.npz", "is not a ChannelStats .npz file \\(empty, truncated"),
    ("discover --stats {f}/text.npy", "is not a ChannelStats .npz file \\(empty, truncated"),
    ("discover --stats {f}/emptydir", "is not a ChannelStats .npz file \\(a directory\\)"),
    ("discover --stats {f}/missing.npz", "no ChannelStats file at"),
    ("discover --model plaincnn --weights {f}/trunc.pt", "is not a readable state_dict: it is not a file written by"),
    ("discover --model plaincnn --weights {f}/empty.pt", "is not a readable state_dict: it is empty"),
    # the weights of another model: our own account of what does not fit, not torch's page
    ("discover --model plaincnn --weights {f}/linear.pt",
     "weights do not fit the model PlainCNN.*8 missing \\(features.*2 unexpected \\(weight, bias\\)"),
    ("discover --model plaincnn --weights {f}", "weights file .* is a directory, not a file"),
    ("discover --activations {f}/acts.npy --out {f}/afile/x/y", "{f}/afile is a file, not a directory"),
    ("discover --checkpoint {f}/ck --layer nope", "nope"),
    ("discover --checkpoint {f}/ck --data imagenet", "unknown dataset 'imagenet'"),
    ("discover --checkpoint {f}/ck --data cifar10:{f}/cifar_empty", "CIFAR binary files not found"),
    ("discover --list-layers --input-size 1,100000,100000", "--input-size 1x100000x100000 is too large"),
    ("discover --list-layers --input-size 64,1000,1000", "is too large"),
    ("discover --list-layers --input-size 1,28", "--input-size expects C,H,W"),
    ("discover --list-layers --input-size a,b,c", "--input-size expects C,H,W"),
    ("discover --list-layers --input-size 0,28,28", "--input-size expects C,H,W"),
    ("discover --list-layers --model resnet", "unknown model 'resnet'"),
    ("discover --list-layers --checkpoint {f}/rand.pt", "not a file written by torch.save"),
    # build
    ("build --discovery {f}/disc --budget-macs 0", "multiply-add count"),
    ("build --discovery {f}/disc --budget-macs -5", "multiply-add count"),
    ("build --discovery {f}/disc --budget-macs 5X", "multiply-add count"),
    ("build --discovery {f}/disc --budget-macs 10", "cannot be met"),
    ("build --discovery {f}/disc --budget-macs 1e300", "unreachably large|parameters|expected an integer"),
    ("build --discovery {f}/disc --budget-like foo:bar", "--budget-like 'foo:bar' is not"),
    ("build --discovery {f}/disc --budget-like resnet:3a", "unknown model 'resnet'"),
    ("build --discovery {f}/disc --budget-like googlenet_small:9z", "stage '9z' is not an Inception stage"),
    ("build --discovery {f}/disc --budget-like googlenet_small@0:3a", "width multiplier"),
    ("build --discovery {f}/disc --budget-like googlenet_small@1000:3a", "width multiplier"),
    ("build --discovery {f}/disc --reference foo:bar --picture {out}/p.png", "--reference 'foo:bar' is not"),
    ("build --discovery {f}/disc --input-size 0,5", "--input-size '0,5' is not H,W"),
    ("build --discovery {f}/disc --input-size 5", "is not H,W"),
    ("build --discovery {f}/disc --in-channels 9", "has 8 channels, but --in-channels is 9"),
    ("build --spec {f}/spec.json --in-channels 3", "in_channels"),
    ("build --spec {f}/spec.json --budget-macs 10", "cannot be met"),
    ("build --spec {f}/s_kernel_big.json --input-size 2,2", "a 7x7 kernel on a 2x2 input; at that size kernels up to 3"),
    ("build --discovery {f}/disc --connectivity sparse", "invalid choice"),
    ("build --discovery {f}/disc --out {f}/emptydir", "--out {f}/emptydir is a directory"),
    ("build --discovery {f}/disc --out {f}/afile/spec.json", "cannot be written: {f}/afile is a file"),
    ("build --discovery {f}/disc --picture {f}/afile/x.png", "--picture {f}/afile/x.png cannot be written"),
    ("build --discovery {f}/disc --picture {f}/emptydir", "--picture {f}/emptydir is a directory"),
    ("build --discovery {f}/missing", "no discovery file"),
    ("build --discovery {f}/deep.json", "nested too deeply"),
    ("build --discovery {f}/deepobj.json", "nested too deeply"),
    ("build --discovery {f}/bigint.json", "not JSON"),
    ("build --discovery {f}/latin1.json", "not a UTF-8 text file|not JSON"),
    ("build --spec {f}/deep.json", "nested too deeply"),
    ("build --spec {f}/bigint.json", "not JSON"),
    ("build --spec {f}/missing.json", "spec file .*missing.json not found"),
    ("build --spec {f}/disc/discovery.json", "format"),
    # grow
    ("grow --modules 0", "positive integer"),
    ("grow --modules 10000 --data digits", "modules must be an integer in 1..64"),
    ("grow --budget-like foo:bar --data digits", "--budget-like 'foo:bar' is not"),
    ("grow --budget-like resnet:3a --data digits", "unknown model 'resnet'"),
    ("grow --budget-macs -1 --data digits", "--budget-macs must be a positive number"),
    ("grow --budget-macs nan --data digits", "--budget-macs must be a positive number"),
    ("grow --width-scale 0 --data digits", "width_scale must be a number in"),
    ("grow --width-scale 1e9 --data digits", "width_scale must be a number in"),
    ("grow --stem-width 0", "positive integer"),
    ("grow --stem-width 100000 --data digits", "stem_width must be an integer in 1..65536"),
    ("grow --pool-after x --data digits", "--pool-after expects module indices"),
    ("grow --pool-after 5 --modules 2 --data digits", "pool_after index 5 is outside"),
    ("grow --clusters 10000 --data digits", "clusters is 10000, but the first layer clustered"),
    ("grow --clusters 40 --stem-width 32 --data digits", "clusters is 40, but the first layer"),
    ("grow --seed -1 --data digits", "seed must be an integer in 0..4294967295"),
    ("grow --lr -1 --data digits", "lr must be a positive number"),
    ("grow --affinity nope --data digits", "unknown affinity 'nope'"),
    ("grow --max-samples 1 --data digits", "max_samples must be at least 2"),
    ("grow --mode lazy", "invalid choice"),
    ("grow --warmup-steps -1 --data digits", "warmup_steps must be an integer >= 0"),
    ("grow --clip-grad-norm nan --data digits", "clip_grad_norm must be a number >= 0"),
    ("grow --data imagenet", "unknown dataset 'imagenet'"),
    ("grow --data digits --out {f}/afile", "--out {f}/afile is a file"),
    ("grow --data digits --out {f}/afile/g", "{f}/afile is a file, not a directory"),
    # compare
    ("compare --config {f}/missing.toml", "experiment configuration .*missing.toml not found"),
    ("compare --config {f}/e_seed_huge.toml --check", "seeds\\[0\\] is 99999999999999999999"),
    ("compare --config {f}/e_width_huge.toml --check", "at most 100,000,000 parameters"),
    # bench
    ("bench --name ../../x --tiny --only clustering", "--name '../../x' is not a file name"),
    ("bench --name /etc/x --tiny --only clustering", "is not a file name"),
    ("bench --name a/b --tiny", "is not a file name"),
    ("bench --name '' --tiny", "is not a file name"),
    ("bench --only nothing --tiny", "unknown measurement 'nothing'"),
    ("bench --threads 0 --tiny --only clustering", "--threads must be from 1 to 1,024; got 0"),
    ("bench --threads 100000 --tiny --only clustering", "--threads must be from 1 to 1,024; got 100000"),
    ("bench --only '' --tiny", "--only '' names no measurement"),
    ("bench --only , --tiny", "--only ',' names no measurement"),
    ("bench --input-size 1,28,28 --tiny --only clustering", "--input-size is only used with --model"),
    ("bench --weights {f}/missing.pt --tiny --only clustering", "--weights is only used with --model"),
    ("bench --plot {f}/disc/discovery.json --figures {out}", "is not a benchmark results file"),
    ("bench --plot {f}/bench.json --figures {out}", "holds no measurement to plot"),
    ("bench --plot {f}/deep.json --figures {out}", "nested too deeply"),
    ("bench --plot {f}/missing.json --figures {out}", "no benchmark results file"),
    ("bench --plot {f}/acts.npy --figures {out}", "not a UTF-8 text file|not JSON"),
    ("bench --plot {f}/bench.json", "--plot needs --figures"),
    ("bench --tiny --only clustering --out {f}/afile", "--out {f}/afile is a file"),
    ("bench --tiny --only clustering --figures {f}/afile", "--figures {f}/afile is a file"),
]

_DEFAULT_OUT = {"train": True, "discover": True, "grow": True, "compare": True, "bench": True, "build": False}


def _cases() -> list[tuple[list[str], str]]:
    import shlex

    cases = []

    def add(argv: str, message: str) -> None:
        cases.append((shlex.split(argv), message))

    for argv, message in OPTIONS:
        command = argv.split()[0]
        extra = " --out {out}" if "--out" not in argv and _DEFAULT_OUT[command] and "--plot" not in argv else ""
        if command == "build" and "--out" not in argv:
            extra = " --out {out}/spec.json"
        if command in ("train", "grow", "compare") and "--quiet" not in argv:
            extra += " --quiet"
        add(argv + extra, message)
    for spec, message in DATA:
        add(f"train --data {spec} --epochs 1 --out {{out}} --quiet", message)
        add(f"grow --data {spec} --modules 1 --epochs 1 --out {{out}} --quiet", message)
        add(f"discover --checkpoint {{f}}/ck --data {spec} --out {{out}}", message)
    for name, message in ACTIVATIONS:
        add(f"discover --activations {{f}}/{name} --out {{out}}", message)
    for name, message in CHECKPOINTS:
        add(f"discover --checkpoint {{f}}/{name} --out {{out}}", message)
    for name in ("rand.pt", "evil.pt", "shapes.pt", "statedict.pt"):
        add(f"discover --list-layers --checkpoint {{f}}/{name}", dict(CHECKPOINTS)[name])
    for name, message in _D_MSG.items():
        add(f"build --discovery {{f}}/d_{name}.json --out {{out}}/spec.json", message)
    for name, message in _S_MSG.items():
        if name == "kernel_big":  # a valid file; refused only at a small --input-size (OPTIONS)
            continue
        add(f"build --spec {{f}}/s_{name}.json --out {{out}}/spec.json", message)
    for name, message in _E_MSG.items():
        add(f"compare --config {{f}}/e_{name}.toml --out {{out}} --quiet", message)
        if name not in ("not_toml", "empty", "binary", "deep"):
            add(f"compare --config {{f}}/e_{name}.toml --check", message)
    return cases


CASES = _cases()


def run_case(argv: list[str], files: Path, out: Path) -> tuple[int, str]:
    """Run one case in-process; returns (exit status, stderr)."""
    import contextlib

    from sparsenet.cli import main

    argv = [a.replace("{f}", str(files)).replace("{out}", str(out)) for a in argv]
    err, sink = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return code, err.getvalue()


if __name__ == "__main__":  # the whole battery in one process, with its peak memory
    import re
    import resource
    import sys
    import tempfile
    import time

    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="battery-"))
    files = make_files(root / "files")
    bad = 0
    by_command: dict[str, int] = {}
    for i, (argv, message) in enumerate(CASES):
        out = root / f"out{i}"
        code, err = run_case(argv, files, out)
        want = message.replace("{f}", str(files)).replace("{out}", str(out))
        ok = code == 2 and "Traceback" not in err and re.search(want, err, re.S) and not out.exists()
        by_command[argv[0]] = by_command.get(argv[0], 0) + 1
        if not ok:
            bad += 1
            print(f"FAIL {argv}: {code} {err.strip()[:300]}", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(CASES)} cases ({', '.join(f'{k} {v}' for k, v in sorted(by_command.items()))}); "
          f"{bad} failed; pickle executed: {(files / MARKER).exists()}; peak RSS {peak:.0f} MB; "
          f"{time.perf_counter() - t0:.0f} s")
