"""`sparsenet compare`: smoke.toml end to end, resume, refusal, and the statistics against scipy."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sparsenet.cli import main
from sparsenet.compare.run import run_comparison
from sparsenet.errors import SparsenetError
from sparsenet.compare.experiment import load_experiment, parse_experiment
from sparsenet.compare.statistics import interpolate_log, mean_ci, verdict, welch
from sparsenet.compare.summary import matched_comparisons, summarise

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "smoke.toml"


# ----------------------------------------------------------------------------- statistics

def test_mean_ci_against_scipy():
    x = [0.91, 0.93, 0.92, 0.95, 0.90]
    ci = mean_ci(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert ci.mean == pytest.approx(np.mean(x)) and ci.n == 5
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    assert ci.half_width == pytest.approx(2.776445105 * np.std(x, ddof=1) / math.sqrt(5), rel=1e-8)
    one = mean_ci([0.5])
    assert one.mean == 0.5 and math.isnan(one.half_width) and math.isnan(one.low)


def test_welch_against_scipy():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.88, 0.90, 0.86]
    w = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert (w.t, w.p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    assert w.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2))
    assert w.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert verdict(w) == ("better" if ref.pvalue < 0.05 else "tie")
    assert verdict(welch(b, a)) == ("worse" if ref.pvalue < 0.05 else "tie")
    assert verdict(welch([0.5, 0.6], [0.55, 0.52])) == "tie"
    assert verdict(welch([0.5], [0.6, 0.7])) == "n/a"


def test_interpolation_on_a_hand_made_curve():
    macs, acc = [1e6, 4e6, 16e6], [0.80, 0.86, 0.90]
    mid = interpolate_log(macs, acc, 2e6)            # halfway between 1M and 4M in log
    assert mid.value == pytest.approx(0.83) and not mid.extrapolated
    assert interpolate_log(macs, acc, 8e6).value == pytest.approx(0.88)
    assert interpolate_log(list(reversed(macs)), list(reversed(acc)), 4e6).value == pytest.approx(0.86)
    above = interpolate_log(macs, acc, 32e6)         # end segment extended, and flagged
    assert above.value == pytest.approx(0.92) and above.extrapolated and above.outside == pytest.approx(1.0)
    below = interpolate_log(macs, acc, 0.5e6)
    assert below.value == pytest.approx(0.77) and below.extrapolated and below.outside == pytest.approx(0.5)
    with pytest.raises(SparsenetError, match="at least two points"):
        interpolate_log([1e6], [0.8], 1e6)


def _row(candidate, role, seed, macs, acc, group="g", compare_to=None, kind="googlenet_small"):
    return {"candidate": candidate, "group": group, "kind": kind, "role": role, "seed": seed, "macs": macs,
            "params": 1, "accuracy": acc, "train_time_s": 1.0, "width_mult": None, "compare_to": compare_to,
            "latency_ms": None}


def test_matched_comparison_interpolates_per_seed():
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.90), (0.82, 0.92), (0.78, 0.88)]):
        rows += [_row("g@1", "hand", seed, 1e6, a), _row("g@4", "hand", seed, 4e6, b)]
        rows.append(_row("d", "discovered", seed, 2e6, [0.86, 0.86, 0.84][seed], group="d", compare_to="g",
                         kind="skeleton"))
    (m,) = matched_comparisons(rows)
    matched = [0.85, 0.87, 0.83]                      # each seed's curve at 2M (halfway in log)
    ref = stats.ttest_ind([0.86, 0.86, 0.84], matched, equal_var=False)
    assert m["matched_hand_mean"] == pytest.approx(np.mean(matched))
    assert m["p"] == pytest.approx(ref.pvalue) and not m["extrapolated"] and m["n"] == 3
    summary = {c["candidate"]: c for c in summarise(rows)}
    assert summary["g@4"]["accuracy_mean"] == pytest.approx(0.90) and summary["d"]["n"] == 3


# ----------------------------------------------------------------------------- smoke end to end

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "smoke"
    logs = []
    summary = run_comparison(load_experiment(SMOKE), out, config_text=SMOKE.read_text(), progress=False,
                             log=logs.append)
    return out, summary, logs


def test_smoke_end_to_end(smoke_run):
    out, summary, _ = smoke_run
    rows = json.loads((out / "results.json").read_text())
    e = load_experiment(SMOKE)
    # every candidate (and the skeleton's control) at every seed
    names = {r["candidate"] for r in rows}
    assert names == {p.name for p in e.points} | {"skeleton@0.125x2"}
    assert len(rows) == len(names) * len(e.seeds)
    for r in rows:
        for key in ("model", "seed", "accuracy", "params", "macs", "latency_ms", "candidate", "kind",
                    "train_time_s", "history"):
            assert key in r, key
        assert 0 <= r["accuracy"] <= 1 and r["params"] > 0 and r["macs"] > 0
        assert set(r["latency_ms"]) == {"b1", "b64"} and 0 < r["latency_ms"]["b1"] < r["latency_ms"]["b64"] * 10
        assert len(json.loads((out / r["history"]).read_text())["epochs"]) == e.train["epochs"]
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    report = (out / "report.md").read_text()
    assert "95% CI" in report and "Welch" in report and "swap-3b" in report
    for name in ("pareto.png", "latency.png", "curves.png"):
        assert (out / name).stat().st_size > 10_000
    assert {m["candidate"] for m in summary["matched"]} == {"swap-3b", "swap-3b-full", "grown"}
    assert [c["candidate"] for c in summary["controls"]] == ["swap-3b", "swap-3b-full"] and summary["trained"] == 16
    # the skeleton swap fitted the hand-designed module's multiply-adds
    swap = json.loads((out / "runs" / "swap-3b" / "seed0" / "swap.json").read_text())
    assert abs(swap["module_macs"] - swap["hand_module_macs"]) <= 0.02 * swap["hand_module_macs"]
    assert (out / "config.json").exists() and (out / "config.toml").read_text() == SMOKE.read_text()


def test_rerun_trains_nothing(smoke_run):
    out, first, _ = smoke_run
    ckpts = sorted(out.glob("runs/**/checkpoint.pt"))
    before = {p: p.stat().st_mtime_ns for p in ckpts}
    latency_before = (out / "latency.json").stat().st_mtime_ns
    logs = []
    summary = run_comparison(load_experiment(SMOKE), out, progress=False, log=logs.append)
    assert summary["trained"] == 0 and summary["reused"] == 12
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before
    assert (out / "latency.json").stat().st_mtime_ns == latency_before
    assert sum("done earlier, reusing" in line for line in logs) == 12
    assert [c["accuracy_mean"] for c in summary["candidates"]] == [c["accuracy_mean"] for c in first["candidates"]]


def test_interrupted_run_resumes_from_its_checkpoint(smoke_run, tmp_path):
    out, first, _ = smoke_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # interrupted after the last epoch's checkpoint, before metrics.json; and a swap before its network.json
    (copy / "runs" / "plain" / "seed1" / "metrics.json").unlink()
    seed0 = copy / "runs" / "swap-3b" / "seed0"
    for name in ("metrics.json", "checkpoint.pt", "network.json"):
        (seed0 / name).unlink()
    skeleton = copy / "runs" / "skeleton@0.125x2" / "seed0" / "checkpoint.pt"
    skeleton_time = skeleton.stat().st_mtime_ns
    logs = []
    summary = run_comparison(load_experiment(SMOKE), copy, progress=False, log=logs.append)
    assert summary["trained"] == 2               # plain seed 1 (from its checkpoint) and the swapped network
    assert skeleton.stat().st_mtime_ns == skeleton_time  # the trained skeleton is reused
    acc = {c["candidate"]: c["accuracy_mean"] for c in summary["candidates"]}
    assert acc == {c["candidate"]: c["accuracy_mean"] for c in first["candidates"]}


def test_other_config_into_same_dir_refused(smoke_run, tmp_path):
    out, _, _ = smoke_run
    text = SMOKE.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]")
    other = tmp_path / "other.toml"
    other.write_text(text)
    with pytest.raises(SparsenetError, match=r"another configuration.*experiment\.seeds"):
        run_comparison(load_experiment(other), out, progress=False, log=lambda m: None)
    # the free-text description is not part of what the results depend on
    reworded = tmp_path / "reworded.toml"
    reworded.write_text(SMOKE.read_text().replace('description = "Smoke test:', 'description = "Reworded:'))
    assert run_comparison(load_experiment(reworded), out, progress=False, log=lambda m: None)["trained"] == 0
    # a DIR written before a key was added to the schema is still this configuration (its default)
    saved = json.loads((out / "config.json").read_text())
    del saved["config"]["train"]["warmup_steps"]
    (out / "config.json").write_text(json.dumps(saved))
    assert run_comparison(load_experiment(SMOKE), out, progress=False, log=lambda m: None)["trained"] == 0


# ----------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("old,new,expected", [
    ("width_mults =", "widht_mults =", "candidates[0].widht_mults: unknown key"),   # a bad config
    ("image_size = 16", "image_size = 2", "candidates[0]"),                         # a model that does not fit the data
])
def test_cli_refuses_without_traceback_or_results(tmp_path, capsys, old, new, expected):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace(old, new))
    out = tmp_path / "out"
    assert main(["compare", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not out.exists()


def test_cli_check(capsys):
    assert main(["compare", "--config", str(SMOKE), "--check"]) == 0
    assert "valid; 6 candidate(s) x 2 seed(s)" in capsys.readouterr().out


def test_parse_rejects_unknown_model_before_training(tmp_path):
    import tomllib

    data = tomllib.loads(SMOKE.read_text())
    data["candidates"][0]["kind"] = "googlenet_big"
    with pytest.raises(SparsenetError, match=r"candidates\[0\]\.kind"):
        parse_experiment(data)


def test_measure_latency_times_every_model_at_both_batch_sizes():
    import torch

    from sparsenet.compare.latency import measure_latency

    calls = []

    class Probe(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append((self.name, len(x)))
            return x.sum()

    before = torch.get_num_threads()
    out = measure_latency({"a": Probe("a"), "b": Probe("b")}, (1, 4, 4), threads=1, warmup=1, repeats=2)
    assert set(out) == {"a", "b"} and all(set(v) == {"b1", "b64"} and v["b1"] >= 0 for v in out.values())
    timed = calls[4:]                                   # after one warm-up pass of each model at both sizes
    assert [c[0] for c in timed] == ["a", "a", "b", "b", "b", "b", "a", "a"]   # order rotates per repeat
    assert {c[1] for c in timed} == {1, 64}
    assert torch.get_num_threads() == before


def test_paired_controls():
    from sparsenet.compare.summary import paired_controls

    rows = []
    for seed, (a, b) in enumerate([(0.90, 0.88), (0.91, 0.90), (0.93, 0.89)]):
        rows.append({**_row("swap", "discovered", seed, 3e6, a, group="swap", kind="skeleton"), "control": "skel"})
        rows.append(_row("skel", "control", seed, 3e6, b, group="skel", kind="skeleton"))
    (c,) = paired_controls(rows)
    ref = stats.ttest_ind([0.90, 0.91, 0.93], [0.88, 0.90, 0.89], equal_var=False)
    assert c["control"] == "skel" and c["n"] == 3 and c["p"] == pytest.approx(ref.pvalue)


def test_diverged_runs_are_recorded_not_fatal_and_not_retried(tmp_path):
    text = SMOKE.read_text().replace("lr = 0.05", "lr = 1e9").replace("seeds = [0, 1]", "seeds = [0]")
    config = tmp_path / "diverge.toml"
    config.write_text(text)
    out = tmp_path / "out"
    summary = run_comparison(load_experiment(config), out, progress=False, log=lambda m: None)
    rows = json.loads((out / "results.json").read_text())
    assert rows and all(r["accuracy"] is None and r["status"] != "ok" for r in rows)
    assert (out / "runs" / "plain" / "seed0" / "diverged.json").exists()
    swap = next(r for r in rows if r["candidate"] == "swap-3b")
    assert swap["status"] == "skeleton diverged"
    assert "Failed runs" in (out / "report.md").read_text()
    assert all(m["verdict"] == "n/a" for m in summary["matched"])
    again = run_comparison(load_experiment(config), out, progress=False, log=lambda m: None)
    assert again["trained"] == 0


def test_cli_summary_of_candidates_that_all_diverged(tmp_path, capsys):
    config = tmp_path / "diverge.toml"
    config.write_text(SMOKE.read_text().replace("lr = 0.05", "lr = 1e9").replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["compare", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy n/a %" in out and "Traceback" not in out


# ----------------------------------------------------------------------------- analysis/make_results.py

def _make_results():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "analysis" / "make_results.py"
    spec = importlib.util.spec_from_file_location("make_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_from_a_comparison_dir(smoke_run, tmp_path):
    out, summary, _ = smoke_run
    mr = _make_results()
    assert mr.main([str(out), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "results.md").read_text()
    assert "## smoke" in page and "### Candidates" in page and "Welch" in page
    for m in summary["matched"]:
        assert f"* **{m['candidate']}**" in page
    for fig in ("pareto", "latency", "curves"):
        assert (tmp_path / "figures" / f"results_smoke_{fig}.png").exists()


def test_a_closer_check_supersedes_the_interpolated_verdict():
    mr = _make_results()
    assert mr.curve_bracket(1.1e6, [0.8e6, 3.2e6, 12.8e6]) == 4.0
    assert mr.curve_bracket(1.1e6, [0.8e6, 1.0e6, 1.2e6, 3.2e6]) == pytest.approx(1.2)
    assert mr.curve_bracket(20e6, [0.8e6, 3.2e6]) == float("inf")
    key = ("fashion-mnist", "{}", "grown")
    wide = {"tag": "main", "key": key, "verdict": "better", "bracket": 4.0, "text": "grown better"}
    close = {"tag": "matched", "key": key, "verdict": "tie", "bracket": 1.05, "text": "grown tie"}
    other = {"tag": "main", "key": ("fashion-mnist", "{}", "swap"), "verdict": "tie", "bracket": 4.0,
             "text": "swap tie"}
    total, lines = mr.verdict_summary([("main", "", [wide, other]), ("matched", "", [close])])
    assert total == {"tie": 2}
    assert lines[0] == "* main: grown better, not counted: checked in matched against GoogLeNet measured " \
                       "closer to its cost; swap tie"
    assert lines[1] == "* matched: grown tie"
