"""The pre-registered experiment's parts: paired statistics against oracles, the validation split,
model selection, the ablations, matched widths, the schema, and a tiny run end to end."""

import itertools
import json
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sparsenet.compare.experiment import TESTS, ConfigError, load_experiment, parse_experiment
from sparsenet.compare.statistics import PAIRED_TESTS, bootstrap_ci, holm, paired_t, wilcoxon
from sparsenet.errors import SparsenetError

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- statistics

A = [0.81, 0.84, 0.79, 0.86, 0.83, 0.80, 0.85, 0.82]
B = [0.80, 0.815, 0.795, 0.83, 0.82, 0.776, 0.84, 0.818]


def test_paired_t_by_hand():
    d = np.subtract(A, B)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * stats.t.sf(abs(t), len(d) - 1)
    got = paired_t(A, B)
    assert got.statistic == pytest.approx(t) and got.p == pytest.approx(p) and got.diff == pytest.approx(d.mean())
    assert math.isnan(paired_t([0.5, 0.6], [0.4, 0.5]).p)   # no spread in the differences: undefined


def test_wilcoxon_against_exact_enumeration():
    d = np.subtract(A, B)          # 8 distinct |d|, no zeros: the exact null is 2^8 equally likely signs
    ranks = stats.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    w = min(w_plus, ranks.sum() - w_plus)
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    p = np.mean([x <= w for x in sums]) * 2   # two-sided: both tails, symmetric null
    got = wilcoxon(A, B)
    assert got.statistic == pytest.approx(w) and got.p == pytest.approx(min(1.0, p))


def test_bootstrap_against_the_exact_bootstrap_distribution():
    a, b = [0.9, 0.7, 0.85, 0.6, 0.8], [0.8, 0.75, 0.7, 0.62, 0.71]
    d = np.subtract(a, b)
    means = np.array([d[list(idx)].mean() for idx in itertools.product(range(5), repeat=5)])  # all 5^5 resamples
    low, high = np.quantile(means, [0.025, 0.975])
    got = bootstrap_ci(a, b, resamples=40_000, seed=3)
    spread = means.std()
    assert abs(got[0] - low) < 0.1 * spread and abs(got[1] - high) < 0.1 * spread
    assert bootstrap_ci(a, b, resamples=500, seed=3) == bootstrap_ci(a, b, resamples=500, seed=3)
    assert bootstrap_ci(a, b, resamples=500, seed=3) != bootstrap_ci(a, b, resamples=500, seed=4)
    with pytest.raises(SparsenetError, match="same length"):
        bootstrap_ci(a, b[:4])


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = holm([0.5, math.nan, 0.01])      # an untestable comparison is not counted
    assert got[0] == pytest.approx(0.5) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert set(PAIRED_TESTS) == set(TESTS)


# ----------------------------------------------------------------------------- split and selection

def test_validation_split_is_disjoint_deterministic_and_leaves_test_alone():
    from sparsenet.data import load_dataset
    from sparsenet.data.splits import carve_validation

    ds = load_dataset("digits", seed=0)
    a = carve_validation(ds, 0.25, 500, seed=5)
    b = carve_validation(ds, 0.25, 500, seed=5)
    n_val = round(0.25 * len(ds.x_train))
    assert len(a.x_val) == n_val and len(a.x_train) == 500 and a.x_test is ds.x_test
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "x_val", "y_val"))
    flat = ds.x_train.reshape(len(ds.x_train), -1).numpy()
    rows = {r.tobytes(): i for i, r in enumerate(flat)}
    val = {rows[r.tobytes()] for r in a.x_val.reshape(n_val, -1).numpy()}
    train = {rows[r.tobytes()] for r in a.x_train.reshape(500, -1).numpy()}
    assert not val & train
    assert not np.array_equal(carve_validation(ds, 0.25, None, seed=6).x_val, a.x_val)
    with pytest.raises(SparsenetError, match="train_subset is 5000"):
        carve_validation(ds, 100, 5000)
    with pytest.raises(SparsenetError, match="leave at least one"):
        carve_validation(ds, len(ds.x_train))


def test_selection_reads_validation_only_and_stops_early():
    from sparsenet.data import load_dataset
    from sparsenet.data.splits import carve_validation
    from sparsenet.training.config import TrainConfig
    from sparsenet.training.loop import select_epoch, train_named

    hist = [{"epoch": i + 1, "val_accuracy": v, "test_accuracy": t} for i, (v, t) in
            enumerate([(0.5, 0.9), (0.7, 0.1), (0.7, 0.95), (0.6, 0.99)])]
    chosen = select_epoch(hist)
    assert chosen["epoch"] == 2 and chosen["test_accuracy"] == 0.1   # first best on validation, whatever test says
    ds = carve_validation(load_dataset("digits", seed=0), 200, 400, seed=0)
    _, m = train_named("plaincnn", ds, TrainConfig(epochs=6, batch_size=64, lr=0.5, seed=0), {"width": 4},
                       progress=False, patience=1)
    vals = [e["val_accuracy"] for e in m["epochs"]]
    best = int(np.argmax(vals))
    assert m["selection"]["epoch"] == best + 1 and m["selection"]["test_accuracy"] == m["epochs"][best]["test_accuracy"]
    assert len(vals) == min(6, best + 2)       # patience 1: one epoch past the best, then stop
    with pytest.raises(SparsenetError, match="needs a validation split"):
        train_named("plaincnn", load_dataset("digits", seed=0), TrainConfig(epochs=1), {"width": 4},
                    progress=False, patience=2)


# ----------------------------------------------------------------------------- ablations

def _discovery():
    from sparsenet.discovery.value import from_labels

    labels = [0] * 6 + [1] * 3 + [2] * 2 + [-1] + [0, 1]
    return from_labels(labels, [3, 1, 5])


def test_random_clusters_keep_sizes_and_kernels_and_draw_channels():
    from sparsenet.discovery.ablation import random_clusters

    d = _discovery()
    r = random_clusters(d, seed=1)
    assert [c.size for c in r.clusters] == [c.size for c in d.clusters]
    assert [c.kernel_size for c in r.clusters] == [c.kernel_size for c in d.clusters]
    assert sorted(ch for c in r.clusters for ch in c.channels) == sorted(ch for c in d.clusters for ch in c.channels)
    assert r.inactive == d.inactive and r.provenance["ablation"] == "random_clusters"
    assert [c.channels for c in r.clusters] != [c.channels for c in d.clusters]
    assert random_clusters(d, seed=1) == r
    for k, c in enumerate(r.clusters):
        assert all(r.labels[ch] == k for ch in c.channels)


def test_random_kernels_draw_from_the_discovered_distribution():
    from sparsenet.discovery.ablation import random_kernels

    d = _discovery()
    draws = [tuple(c.kernel_size for c in random_kernels(d, seed=s).clusters) for s in range(400)]
    flat = np.array(draws).ravel()
    assert set(flat) <= {1, 3, 5}
    assert all(random_kernels(d, 0).clusters[i].channels == d.clusters[i].channels for i in range(3))
    # per-channel distribution: 7 channels of 3x3, 4 of 1x1, 2 of 5x5 out of 13
    freq = {k: np.mean(flat == k) for k in (1, 3, 5)}
    assert freq[3] == pytest.approx(7 / 13, abs=0.05) and freq[5] == pytest.approx(2 / 13, abs=0.05)


# ----------------------------------------------------------------------------- matching and schema

def test_matched_width_is_the_nearest_measured_one():
    from sparsenet.compare.candidates import measured_macs, match_width
    from sparsenet.data import load_dataset

    e = load_experiment(ROOT / "experiments" / "primary-smoke.toml")
    ds = load_dataset("digits", seed=0, image_size=16)
    plain = e.point("plain-matched")
    w, macs = match_width(plain, ds, 200_000)
    assert macs == measured_macs(plain, ds, w)
    assert all(abs(macs - 200_000) <= abs(measured_macs(plain, ds, v) - 200_000) for v in (w - 1, w + 1))
    goog = e.point("googlenet-matched")
    g, macs = match_width(goog, ds, 200_000)   # no width on a grid around it comes closer
    assert all(abs(macs - 200_000) <= abs(measured_macs(goog, ds, v) - 200_000) for v in np.geomspace(g / 2, 2 * g, 9))


def _primary_smoke():
    return tomllib.loads((ROOT / "experiments" / "primary-smoke.toml").read_text())


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["preregistration"].update(primary="grown vs nobody"), r"'nobody' is not a candidate"),
    (lambda d: d["preregistration"].update(primary="grown - googlenet-matched"), r'expected "A vs B"'),
    (lambda d: d["preregistration"]["secondaries"].append("grown vs googlenet-matched"), "other than the primary"),
    (lambda d: d["preregistration"].update(test="welch"), r"preregistration.test is 'welch'; expected one of"),
    (lambda d: d["data"].pop("validation"), r"\[selection\] needs a validation split"),
    (lambda d: d["candidates"][3].update(match="plain-matched"), r"candidates\[3\].match is 'plain-matched'"),
    (lambda d: d["candidates"][3].update(width_mults=[0.1]), "either width_mults .* or match"),
    (lambda d: d["candidates"][1].update(ablation="shuffle"), r"candidates\[1\].ablation is 'shuffle'"),
    (lambda d: d["data"].update(validation=1.5), r"data.validation is 1.5; expected a count"),
])
def test_preregistration_and_design_checked(edit, match):
    data = _primary_smoke()
    edit(data)
    with pytest.raises(ConfigError, match=match):
        parse_experiment(data)


def test_primary_is_preregistered_at_full_size():
    e = load_experiment(ROOT / "experiments" / "primary.toml")
    assert len(e.seeds) >= 10 and e.train["epochs"] >= 10 and e.data["validation"] and e.data["name"] == "fashion-mnist"
    assert e.preregistration["primary"] == "grown vs googlenet-matched" and e.sweep and e.selection
    kinds = {(p.kind, p.options.get("ablation"), p.options.get("match")) for p in e.points}
    assert {("grown", "none", None), ("grown", "random_clusters", None), ("grown", "random_kernels", None),
            ("googlenet_small", None, "grown"), ("plaincnn", None, "grown")} <= kinds


# ----------------------------------------------------------------------------- end to end, tiny

TINY = """
[experiment]
name = "tiny-primary"
seeds = [0, 1]
threads = 1
[preregistration]
hypothesis = "test"
primary = "grown vs plain-matched"
test = "wilcoxon"
alpha = 0.05
secondaries = ["grown vs grown-rc"]
bootstrap_resamples = 500
[data]
name = "digits"
image_size = 16
validation = 60
train_subset = 200
[train]
epochs = 2
batch_size = 64
[selection]
patience = 1
[sweep]
lrs = [0.05, 0.2]
seeds = [9]
[latency]
threads = 1
warmup = 0
repeats = 1
[[candidates]]
name = "grown"
kind = "grown"
modules = 1
stem_width = 4
grow_epochs = 1
[candidates.analysis]
clusters = 2
max_samples = 100
permutations = 0
resamples = 0
[[candidates]]
name = "grown-rc"
kind = "grown"
ablation = "random_clusters"
modules = 1
stem_width = 4
grow_epochs = 1
[candidates.analysis]
clusters = 2
max_samples = 100
permutations = 0
resamples = 0
[[candidates]]
name = "plain-matched"
kind = "plaincnn"
match = "grown"
"""


# the same without growth (plain CNNs train in a second): sweep, match, selection, records, resume
FAST = (TINY.split("[[candidates]]")[0].replace('"grown vs grown-rc"', '"grown vs other"')
        + """
[[candidates]]
name = "grown"
kind = "plaincnn"
width = 4
[[candidates]]
name = "other"
kind = "plaincnn"
width = 6
[[candidates]]
name = "plain-matched"
kind = "plaincnn"
family = "matched"
match = "grown"
""")


@pytest.mark.parametrize("text,grown", [pytest.param(TINY, True, marks=pytest.mark.slow), (FAST, False)],
                         ids=["with-growth", "plaincnn-only"])
def test_tiny_preregistered_run_recomputes_and_resumes_from_records(tmp_path, capsys, text, grown):
    from sparsenet.cli import main
    from sparsenet.compare.records import recompute
    from sparsenet.compare.run import run_comparison

    config = tmp_path / "tiny.toml"
    config.write_text(text)
    out = tmp_path / "out"
    summary = run_comparison(load_experiment(config), out, progress=False, log=lambda m: None, plots=False)
    sweep = json.loads((out / "sweep.json").read_text())
    families = {"grown", "plaincnn"} if grown else {"plaincnn", "matched"}
    assert set(sweep["chosen"]) == families
    rows = json.loads((out / "results.json").read_text())
    by = {(r["candidate"], r["seed"]): r for r in rows}
    for r in rows:
        family = ("plaincnn" if r["kind"] == "plaincnn" else "grown") if grown else \
            ("matched" if r["candidate"] == "plain-matched" else "plaincnn")
        assert r["lr"] == sweep["chosen"][family]
        assert all(e["val_accuracy"] is not None for e in r["epochs"])
        assert r["accuracy"] == r["epochs"][r["best_epoch"] - 1]["test_accuracy"]
    for s in (0, 1):   # matched per seed to the grown network's measured multiply-adds
        assert by[("plain-matched", s)]["target_macs"] == by[("grown", s)]["macs"]
    if grown:
        step = json.loads((out / "runs" / "grown-rc" / "seed0" / "grow" / "metrics.json").read_text())["steps"][1]
        assert step["ablation"] == "random_clusters" and sorted(step["built_cluster_sizes"]) == sorted(
            json.loads((out / "runs" / "grown" / "seed0" / "grow" / "step1" / "discovery" / "discovery.json")
                       .read_text())["clusters"][i]["size"] for i in range(2))
    pre = summary["preregistered"]
    a = [by[("grown", s)]["accuracy"] for s in (0, 1)]
    b = [by[("plain-matched", s)]["accuracy"] for s in (0, 1)]
    assert pre["primary"]["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert recompute(out)["preregistered"] == json.loads((out / "summary.json").read_text())["preregistered"]
    # a new machine: only the committable files (config + records), no run directories, no checkpoints
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("config.json", "records", "sweep.json"):
        src = out / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, fresh / name)
    shutil.copytree(out / "sweep", fresh / "sweep", ignore=shutil.ignore_patterns("runs"))
    again = run_comparison(load_experiment(config), fresh, progress=False, log=lambda m: None, plots=False)
    assert again["trained"] == 0 and again["preregistered"] == summary["preregistered"]
    # the learning curves come from the records alone (validation: what model selection looked at)
    from sparsenet.compare.report import method_notes
    from sparsenet.compare.results import training_histories
    curves, metric = training_histories(fresh, json.loads((fresh / "results.json").read_text()))
    assert metric == "val_accuracy" and not (fresh / "runs").exists()
    assert sorted(curves["grown"]) == sorted([e["val_accuracy"] for e in by[("grown", s)]["epochs"]] for s in (0, 1))
    notes = "\n".join(method_notes(again))
    assert "epoch chosen on validation" in notes and "Pre-registered" in notes and "interpolated" not in notes
    # the results page from the committable files alone: verdict, per-seed table, figures
    import importlib.util
    spec = importlib.util.spec_from_file_location("primary_results", ROOT / "analysis" / "primary_results.py")
    page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page)
    assert page.main([str(fresh), "--out", str(tmp_path / "page" / "page.md")]) == 0
    text_md = (tmp_path / "page" / "page.md").read_text()
    assert f"{100 * pre['primary']['diff']:+.2f} pp" in text_md and "Incomplete" not in text_md
    assert (tmp_path / "page" / "primary_curves.png").stat().st_size > 0
    assert f"| 0 | {100 * by[('grown', 0)]['accuracy']:.2f}" in text_md
    assert main(["compare", "--summarise", str(fresh)]) == 0
    assert "grown vs plain-matched" in capsys.readouterr().out
    assert main(["compare", "--summarise", str(tmp_path)]) == 2
    assert "holds no config.json" in capsys.readouterr().err


def test_missing_runs_grouped_by_candidate_with_seed_ranges():
    from sparsenet.compare.report import missing_runs
    missing = [f"{n}/seed{s}" for s in (1, 2, 3, 5, 9) for n in ("grown", "plain-matched")] + ["googlenet-matched/seed4"]
    assert missing_runs(missing) == "grown seeds 1-3, 5, 9; plain-matched seeds 1-3, 5, 9; googlenet-matched seed 4"
    assert missing_runs(["a-b/seed0"]) == "a-b seed 0"
