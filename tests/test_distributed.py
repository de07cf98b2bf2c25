"""Scale-out: claim files, `compare --parallel runs` under torchrun against the serial grid, a killed worker,
sharded discover, and data-parallel (DDP) trainings of train, compare and grow."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsenet.claims import Claims
from sparsenet.compare.experiment import load_experiment, parse_experiment
from sparsenet.compare.grid import _Grid, grid_tasks
from sparsenet.compare.run import run_comparison
from sparsenet.distributed import World, per_rank_batch, threads_per_process, world
from sparsenet.errors import SparsenetError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "smoke.toml"
TIMING = {"train_time_s", "latency_ms", "pipeline_time_s", "grow_time_s"}

# A grid with every kind of dependency but the skeleton's: a learning-rate sweep (2 rates), a
# matched candidate (waits for its target at the same seed); eight tiny trainings of about a second.
# the tail every test grid shares: untimed latency and one tiny plain CNN
PLAIN = """[latency]
threads = 1
warmup = 0
repeats = 1
[[candidates]]
name = "plain"
kind = "plaincnn"
width = 4
"""

TINY = """
[experiment]
name = "tiny-grid"
seeds = [0, 1]
threads = 1
[data]
name = "digits"
image_size = 8
validation = 0.2
[train]
epochs = 3
batch_size = 64
[sweep]
lrs = [0.05, 0.1]
seeds = [0]
""" + PLAIN + """[[candidates]]
name = "plain-matched"
kind = "plaincnn"
family = "matched"
match = "plain"
"""


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return {**env, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _torchrun(nproc, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "sparsenet", *args]


def _table(out: Path):
    """results.json without its timing fields."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in json.loads((out / "results.json").read_text())]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("grid")
    config = base / "tiny.toml"
    config.write_text(TINY)
    serial = base / "serial"
    run_comparison(load_experiment(config), serial, config_text=TINY, progress=False, log=lambda m: None, plots=False)
    return base, config, serial


# ----------------------------------------------------------------------------- the world and claims

def test_world_from_the_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert world() == World(0, 1, 0, 1) and world().main
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert world() == World(3, 4, 1, 2) and not world().main
    assert threads_per_process(None, world()) == max(1, (os.cpu_count() or 1) // 2)
    assert threads_per_process(3, world()) == 3
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(SparsenetError, match="RANK=4 is not below WORLD_SIZE=4"):
        world()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(SparsenetError, match="RANK='two': expected an integer >= 0"):
        world()


def test_one_claim_one_owner_and_stale_claims_taken_over(tmp_path):
    a, b = Claims(tmp_path), Claims(tmp_path)
    assert a.try_claim("job") and a.try_claim("job")          # ours already
    assert not b.try_claim("job") and b.holder("job")["token"] == a.owner["token"]
    a.release("job")
    assert b.holder("job") is None and b.try_claim("job") and not a.try_claim("job")
    b.close()
    assert not (tmp_path / "job.claim").exists()
    # a claim whose process is gone (same machine) is taken over at once
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {**a.owner, "pid": int(gone.stdout), "token": "dead"}
    (tmp_path / "old.claim").write_text(json.dumps(dead))
    assert a.holder("old") is None and a.try_claim("old") and a.mine("old")
    # another machine's claim: live while its heartbeat is fresh, stale once older than stale_s
    remote = {"machine": "elsewhere:1234", "pid": 1, "token": "remote"}
    (tmp_path / "far.claim").write_text(json.dumps(remote))
    assert not Claims(tmp_path, stale_s=60).try_claim("far")
    old = time.time() - 120
    os.utime(tmp_path / "far.claim", (old, old))
    c = Claims(tmp_path, stale_s=60)
    assert c.try_claim("far") and json.loads((tmp_path / "far.claim").read_text())["token"] == c.owner["token"]
    a.close()
    c.close()


def test_a_skeleton_shared_by_two_candidates_is_trained_by_the_first(tmp_path):
    e = load_experiment(SMOKE)
    grid = _Grid(e, tmp_path, None, False, print, None)
    task = {t.key: t for t in grid_tasks(e)}
    first, second = task["run.swap-3b.seed0"], task["run.swap-3b-full.seed0"]
    assert grid.ready(first) and not grid.ready(second)
    done = tmp_path / "runs" / "skeleton@0.125x2" / "seed0" / "metrics.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    assert grid.ready(second) and not grid.ready(task["run.swap-3b-full.seed1"])


def test_the_grid_waits_for_the_sweep_and_the_matched_target(tiny):
    _, config, serial = tiny
    e = load_experiment(config)
    keys = [t.key for t in grid_tasks(e)]
    assert keys[:4] == ["sweep.plaincnn.lr0.05.seed0", "sweep.plaincnn.lr0.1.seed0",
                        "sweep.matched.lr0.05.seed0", "sweep.matched.lr0.1.seed0"]
    assert keys[4:] == ["run.plain.seed0", "run.plain-matched.seed0", "run.plain.seed1", "run.plain-matched.seed1"]
    fresh = _Grid(e, serial.parent / "nothing-yet", None, False, print, None)
    ready = [t.key for t in fresh.tasks if fresh.ready(t)]
    assert ready == keys[:2]                                  # the matched family waits for its target's sweep
    full = _Grid(e, serial, None, False, print, None)
    assert all(full.ready(t) and full.done(t) for t in full.tasks)


# ----------------------------------------------------------------------------- two processes

def test_a_killed_worker_leaves_a_grid_that_two_ranks_resume_into_the_serial_one(tiny):
    base, config, serial = tiny
    out = base / "killed"
    cmd = [sys.executable, "-m", "sparsenet", "compare", "--config", str(config), "--out", str(out), "--quiet",
           "--parallel", "runs"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 300   # under heavy load start-up and the first epoch took over 120 s
        while not list(out.glob("**/checkpoint.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    claims = list((out / "claims").glob("*.claim"))
    assert len(claims) == 1 and json.loads(claims[0].read_text())["pid"] == proc.pid   # left behind, owner gone
    assert not (out / "results.json").exists() and not (out / "summary.json").exists()
    assert len(list(out.glob("**/records/**/*.json"))) < 8
    for record in out.glob("**/records/**/*.json"):           # whatever was written is whole
        assert json.loads(record.read_text())["rows"]
    # two torchrun ranks take the dead worker's claim over, resume its run and do the rest of the grid
    rerun = subprocess.run(_torchrun(2, "compare", "--config", str(config), "--out", str(out), "--quiet",
                                     "--parallel", "runs"), capture_output=True, text=True, env=_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = rerun.stdout + rerun.stderr
    assert "resuming" in log and "[rank 0/2]" in log and "[rank 1/2]" in log and log.count("writing the summary") == 1
    assert _table(out) == _table(serial)
    assert json.loads((out / "sweep.json").read_text())["chosen"] == json.loads((serial / "sweep.json").read_text())["chosen"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parallel"]["world_size"] == 2 and summary["complete"]
    assert not list((out / "claims").iterdir())               # every claim released



def test_two_workers_started_by_hand_share_a_fresh_grid_into_the_serial_one(tiny):
    # no torchrun: two plain processes on one fresh --out (as on machines sharing a filesystem)
    base, config, serial = tiny
    out = base / "by-hand"
    cmd = [sys.executable, "-m", "sparsenet", "compare", "--config", str(config), "--out", str(out), "--quiet",
           "--parallel", "runs"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
             for _ in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert sum(log.count("writing the summary") for log in logs) == 1
    done = [int(n) for log in logs for n in re.findall(r"(\d+) run\(s\) done", log)]
    assert len(done) == 2 and sum(done) == len(grid_tasks(load_experiment(config)))   # no task done twice
    assert _table(out) == _table(serial)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["parallel"]["world_size"] == 1
    assert not list((out / "claims").iterdir())

def test_a_different_configuration_is_refused_by_every_worker(tiny, tmp_path):
    _, config, serial = tiny
    other = parse_experiment({**__import__("tomllib").loads(TINY), "train": {"epochs": 2, "batch_size": 64}})
    with pytest.raises(SparsenetError, match="holds the results of another configuration"):
        run_comparison(other, serial, progress=False, log=lambda m: None, parallel="runs")
    with pytest.raises(SparsenetError, match="expected 'runs'"):
        run_comparison(other, tmp_path / "x", progress=False, log=lambda m: None, parallel="data")


# ----------------------------------------------------------------------------- discover on two ranks

DISCOVER_SCRIPT = """
import sys
import torch
from torch import nn
import sparsenet
from sparsenet.data.synthetic import planted_groups

x = torch.as_tensor(planted_groups(random_state=0).X).float()[:201]    # an odd count: unequal shards
for permutations in (0, 4):   # from the merged sums alone / with the samples gathered for the null
    found = sparsenet.discover(nn.Sequential(nn.Identity()), "0", x, device="cpu", batch_size=32, max_samples=201,
                               permutations=permutations, resamples=permutations // 2, seed=0)
    if found is not None:
        found.save(f"{sys.argv[1]}/p{permutations}")
"""


def test_discover_on_two_ranks_equals_one_process(tmp_path):
    script = tmp_path / "discover_planted.py"
    script.write_text(DISCOVER_SCRIPT)
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(tmp_path / "two")], capture_output=True, text=True, env=_env(), timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    for permutations in (0, 4):
        _same_discovery(tmp_path / "one" / f"p{permutations}", tmp_path / "two" / f"p{permutations}")
    assert json.loads((tmp_path / "two" / "p4" / "discovery.json").read_text())["significance"]["n_permutations"] == 4


def _close(x, y) -> bool:
    """Equal, floats to 1e-9 relative (and dicts and lists item by item)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and isinstance(y, float):
        return x == pytest.approx(y, rel=1e-9, abs=1e-12)
    return x == y


def _same_discovery(one: Path, two: Path):
    import numpy as np

    a, b = (json.loads((d / "discovery.json").read_text()) for d in (one, two))
    assert a["labels"] == b["labels"] and len(set(a["labels"])) == 4
    assert [c["kernel_size"] for c in a["clusters"]] == [c["kernel_size"] for c in b["clusters"]]
    # the merged float64 sums may differ from one process's in the last bit, and so may what is computed from them
    for key in ("significance", "stability"):
        assert _close(a[key], b[key]), key
    assert (a["provenance"]["world_size"], b["provenance"]["world_size"]) == (1, 2)
    sa, sb = np.load(one / "stats.npz"), np.load(two / "stats.npz")
    assert sorted(sa.files) == sorted(sb.files) and int(sb["n_images"]) == 201
    for k in sa.files:
        if sa[k].dtype.kind == "f":
            np.testing.assert_allclose(sb[k], sa[k], rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(sa[k]).max(initial=0))))
        else:
            assert np.array_equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- data-parallel trainings

# Run by two torchrun ranks (one launch for three trainings): U, uninterrupted, rank 1 given a
# directory of its own that must stay empty; C, a one-run comparison; F, the same recipe as U whose
# rank 1 fails after the first epoch's checkpoint is written (the launch then fails, as it should).
DDP_SCRIPT = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from sparsenet.compare.experiment import load_experiment
from sparsenet.compare.run import run_comparison
from sparsenet.data import load_dataset
from sparsenet.distributed import world
from sparsenet.training.config import TrainConfig
from sparsenet.training.loop import train_named

base, here = Path(sys.argv[1]), world()
data = load_dataset("digits", seed=0)
recipe = TrainConfig(epochs=2, batch_size=32, seed=0)
_, metrics = train_named("plaincnn", data, recipe, {"width": 4}, out_dir=base / ("U" if here.main else "U-rank1"),
                         progress=False)
summary = run_comparison(load_experiment(base / "one.toml"), base / "C", progress=False, plots=False)
if here.main:
    (base / "ok.json").write_text(json.dumps({"accuracy": metrics["final_test_accuracy"], "summary": summary}))

def fail_on_rank1(epoch, row):
    dist.barrier()   # rank 0 has written this epoch's checkpoint
    if here.rank == 1:
        raise RuntimeError("rank 1 fails on purpose")

train_named("plaincnn", data, recipe, {"width": 4}, out_dir=base / "F", progress=False, on_epoch=fail_on_rank1)
"""

ONE_RUN = """
[experiment]
name = "one-run"
seeds = [0]
threads = 1
[data]
name = "digits"
image_size = 8
[train]
epochs = 1
batch_size = 32
""" + PLAIN


def _weights(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_ddp_trains_writes_on_rank_0_only_and_a_failed_rank_resumes_bit_identically(tmp_path):
    import torch

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    (tmp_path / "one.toml").write_text(ONE_RUN)
    launch = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=600)
    assert launch.returncode != 0 and "rank 1 fails on purpose" in launch.stderr, launch.stderr[-3000:]
    assert (tmp_path / "ok.json").exists(), launch.stderr[-3000:]
    # U: rank 0 wrote both files, rank 1 nothing; world_size recorded
    assert sorted(p.name for p in (tmp_path / "U").iterdir()) == ["checkpoint.pt", "metrics.json"]
    assert not (tmp_path / "U-rank1").exists()
    metrics = json.loads((tmp_path / "U" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["epochs"]) == 2
    # C: the comparison's run trained data-parallel, its outputs written by rank 0
    run = json.loads((tmp_path / "C" / "runs" / "plain" / "seed0" / "metrics.json").read_text())
    assert run["world_size"] == 2
    ok = json.loads((tmp_path / "ok.json").read_text())
    assert ok["summary"]["data_parallel"] == {"world_size": 2} and (tmp_path / "C" / "report.md").exists()
    assert [r["accuracy"] for r in json.loads((tmp_path / "C" / "results.json").read_text())] \
        == [run["final_test_accuracy"]]
    # F: rank 1 failed after epoch 1: a whole epoch-1 checkpoint, no metrics, no staging file left
    failed = tmp_path / "F"
    assert sorted(p.name for p in failed.iterdir()) == ["checkpoint.pt"]
    assert torch.load(failed / "checkpoint.pt", map_location="cpu", weights_only=True)["epoch"] == 1
    # the CLI resumes it under torchrun and ends bit-identical to the uninterrupted run
    resume = subprocess.run(_torchrun(2, "train", "--data", "digits", "--model-arg", "width=4", "--epochs", "2",
                                      "--batch-size", "32", "--seed", "0", "--out", str(failed), "--resume", "--quiet"),
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert resume.stdout.count("wrote ") == 1 and "(2 processes)" in resume.stdout
    resumed = json.loads((failed / "metrics.json").read_text())
    assert resumed["world_size"] == 2 and resumed["epochs"] == metrics["epochs"]
    a, b = _weights(tmp_path / "U" / "checkpoint.pt"), _weights(failed / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_batch_the_ranks_cannot_share_is_refused(monkeypatch, tmp_path, capsys):
    from sparsenet.cli import main

    assert per_rank_batch(64, World(1, 4)) == 16 and per_rank_batch(64, World()) == 64
    with pytest.raises(SparsenetError, match="batch size 64 cannot be shared by 3 processes.*multiple of 3"):
        per_rank_batch(64, World(0, 3))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--data", "digits", "--batch-size", "64", "--out", str(tmp_path / "t")]) == 2
    assert "cannot be shared by 3 processes" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_the_log_option_has_a_name_torchrun_leaves_alone(tmp_path, capsys):
    from torch.distributed.run import get_args_parser

    from sparsenet.cli import main

    launcher = ["--standalone", "--nproc_per_node=2", "-m", "sparsenet", "compare", "--config", "x.toml"]
    for given in (["--log", "f.log"], ["--log=f.log"]):   # torchrun takes --log for its --log-dir / --logs-specs
        with pytest.raises(SystemExit):
            get_args_parser().parse_args(launcher + given)
    assert "ambiguous option: --log" in capsys.readouterr().err
    assert get_args_parser().parse_args(launcher + ["--log-file", "f.log"]).training_script_args[-2:] \
        == ["--log-file", "f.log"]
    for option in ("--log-file", "--log"):   # both name the same log for sparsenet
        log = tmp_path / f"{option.strip('-')}.txt"
        assert main(["datasets", option, str(log)]) == 0
        assert "command: sparsenet datasets" in log.read_text()


GROW = ["grow", "--data", "digits", "--modules", "1", "--epochs", "1", "--batch-size", "32", "--stem-width", "8",
        "--budget-macs", "40000", "--max-samples", "150", "--permutations", "2", "--resamples", "2", "--seed", "0",
        "--quiet"]


def test_ddp_grow_writes_once_builds_one_network_on_every_rank_and_resumes(tmp_path):
    from sparsenet.builder.modules import build_network
    from sparsenet.builder.spec import load_spec

    two = tmp_path / "two"
    launch = subprocess.run(_torchrun(2, *GROW, "--out", str(two)), capture_output=True, text=True, env=_env(),
                            timeout=600)
    assert launch.returncode == 0, launch.stderr[-3000:]
    for step in (0, 1):
        assert json.loads((two / f"step{step}" / "metrics.json").read_text())["world_size"] == 2
    assert (two / "step1" / "discovery" / "discovery.json").exists()
    assert not list(two.rglob("*.tmp*")), "a staging file was left behind"
    # rank 1 built its network from the module rank 0 wrote (DDP refuses ranks whose parameters differ),
    # and the final checkpoint loads into the spec rank 0 wrote
    network = load_spec(two / "network.json", kind="network")
    build_network(network).load_state_dict(_weights(two / "checkpoint.pt"))
    final = json.loads((two / "metrics.json").read_text())
    # interrupted inside step 2 of 2 (step 1's result and the final files never written): a torchrun
    # rerun retrains that step alone and ends as the uninterrupted growth did
    for name in ("network.json", "checkpoint.pt", "metrics.json", "network.png"):
        (two / name).unlink()
    (two / "step1" / "metrics.json").unlink()
    (two / "step1" / "checkpoint.pt").unlink()
    stem = (two / "step0" / "checkpoint.pt").stat().st_mtime_ns
    rerun = subprocess.run(_torchrun(2, *GROW, "--out", str(two)), capture_output=True, text=True, env=_env(),
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (two / "step0" / "checkpoint.pt").stat().st_mtime_ns == stem   # not retrained
    assert json.loads((two / "metrics.json").read_text())["final_test_accuracy"] == final["final_test_accuracy"]
