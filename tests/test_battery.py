"""The hostile-user battery (tests/battery.py), every case in-process through sparsenet.cli.main:
exit 2, one line naming the problem, no traceback, no internal staging name, --out untouched.
And the staging hygiene, resume checks and roll-backs that the battery's shape cannot hold."""

import json
import os
import re

import numpy as np
import pytest

from battery import CASES, MARKER, make_files, run_case
from sparsenet.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("battery"))


def test_the_battery_is_large_and_covers_every_command():
    commands = {argv[0] for argv, _ in CASES}
    assert len(CASES) >= 300
    assert commands == {"train", "discover", "build", "grow", "compare", "bench"}


@pytest.mark.parametrize("argv,message", CASES, ids=[f"{i}-{' '.join(a)[:60]}" for i, (a, _) in enumerate(CASES)])
def test_refused_with_one_line_and_out_untouched(files, tmp_path, argv, message):
    out = tmp_path / "out"
    code, err = run_case(argv, files, out)
    want = message.replace("{f}", str(files)).replace("{out}", str(out))
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert len(err.strip().splitlines()) == 1 or last.startswith("sparsenet") and "error:" in last, err
    assert re.search(want, last, re.S), err
    assert ".tmp" not in err and ".staging" not in err
    assert "weights_only" not in err  # never torch's advice to turn the safety check off
    assert "allow_pickle" not in err  # nor numpy's
    assert not out.exists(), "a refused command wrote its --out"


def test_no_pickle_was_ever_executed(files):
    for argv, _ in CASES[::7]:
        run_case(argv, files, files / "unused-out")
    assert not (files / MARKER).exists()


def _listing(path):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()}


@pytest.mark.parametrize("extra,message", [
    (["--model-arg", "width=8"], r"other model arguments .*'width': \(4, 8\)"),
    (["--image-size", "12"], r"trained on inputs of shape 1x8x8, now 1x12x12"),
    (["--lr", "0.1"], r"other settings"),
])
def test_resume_with_other_settings_refused_and_run_untouched(files, capsys, extra, message):
    before = _listing(files / "ck")
    argv = ["train", "--data", "digits", "--epochs", "1", "--resume", "--quiet", "--out", str(files / "ck")]
    code = main(argv + (extra if "--model-arg" in extra else ["--model-arg", "width=4", *extra]))
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert _listing(files / "ck") == before


def test_discover_cleans_stale_staging_and_an_earlier_runs_figures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6, 5, 5)).astype(np.float32)
    np.save(tmp_path / "spatial.npy", x)
    np.save(tmp_path / "flat.npy", x.mean(axis=(2, 3)))
    out = tmp_path / "run"
    fast = ["--clusters", "2", "--permutations", "0", "--resamples", "0", "--out", str(out)]
    assert main(["discover", "--activations", str(tmp_path / "spatial.npy"), *fast]) == 0
    assert (out / "spatial_profiles.png").exists()
    # what a SIGKILLed run leaves: a staging folder and a 0-byte temporary file of a dead process
    dead = 2**22 + 12345
    (tmp_path / f".run.{dead}.abcd1234.staging").mkdir()
    (out / f".discovery.json.{dead}.abcd1234.tmp").write_bytes(b"")
    live = tmp_path / f".run.{os.getpid()}.keep.staging"   # this process is alive: left alone
    live.mkdir()
    assert main(["discover", "--activations", str(tmp_path / "flat.npy"), *fast]) == 0
    capsys.readouterr()
    assert not (out / "spatial_profiles.png").exists(), "an earlier run's figure survived beside the new results"
    assert json.loads((out / "discovery.json").read_text())["provenance"]["layer_shape"] == [6]
    assert not (tmp_path / f".run.{dead}.abcd1234.staging").exists()
    assert not (out / f".discovery.json.{dead}.abcd1234.tmp").exists()
    assert live.exists()


def test_atomic_write_errors_name_the_target_not_the_temporary_file(tmp_path):
    from sparsenet.errors import SparsenetError
    from sparsenet.io import atomic_write_json

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(SparsenetError, match=r"cannot write .*d: it is a directory") as info:
        atomic_write_json(tmp_path / "d", {})
    assert ".tmp" not in str(info.value)
    with pytest.raises(SparsenetError, match=r"f is a file, not a directory"):
        atomic_write_json(tmp_path / "f" / "x.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_failed_grow_leaves_no_settings_or_step_directory(tmp_path, capsys):
    """The budget is found unreachable only after step 0 trained: the run is rolled back, so the
    corrected command is not refused as 'a growth with other settings'."""
    out = tmp_path / "g"
    argv = ["grow", "--data", "digits", "--modules", "1", "--epochs", "1", "--stem-width", "8", "--max-samples",
            "100", "--permutations", "0", "--resamples", "0", "--out", str(out), "--quiet"]
    assert main(argv + ["--budget-macs", "10"]) == 2
    assert "cannot be met" in capsys.readouterr().err
    assert not out.exists()
    (out).mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(argv + ["--budget-macs", "10"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # what was there stays, nothing else


def test_checkpoint_directory_is_accepted(files, tmp_path, capsys):
    """--checkpoint DIR reads DIR/checkpoint.pt rather than calling it 'not found'."""
    code = main(["discover", "--checkpoint", str(files / "ck"), "--clusters", "2", "--permutations", "0",
                 "--resamples", "0", "--max-samples", "200", "--out", str(tmp_path / "d")])
    assert code == 0, capsys.readouterr().err
    provenance = json.loads((tmp_path / "d" / "discovery.json").read_text())["provenance"]
    assert provenance["model"] == "plaincnn" and provenance["data"] == "digits"
