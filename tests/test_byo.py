"""Bring your own model, data and device: a model defined here, trained for one epoch, discovered
through ``sparsenet.discover`` with a DataLoader and through the CLI with ``--model FILE.py:callable``
and ``--weights``; statistics on the device path against the numpy engine; saved statistics."""

import json
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import sparsenet
from sparsenet.cli import main
from sparsenet.errors import SparsenetError
from sparsenet.models.external import build_from_spec, check_same_source, parse_model_spec

NET = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width=6, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

        def forward(self, x):
            return self.head(self.features(x))


    def make(width=6, num_classes=10):
        return Net(width, num_classes)


    def not_a_module():
        return [1, 2]


    CONSTANT = 3
''')
FAST = ["--permutations", "0", "--resamples", "0", "--max-samples", "300", "--clusters", "3"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The user's file, a one-epoch training run of it by the CLI, and its state_dict saved plainly."""
    root = tmp_path_factory.mktemp("byo")
    (root / "net.py").write_text(NET)
    code = main(["train", "--model", f"{root / 'net.py'}:make", "--model-arg", "width=6", "--data", "digits",
                 "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(root / "model")])
    assert code == 0
    ckpt = torch.load(root / "model" / "checkpoint.pt", weights_only=True)
    torch.save(ckpt["state_dict"], root / "weights.pt")
    return root, ckpt


def test_checkpoint_records_the_import_path_and_arguments(trained):
    root, ckpt = trained
    assert ckpt["model"] == f"{(root / 'net.py').resolve()}:make"
    assert ckpt["model_kwargs"] == {"width": 6, "num_classes": 10}  # in_channels is not accepted: not passed


def test_python_api_with_a_loader_equals_the_cli_with_weights(trained, capsys, tmp_path):
    root, ckpt = trained
    code, _, err = run(capsys, "discover", "--model", f"{root / 'net.py'}:make", "--model-arg", "width=6",
                       "--weights", root / "weights.pt", "--data", "digits", "--layer", "features.3",
                       "--device", "cpu", "--out", tmp_path / "cli", *FAST)
    assert code == 0, err
    cli = json.loads((tmp_path / "cli" / "discovery.json").read_text())

    from sparsenet.data import load_dataset, normalize
    from sparsenet.models.external import load_factory

    model = load_factory(parse_model_spec(f"{root / 'net.py'}:make"))(width=6)
    model.load_state_dict(torch.load(root / "weights.pt", weights_only=True))
    dataset = load_dataset("digits", seed=0)
    x = normalize(dataset.x_train, *dataset.mean_std())
    loader = DataLoader(TensorDataset(x, dataset.y_train), batch_size=250)
    found = sparsenet.discover(model, "features.3", loader, device="cpu", clusters=3, permutations=0,
                               resamples=0, max_samples=300)
    assert list(found.labels) == cli["labels"]
    assert [c.kernel_size for c in found.clusters] == [c["kernel_size"] for c in cli["clusters"]]
    assert found.provenance["samples"] == cli["provenance"]["samples"] == 300
    # save(dir) writes what the CLI writes
    found.save(tmp_path / "api")
    names = sorted(p.name for p in (tmp_path / "api").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert json.loads((tmp_path / "api" / "discovery.json").read_text())["labels"] == cli["labels"]


def test_checkpoint_rebuilds_only_with_the_same_import_path(trained, capsys, tmp_path):
    root, _ = trained
    ckpt = root / "model" / "checkpoint.pt"
    code, _, err = run(capsys, "discover", "--checkpoint", ckpt, "--out", tmp_path / "a", *FAST)
    assert code == 2 and "never runs code" in err and "--model" in err
    (tmp_path / "other.py").write_text(NET)
    code, _, err = run(capsys, "discover", "--checkpoint", ckpt, "--model", f"{tmp_path / 'other.py'}:make",
                       "--out", tmp_path / "b", *FAST)
    assert code == 2 and "same import path" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    code, _, err = run(capsys, "discover", "--checkpoint", ckpt, "--model", f"{root / 'net.py'}:make",
                       "--device", "cpu", "--out", tmp_path / "c", *FAST)
    assert code == 0, err
    assert (tmp_path / "c" / "stats.npz").exists()


def test_tensor_and_loader_give_identical_statistics(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 10, 3, padding=1), torch.nn.ReLU())
    x = torch.randn(90, 2, 7, 7)
    a = sparsenet.discover(net, "1", x, device="cpu", batch_size=32, permutations=0, resamples=0, clusters=2)
    b = sparsenet.discover(net, "1", DataLoader(TensorDataset(x), batch_size=32), device="cpu",
                           permutations=0, resamples=0, clusters=2)
    sa, sb = a.stats.to_dict(), b.stats.to_dict()
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(sa[k], sb[k], equal_nan=sa[k].dtype.kind == "f") for k in sa)
    assert a.labels == b.labels and a.stats.n_images_ == 90
    # the streamed statistics are those of the activations (numpy.corrcoef is the oracle)
    acts = net(x).detach().permute(0, 2, 3, 1).reshape(-1, 10).numpy().astype(np.float64)
    active = ~a.stats.inactive_
    np.testing.assert_allclose(a.stats.correlation_[np.ix_(active, active)],
                               np.corrcoef(acts[:, active].T), atol=1e-10)


def test_discover_stats_equals_the_run_that_saved_them(tmp_path, capsys):
    from sparsenet.data.synthetic import planted_groups

    planted = planted_groups(n_samples=64, group_sizes=(6, 6, 6), kernel_sizes=(1, 3, 5), size=10, random_state=0)
    net = torch.nn.Sequential(torch.nn.Identity())  # the planted maps are the layer's output
    first = sparsenet.discover(net, "0", torch.as_tensor(planted.X), device="cpu", permutations=0, resamples=0)
    first.save(tmp_path / "first")
    assert [c.kernel_size for c in first.clusters] == [1, 3, 5]
    code, _, err = run(capsys, "discover", "--stats", tmp_path / "first" / "stats.npz", "--out", tmp_path / "again",
                       "--permutations", "0", "--resamples", "0")
    assert code == 0, err
    one, two = (json.loads((tmp_path / d / "discovery.json").read_text()) for d in ("first", "again"))
    assert one["labels"] == two["labels"] and one["clusters"] == two["clusters"]
    np.testing.assert_array_equal(np.load(tmp_path / "first" / "affinity.npy"),
                                  np.load(tmp_path / "again" / "affinity.npy"))
    # other settings re-analyse the same statistics; the samples-only tests say why they are missing
    code, _, err = run(capsys, "discover", "--stats", tmp_path / "first" / "stats.npz", "--out", tmp_path / "k2",
                       "--clusters", "2")
    assert code == 0 and "need the samples" in err
    k2 = json.loads((tmp_path / "k2" / "discovery.json").read_text())
    assert k2["n_clusters"] == 2 and k2["significance"] == {} and "not_computed" in k2["provenance"]


def test_device_refusals_and_cpu(capsys, tmp_path):
    from sparsenet.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SparsenetError, match="not understood.*accepted: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SparsenetError, match="CUDA is not available"):
            resolve_device("cuda:1")
        np.save(tmp_path / "acts.npy", np.random.rand(20, 4, 5, 5))
        code, _, err = run(capsys, "discover", "--model", "plaincnn", "--weights", tmp_path / "w.pt",
                           "--device", "cuda", "--out", tmp_path / "run")
        assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1
        code, _, err = run(capsys, "train", "--device", "cuda", "--out", tmp_path / "t")
        assert code == 2 and "CUDA is not available" in err
        assert not (tmp_path / "run").exists() and not (tmp_path / "t").exists()


def test_bad_import_paths_refused_by_name(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    cases = {f"{tmp_path / 'missing.py'}:make": "missing.py not found",
             f"{tmp_path / 'net.py'}:nope": "no attribute 'nope'; its callables: Net, make, not_a_module",
             f"{tmp_path / 'net.py'}:not_a_module": "returned a list, not a torch.nn.Module",
             f"{tmp_path / 'net.py'}:CONSTANT": "'CONSTANT' is a int, not a callable",
             "no_such_package.models:make": "cannot import module 'no_such_package.models'",
             "bad name!:make": "neither a .py file nor a dotted module name"}
    for spec, message in cases.items():
        with pytest.raises(SparsenetError, match=message.replace(".", r"\.").replace("(", r"\(")):
            build_from_spec(spec)
    code, _, err = run(capsys, "train", "--model", f"{tmp_path / 'net.py'}:nope", "--out", tmp_path / "t")
    assert code == 2 and "'nope'" in err and not (tmp_path / "t").exists()
    with pytest.raises(SparsenetError, match="unexpected argument.*'depth'"):
        build_from_spec(f"{tmp_path / 'net.py'}:make", {"depth": 3})
    model, kwargs = build_from_spec("sparsenet.models.plaincnn:PlainCNN", {"width": 4})
    assert isinstance(model, torch.nn.Module) and kwargs == {"width": 4}
    with pytest.raises(SparsenetError, match="same import path"):
        check_same_source(f"{tmp_path / 'net.py'}:make", f"{tmp_path / 'net.py'}:not_a_module", "ckpt")


def test_device_engine_matches_the_numpy_engine():
    """The device path (here run on CPU tensors) gives the numpy engine's statistics, to rounding."""
    from sparsenet.stats import ChannelStats
    from sparsenet.stats.device import add_device_batch
    from sparsenet.stats.engine import _first_thresholds, _raise_nonfinite

    g = torch.Generator().manual_seed(0)
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        for shape, threshold in (((7, 5, 6, 5), 0.0), ((7, 5, 6, 5), "quantile:0.8"), ((9, 4), 0.5)):
            host, dev = (ChannelStats(max_radius=2, threshold=threshold, dtype=dtype) for _ in range(2))
            for _ in range(3):
                X = torch.randn(*shape, generator=g) + 3
                host.partial_fit(X)
                dev._state = add_device_batch(dev._state, X, max_radius=2, dtype=dtype, cofiring=True,
                                              threshold=dev._threshold, first_thresholds=_first_thresholds,
                                              on_nonfinite=_raise_nonfinite)
            np.testing.assert_allclose(dev.covariance_, host.covariance_, atol=tol)
            np.testing.assert_array_equal(dev.cofiring_, host.cofiring_)
            if len(shape) == 4:
                np.testing.assert_allclose(dev.spatial_correlation(), host.spatial_correlation(), atol=tol)


def test_log_file_and_batches_of_every_form(tmp_path, capsys):
    from sparsenet.recording import input_batches

    x = torch.arange(10.0).reshape(10, 1)
    for data in (x, TensorDataset(x), DataLoader(TensorDataset(x, x), batch_size=4), [{"x": x[:6]}, {"x": x[6:]}]):
        got = torch.cat(list(input_batches(data, batch_size=4, max_samples=7)))
        assert torch.equal(got, x[:7])
    with pytest.raises(SparsenetError, match="accepted: a torch.utils.data.DataLoader"):
        list(input_batches(3.0))
    np.save(tmp_path / "acts.npy", np.random.default_rng(0).random((30, 6, 4, 4)))
    code, out, err = run(capsys, "discover", "--activations", tmp_path / "acts.npy", "--out", tmp_path / "run",
                         "--log", tmp_path / "log.txt", "--permutations", "2", "--resamples", "0")
    assert code == 0, err
    text = (tmp_path / "log.txt").read_text()
    assert "command: sparsenet discover --activations" in text and "INFO" in text


def test_compare_model_candidate_runs_only_when_trusted(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    spec = f"{tmp_path / 'net.py'}:make"
    config = tmp_path / "mine.toml"
    config.write_text(textwrap.dedent(f'''
        [experiment]
        name = "mine"
        seeds = [0]
        [data]
        name = "digits"
        [train]
        epochs = 1
        [latency]
        warmup = 0
        repeats = 1
        [[candidates]]
        name = "mine"
        kind = "model"
        model = "{spec}"
        model_args = {{ width = 4 }}
    '''))
    out = tmp_path / "out"
    code, _, err = run(capsys, "compare", "--config", config, "--out", out, "--quiet")
    assert code == 2 and f"--trust-model {spec}" in err and not (out / "runs").exists()
    code, stdout, err = run(capsys, "compare", "--config", config, "--out", out, "--quiet", "--device", "cpu",
                            "--trust-model", spec)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())
    rows = rows["runs"] if isinstance(rows, dict) else rows
    assert [r["candidate"] for r in rows] == ["mine"] and rows[0]["role"] == "baseline"
    assert rows[0]["accuracy"] > 0.1 and set(rows[0]["latency_ms"]) == {"b1", "b64"}
    assert "[1/1] mine seed 0: training" in stdout


def test_bench_times_a_user_model_on_the_device(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    code, out, err = run(capsys, "bench", "--tiny", "--model", f"{tmp_path / 'net.py'}:make", "--model-arg", "width=4",
                         "--input-size", "1,8,8", "--device", "cpu", "--out", tmp_path / "bench")
    assert code == 0, err
    data = json.loads((tmp_path / "bench" / "tiny.json").read_text())
    assert list(data["measurements"]) == ["model"]
    m = data["measurements"]["model"]
    assert m["device"] == "cpu" and m["layer"] == "features.3" and m["params"] == sum(
        p.numel() for p in build_from_spec(f"{tmp_path / 'net.py'}:make", {"width": 4})[0].parameters())
    assert all(v["ratio"] > 0 for v in m["batches"].values())
    code, _, err = run(capsys, "bench", "--tiny", "--model", f"{tmp_path / 'net.py'}:make", "--out", tmp_path / "b2")
    assert code == 2 and "--input-size" in err


def test_training_loader_gives_the_batches_of_iterate_batches():
    """Training reads a DataLoader now; its shuffled, normalised batches are those the in-memory
    iterator gave (same generator draws), so seeded training is unchanged."""
    from sparsenet.data import iterate_batches, normalize
    from sparsenet.data.loader import image_loader

    x, y = torch.rand(23, 2, 4, 4), torch.arange(23)
    mean, std = [0.4, 0.6], [0.2, 0.3]
    state = torch.get_rng_state()
    got = list(image_loader(x, y, mean, std, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(torch.get_rng_state(), state)  # the loader draws nothing from the global RNG
    want = list(iterate_batches(normalize(x, mean, std), y, 5, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert len(got) == len(want) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, want))


def test_cli_error_is_one_line_outside_pytest_logging(tmp_path):
    """In a plain process (no logging configured) an error is printed once, as one line."""
    import subprocess
    import sys

    code = "import sys; from sparsenet.cli import main; sys.exit(main(['train', '--model', 'missing.py:make']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "missing.py not found" in done.stderr


def test_streaming_reads_only_what_it_needs_and_keeps_no_samples():
    """With no test that needs the samples, the analyser reads the streamed statistics alone, and
    an endless iterable of batches is read only up to max_samples."""
    import itertools

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU())
    reads = []

    def endless():
        for i in itertools.count():
            reads.append(i)
            yield torch.randn(16, 2, 6, 6, generator=torch.Generator().manual_seed(i))

    found = sparsenet.discover(net, "1", endless(), device="cpu", max_samples=40, permutations=0, resamples=0,
                               clusters=2)
    assert reads == [0, 1, 2] and found.stats.n_images_ == 40
    assert found.analyzer.stats_ is found.stats and found.significance == {} and found.stability is None
