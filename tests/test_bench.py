"""The benchmark entry point on tiny sizes: every measurement runs and writes every field.

Speed targets live in the benchmark output (``benchmarks/results``, docs/performance.md), never
in timed tests: these tests only check that the numbers are produced.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsenet.bench import MEASUREMENTS, run
from sparsenet.timing import paired_ratio, time_side_by_side
from sparsenet.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = run(mode="tiny", out=out, name="tiny", figures=out / "figures", progress=False,
                 command="test")
    return result, out


def _timing_fields(t):
    assert {"median_s", "min_s", "max_s", "repeats"} <= set(t)
    assert t["min_s"] <= t["median_s"] <= t["max_s"] and t["repeats"] >= 1


def test_tiny_run_writes_json_with_every_measurement(tiny):
    result, out = tiny
    data = json.loads((out / "tiny.json").read_text())
    assert data["format"] == "sparsenet.bench" and data["mode"] == "tiny"
    assert set(data["measurements"]) == set(MEASUREMENTS)
    m = data["machine"]
    for key in ("nproc", "cpu_model", "torch", "torch_threads", "load_average_1_5_15"):
        assert key in m
    assert data["torch_threads"] >= 1 and "load_average_end" in data
    assert set(data["wall_s"]) == set(MEASUREMENTS) | {"total"}
    keys = {row["key"] for row in data["summary"]}
    assert keys == set(MEASUREMENTS)
    for row in data["summary"]:
        assert {"measurement", "case", "value", "target", "ok"} <= set(row)
        assert isinstance(row["value"], (int, float))


def test_stats_cost_fields(tiny):
    r = tiny[0]["measurements"]["stats_cost"]
    (case,) = r["cases"].values()
    assert {"forward", "one_pass", "two_pass"} <= set(case["timings"])
    for t in case["timings"].values():
        _timing_fields(t)
    assert case["pipeline_path"] == "two_pass" and case["ratio"] > 0
    assert case["max_profile_difference"] < 1e-8  # the two paths give the same profiles
    assert case["layer_shape"][0] == 8 and case["max_radius"] == 2


def test_stats_machine_fields(tiny):
    r = tiny[0]["measurements"]["stats_machine"]
    for row in r["rate_rows"] + r["memory_rows"]:
        for key in ("fraction_of_mm", "effective_gflops", "mm_gflops", "rss_peak_mb",
                    "torch_threads", "load_average_after"):
            assert key in row
    assert r["memory_rows"][1]["samples_seen"] >= 9 * r["memory_rows"][0]["samples_seen"]
    assert r["memory_growth_10x"] > 0


def test_clustering_fields(tiny):
    r = tiny[0]["measurements"]["clustering"]
    assert [row["channels"] for row in r["rows"]] == [16, 32]
    for row in r["rows"]:
        _timing_fields(row["from_stats"])
        _timing_fields(row["from_data"])
        assert row["ari_to_planted"] == pytest.approx(1.0)
    assert "with_significance" in r["rows"][0] and "slope_from_stats" in r


def test_hardware_fields(tiny):
    r = tiny[0]["measurements"]["hardware"]
    names = {"dense", "dense_channels_last", "dense_channels_last_fused", "masked_dense", "sparse_csr", "sparsenet",
             "sparsenet_cluster_major", "sparsenet_cluster_major_nchw_out", "grouped_nchw", "grouped_channels_last", "per_cluster", "per_cluster_channels_last",
             "bmm_unfold"}
    assert names <= set(r["realisations"])
    for name, row in r["realisations"].items():
        _timing_fields(row)
        assert row["vs_ideal"] > 0
        if not name.startswith("dense"):  # every realisation computes the same function
            assert row["max_abs_difference_to_sparsenet"] < 1e-4
    assert r["module"]["kept_fraction"] == pytest.approx(0.5)
    assert r["sparse_over_sparsenet"] > 0 and r["fastest_form"] in names
    assert r["cluster_major_over_ideal"] > 0 and r["cluster_major_nchw_out_over_ideal"] > 0


def test_inference_fields(tiny):
    r = tiny[0]["measurements"]["inference"]
    assert set(r["batches"]) == {"1", "2"}
    d, h = r["discovered"]["macs"], r["googlenet_small"]["macs"]
    assert abs(h - d) / d < 0.1  # matched multiply-adds (coarse width steps at tiny sizes)
    for row in r["batches"].values():
        _timing_fields(row["discovered"])
        assert row["per_mac_ratio"] > 0
        laid = row["discovered_laid_out"]  # the same network laid out as grow builds it, forms measured
        _timing_fields(laid)
        assert laid["per_mac_ratio"] > 0 and len(laid["forms"]) == r["discovered"]["modules"]


def test_figures_written(tiny):
    result, out = tiny
    names = sorted(p.name for p in (out / "figures").glob("perf_*.png"))
    assert names == sorted(f"perf_{k}.png" for k in MEASUREMENTS)
    from sparsenet.bench.plots import plot_all  # and again from the JSON alone

    again = plot_all(json.loads((out / "tiny.json").read_text()), out / "again")
    assert len(again) == len(MEASUREMENTS)


def test_cli_bench_only_and_errors(tmp_path, capsys):
    assert main(["bench", "--tiny", "--only", "hardware", "--out", str(tmp_path), "--name", "hw"]) == 0
    data = json.loads((tmp_path / "hw.json").read_text())
    assert list(data["measurements"]) == ["hardware"]
    assert data["command"].startswith("sparsenet ")
    assert main(["bench", "--tiny", "--only", "nonsense", "--out", str(tmp_path)]) == 2
    assert "unknown measurement 'nonsense'" in capsys.readouterr().err


def test_python_m_benchmarks_shim():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--quick" in out.stdout and "--out" in out.stdout


def test_side_by_side_timing_is_paired():
    calls = []
    t = time_side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                          repeats=4, warmup=1)
    assert len(t["a"].runs) == len(t["b"].runs) == 4
    assert calls[:2] == ["a", "b"] and calls[2:4] == ["a", "b"] and calls[4:6] == ["b", "a"]
    assert paired_ratio(t["a"], t["a"]) == 1.0


def test_plot_from_results_with_before(tiny, tmp_path, capsys):
    result, out = tiny
    path = str(out / "tiny.json")
    assert main(["bench", "--plot", path, "--before", path, "--figures", str(tmp_path / "f")]) == 0
    assert len(list((tmp_path / "f").glob("perf_*.png"))) == len(MEASUREMENTS)
    assert main(["bench", "--plot", path]) == 2
    assert "--plot needs --figures" in capsys.readouterr().err
    assert main(["bench", "--plot", str(tmp_path / "missing.json"), "--figures", str(tmp_path)]) == 2


def test_summary_row_states_target_and_verdict():
    from sparsenet.timing import summary_row

    assert summary_row("m", "c", 1.2, at_most=1.1) == {"measurement": "m", "case": "c", "value": 1.2,
                                                        "target": "<= 1.1", "ok": False}
    assert summary_row("m", "c", 0.8, at_least=0.7)["ok"] is True
    assert summary_row("m", "c", 3.0, at_most=10, unit=" s")["target"] == "<= 10 s"
    assert summary_row("m", "c", 3.0)["ok"] is None
