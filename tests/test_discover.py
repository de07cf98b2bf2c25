"""`sparsenet discover` end to end: saved activations, a tiny trained model, and bad input."""

import json

import numpy as np
import pytest
import torch

from sparsenet.cli import main
from sparsenet.data.synthetic import planted_groups

FAST = ["--permutations", "3", "--resamples", "2"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def planted():
    return planted_groups(n_samples=96, group_sizes=(6, 6, 6), kernel_sizes=(1, 3, 5), size=10, random_state=0)


def test_activations_npy_end_to_end(capsys, tmp_path, planted):
    path = tmp_path / "acts.npy"
    np.save(path, planted.X)
    code, out, err = run(capsys, "discover", "--activations", path, "--out", tmp_path / "run", *FAST)
    assert code == 0, err
    d = json.loads((tmp_path / "run" / "discovery.json").read_text())
    assert d["channels"] == planted.X.shape[1] and len(d["labels"]) == d["channels"]
    for key in ("channels", "labels", "clusters", "n_clusters", "significance", "stability", "provenance"):
        assert key in d
    assert {"z", "p"} <= set(d["significance"])
    for c in d["clusters"]:
        assert {"id", "channels", "size", "kernel_size", "spatial_profile", "stability"} <= set(c)
        assert 0.0 <= c["stability"] <= 1.0  # measured with the same halves as d["stability"]
    assert sorted(c["kernel_size"] for c in d["clusters"]) == [1, 3, 5]
    assert d["provenance"]["sparsenet_version"] and d["provenance"]["samples"] == 96
    for name in ("report.md", "correlation.png", "spectrum.png", "spatial_profiles.png", "cluster_sizes.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert "kernel" in out


def test_activations_pt_flat(capsys, tmp_path, planted):
    flat = torch.from_numpy(planted.X.mean(axis=(2, 3)))
    torch.save(flat, tmp_path / "flat.pt")
    code, _, err = run(capsys, "discover", "--activations", tmp_path / "flat.pt", "--clusters", "3",
                       "--out", tmp_path / "run", *FAST)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "discovery.json").read_text())["n_clusters"] == 3


def test_checkpoint_and_layer(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "plaincnn", "--model-arg", "width=4", "--data", "digits",
                       "--epochs", "1", "--out", tmp_path / "model", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "discover", "--list-layers", "--checkpoint", tmp_path / "model" / "checkpoint.pt")
    assert code == 0 and "features.relu2" in out and "4x8x8" in out
    code, out, err = run(capsys, "discover", "--checkpoint", tmp_path / "model" / "checkpoint.pt",
                         "--layer", "features.relu2", "--max-samples", "200", "--out", tmp_path / "run", *FAST)
    assert code == 0, err
    d = json.loads((tmp_path / "run" / "discovery.json").read_text())
    assert d["provenance"]["layer"] == "features.relu2" and d["provenance"]["data"] == "digits"
    assert d["provenance"]["layer_shape"] == [8, 8, 8] and d["channels"] == 8  # conv2 doubles the width


def _bad(capsys, tmp_path, array, *extra):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    code, _, err = run(capsys, "discover", "--activations", path, "--out", tmp_path / "run", *FAST, *extra)
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "nothing may be written on error"
    return err


def test_nan_reports_count_and_channels(capsys, tmp_path, planted):
    x = planted.X.copy()
    x[0, 4, 0, 0] = np.nan
    x[1, 7, 1, 1] = np.inf
    err = _bad(capsys, tmp_path, x)
    assert "2" in err and "4" in err and "7" in err


def test_too_few_channels_or_samples(capsys, tmp_path):
    assert "channel" in _bad(capsys, tmp_path, np.random.rand(50, 1, 4, 4)).lower()
    assert "sample" in _bad(capsys, tmp_path, np.random.rand(1, 5)).lower()


def test_k_larger_than_c(capsys, tmp_path):
    err = _bad(capsys, tmp_path, np.random.rand(40, 5), "--clusters", "9")
    assert "9" in err and "5" in err


def test_wrong_shape_and_suffix(capsys, tmp_path):
    assert "N x C x H x W" in _bad(capsys, tmp_path, np.random.rand(4, 5, 6))
    other = tmp_path / "acts.csv"
    other.write_text("1,2\n")
    code, _, err = run(capsys, "discover", "--activations", other, "--out", tmp_path / "run")
    assert code == 2 and ".npy" in err


def test_unknown_layer_names_available(capsys, tmp_path):
    run(capsys, "train", "--model", "plaincnn", "--model-arg", "width=4", "--data", "digits", "--epochs", "1",
        "--out", tmp_path / "model", "--quiet")
    code, _, err = run(capsys, "discover", "--checkpoint", tmp_path / "model" / "checkpoint.pt",
                       "--layer", "features.conv9", "--out", tmp_path / "run")
    assert code == 2 and "features.conv1" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv,message", [
    (["--affinity", "cosine"], "unknown affinity 'cosine'; accepted: pearson_abs"),
    (["--method", "kmeans"], "unknown method 'kmeans'; accepted: spectral"),
    (["--permutations", "-1"], "permutations must be an integer from 0"),
    (["--permutations", "100001"], "permutations must be an integer from 0 to 100,000 (0 skips it), got 100001"),
])
def test_bad_settings_refused_before_training(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path / "cache"))  # nothing may be trained
    code, _, err = run(capsys, "discover", *argv, "--out", tmp_path / "run")
    assert code == 2 and message in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_cached_default_model_reused_only_when_trained_with_the_current_recipe(tmp_path, monkeypatch):
    from dataclasses import asdict
    from sparsenet.discover import DEFAULT_EPOCHS, _default_config, _default_dir, cached_default_checkpoint
    from sparsenet.training.checkpoint import save_checkpoint

    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path / "cache"))
    assert cached_default_checkpoint(0) is None
    path = _default_dir(0) / "checkpoint.pt"
    recipe = asdict(_default_config(0))
    fields = dict(model="plaincnn", model_kwargs={}, state_dict={}, epoch=DEFAULT_EPOCHS)
    save_checkpoint(path, **fields, config=recipe)
    assert cached_default_checkpoint(0) == path
    save_checkpoint(path, **fields, config={**recipe, "lr": recipe["lr"] * 2})   # an older default recipe
    assert cached_default_checkpoint(0) is None
    save_checkpoint(path, **{**fields, "epoch": DEFAULT_EPOCHS - 1}, config=recipe)  # an interrupted training
    assert cached_default_checkpoint(0) is None
