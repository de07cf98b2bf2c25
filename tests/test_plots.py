"""Plots and the Markdown report of a discovery, from the real analyser fitted on planted data."""

from __future__ import annotations

import copy
import dataclasses
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from sparsenet import CorrelationAnalyzer
from sparsenet.discovery.value import from_labels
from sparsenet.errors import SparsenetError
from sparsenet.discovery.plots import (
    cluster_order,
    plot_correlation,
    plot_dendrogram,
    plot_discovery,
    plot_spatial_profiles,
    plot_spectrum,
)
from sparsenet.discovery.report import summary_table, write_report
from sparsenet.data.synthetic import planted_groups

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROVENANCE = {"model": "plaincnn", "layer": "features.6", "data": "mnist5k", "samples": 48,
              "seed": 0, "sparsenet_version": "0.1.0", "layer_shape": [19, 8, 8]}
CASES = {  # name -> (analyser keyword arguments, flat input?, expected plot keys)
    "spatial": ({"method": "spectral"}, False,
                {"correlation", "spectrum", "spatial_profiles", "cluster_sizes"}),
    "flat": ({"method": "spectral"}, True, {"correlation", "spectrum", "cluster_sizes"}),
    "hierarchical": ({"method": "hierarchical", "n_clusters": 3}, False,
                     {"correlation", "spectrum", "dendrogram", "spatial_profiles", "cluster_sizes"}),
}


@pytest.fixture(scope="module")
def planted():
    # 3 groups (1x1, 3x3, 5x5) and 2 dead channels, shuffled so clusters are not contiguous.
    return planted_groups(n_samples=48, group_sizes=(6, 6, 5), kernel_sizes=(1, 3, 5), size=8,
                          n_dead=2, shuffle=True, random_state=0)


@pytest.fixture(scope="module", params=list(CASES))
def run(request, planted, tmp_path_factory):
    """Fit the analyser, draw every plot and write the report into a fresh directory."""
    kwargs, flat, expected = CASES[request.param]
    X = planted.X
    if flat:  # every other image position as one sample of the C channels: N*H*W/4 x C
        X = X[:, :, ::2, ::2].transpose(0, 2, 3, 1).reshape(-1, X.shape[1])
    analyzer = CorrelationAnalyzer(n_permutations=3, n_resamples=2, random_state=0, **kwargs).fit(X)
    discovery = from_labels(
        analyzer.labels_, analyzer.kernel_sizes_, analyzer.spatial_profiles_,
        significance=dict(analyzer.significance_), stability=analyzer.stability_,
        cluster_stability=analyzer.cluster_stability_,
        footprints=[f.to_dict(analyzer.kernel_set_) for f in analyzer.footprints_]
        if analyzer.footprints_ is not None else None,
        provenance=PROVENANCE, settings={"method": analyzer.method,
                                         "mass_fraction": analyzer.mass_fraction},
    )
    out = tmp_path_factory.mktemp(request.param)
    plots = plot_discovery(analyzer, out, title="features.6")
    # The CLI passes names relative to the run directory.
    report = write_report(discovery, {k: Path(p).name for k, p in plots.items()}, out,
                          command="sparsenet discover --out run")
    return dict(name=request.param, analyzer=analyzer, discovery=discovery, out=out, plots=plots,
                report=report, text=report.read_text(), expected=expected, planted=planted)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the signature
    return width, height


def test_analyser_finds_the_planted_clusters(run):
    """The oracle the figures are about: 3 groups and the 2 dead channels recovered."""
    analyzer, planted = run["analyzer"], run["planted"]
    assert analyzer.n_clusters_ == 3
    assert np.array_equal(analyzer.labels_ < 0, planted.labels < 0)
    active = planted.labels >= 0
    pairs_true = planted.labels[active][:, None] == planted.labels[active][None, :]
    pairs_found = analyzer.labels_[active][:, None] == analyzer.labels_[active][None, :]
    assert np.array_equal(pairs_true, pairs_found)


def test_plot_discovery_writes_every_expected_png(run):
    plots = run["plots"]
    assert set(plots) == run["expected"]
    for name, path in plots.items():
        path = Path(path)
        assert path == run["out"] / f"{name}.png"
        width, height = _png_size(path)
        assert width >= 600 and height >= 400, f"{name}.png is only {width}x{height}"
        assert path.stat().st_size > 10_000, f"{name}.png looks empty ({path.stat().st_size} bytes)"
    # Atomic writes leave no temporary files behind.
    assert not [p for p in run["out"].iterdir() if p.name.startswith(".")]


def test_prefix_names_the_files(planted, tmp_path):
    analyzer = CorrelationAnalyzer(method="hierarchical", n_clusters=3, n_permutations=0,
                                   n_resamples=0, random_state=0).fit(planted.X)
    plots = plot_discovery(analyzer, tmp_path / "figs", prefix="layer3_")
    assert {Path(p).name for p in plots.values()} == {f"layer3_{k}.png" for k in CASES["hierarchical"][2]}
    assert all(Path(p).is_file() for p in plots.values())


def test_report_has_a_row_per_cluster(run):
    text, discovery = run["text"], run["discovery"]
    assert text.startswith("# Discovery: layer `features.6` of `plaincnn` on `mnist5k`")
    assert "sparsenet discover --out run" in text
    for cluster in discovery.clusters:
        k = cluster.kernel_size
        row = f"| {cluster.id} | {cluster.size} | {k}x{k} |"
        assert row in text, f"no table row for cluster {cluster.id}: {row!r}"
        line = next(l for l in text.splitlines() if l.startswith(row))
        assert str(cluster.channels[0]) in line
        if cluster.spatial_profile:  # the profile at r = 0 is 1 by construction
            assert "| 1.00 |" in line
    inactive = ", ".join(str(i) for i in discovery.inactive)
    assert f"belong to no cluster: {inactive}." in text


def test_report_states_significance_and_stability(run):
    text, sig = run["text"], run["discovery"].significance
    assert "## Significance" in text and "## Stability" in text
    assert f"| {sig['statistic']} | {sig['value']:.3f} | {sig['null_mean']:.3f} ± " in text
    assert f"| {sig['p']:.3g} | {sig['n_permutations']} |" in text
    assert "shuffles each channel independently" in text and "destroys co-firing" in text
    assert f"**{run['discovery'].stability:.3f}**" in text
    assert "adjusted Rand index" in text
    scored = [c for c in run["discovery"].clusters if c.stability is not None]
    assert scored and "| stability | channels |" in text and "Cluster by cluster" in text
    stable = sum(c.stability >= 0.75 for c in scored)
    assert f"{stable} of {len(scored)} stable" in text


def test_report_names_clusters_that_dissolve(run, tmp_path):
    clusters = list(run["discovery"].clusters)
    assert len(clusters) >= 2  # the planted data have three groups
    clusters[0] = dataclasses.replace(clusters[0], stability=0.4)
    clusters[1] = dataclasses.replace(clusters[1], stability=0.6)
    text = write_report(dataclasses.replace(run["discovery"], clusters=tuple(clusters)), {}, tmp_path).read_text()
    assert "dissolving: cluster 0 " in text and "| 0.40 |" in text
    assert "doubtful (between 0.5 and 0.75): cluster 1" in text


def test_report_links_to_files_that_exist(run):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", run["text"])
    assert len(links) == len(run["plots"])
    for link in links:
        assert not Path(link).is_absolute()
        assert (run["out"] / link).is_file(), f"report links to missing {link}"


def test_report_links_absolute_plot_paths_relative_to_the_report(run, tmp_path):
    out = run["out"].parent / f"{run['name']}-report"
    text = write_report(run["discovery"], run["plots"], out).read_text()  # absolute paths
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith(f"../{run['out'].name}/") for link in links)
    assert all((out / link).is_file() for link in links)


def test_report_without_significance_or_stability(run, tmp_path):
    bare = dataclasses.replace(run["discovery"], significance={}, stability=None, provenance={})
    text = write_report(bare, {}, tmp_path).read_text()
    assert "## Significance\n\nNot computed: no permutation test was run" in text
    assert "## Stability\n\nNot computed (too few samples" in text
    assert "## Figures" not in text


def test_report_says_why_a_single_cluster_has_no_stability(planted, tmp_path):
    one = from_labels(np.where(planted.labels < 0, -1, 0), [3], stability=None)
    text = write_report(one, {}, tmp_path).read_text()
    assert "## Stability\n\nNot computed: a single cluster" in text
    assert "too few samples" not in text


def test_summary_table_lists_every_cluster(run):
    discovery = run["discovery"]
    table = summary_table(discovery)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["cluster", "size", "kernel"]
    for cluster in discovery.clusters:
        k = cluster.kernel_size
        assert any(l.split()[:3] == [str(cluster.id), str(cluster.size), f"{k}x{k}"] for l in lines), cluster
    assert f"inactive: {len(discovery.inactive)}" in table
    assert "p = " in table and "ARI" in table


def test_cluster_order_puts_inactive_last():
    order, blocks = cluster_order([1, -1, 0, 1, 0, -1])
    assert order.tolist() == [2, 4, 0, 3, 1, 5]
    assert blocks == [("0", 0, 2), ("1", 2, 4), ("inactive", 4, 6)]


# The plots that apply only to some fits: the attribute they draw, the reason given without it.
OPTIONAL_PLOTS = {"spatial_profiles": (plot_spatial_profiles, "spatial_profiles_", "flat"),
                  "dendrogram": (plot_dendrogram, "linkage_", "hierarchical")}


@pytest.mark.parametrize("name", list(OPTIONAL_PLOTS))
def test_plots_that_do_not_apply_say_why(run, tmp_path, name):
    """Each case's expected plots (CASES) decide: drawn when it applies, refused with the reason
    and nothing written when it does not; an analyser without the attribute is always refused."""
    plot, attribute, why = OPTIONAL_PLOTS[name]
    analyzer = run["analyzer"]
    if name in run["expected"]:
        assert getattr(analyzer, attribute) is not None
        assert Path(run["plots"][name]).is_file()
        assert plot(analyzer, tmp_path / "drawn.png") == tmp_path / "drawn.png"
        assert (tmp_path / "drawn.png").is_file()
        analyzer = copy.copy(analyzer)  # the same fit, as if it had not produced what the plot draws
        setattr(analyzer, attribute, None)
    else:
        assert getattr(analyzer, attribute) is None
        assert name not in run["plots"] and not (run["out"] / f"{name}.png").exists()
    with pytest.raises(SparsenetError, match=why):
        plot(analyzer, tmp_path / "refused.png")
    assert not (tmp_path / "refused.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["drawn.png"] if name in run["expected"] else [])


def test_unfitted_analyser_is_refused(tmp_path):
    for plot in (plot_correlation, plot_spectrum, plot_spatial_profiles):
        with pytest.raises(SparsenetError, match="call fit"):
            plot(CorrelationAnalyzer(), tmp_path / "x.png")


@pytest.mark.parametrize("p, n, std, expected", [
    (0.01, 99, 0.02, "unlikely to be chance"),
    (0.25, 3, 0.02, "3 permutations cannot give p below 0.25"),
    (0.6, 9, 0.02, "not distinguishable from what independent channels produce"),
    (0.05, 19, 0.0, "z is not informative here"),
])
def test_significance_sentence_reads_the_numbers(planted, tmp_path, p, n, std, expected):
    labels = np.where(planted.labels < 0, -1, planted.labels)
    discovery = from_labels(labels, planted.kernel_sizes, significance={
        "statistic": "modularity", "value": 0.6, "null_mean": 0.1, "null_std": std,
        "z": 25.0 if std else float("inf"), "p": p, "n_permutations": n})
    text = write_report(discovery, {}, tmp_path).read_text()
    assert expected in text
    assert f"| {p:.3g} | {n} |" in text


def test_comparison_plots_ring_a_candidate_that_would_hide_under_an_earlier_one(tmp_path, monkeypatch):
    """Two arms with the same point (e.g. a random-kernel ablation that drew the discovered kernels)
    must both be visible: the later one is a hollow ring, and its legend entry names the earlier one."""
    import matplotlib.pyplot as plt

    from sparsenet.compare import plots

    labels = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: labels.extend(
        t.get_text() for t in fig.axes[0].get_legend().get_texts()) or plt.close(fig) or path)
    arm = dict(role="discovered", kind="grown", accuracy_mean=0.849, accuracy_ci_half=0.008, macs=1.19e6)
    cands = [dict(arm, candidate="grown"), dict(arm, candidate="grown-random-kernels"),
             dict(arm, candidate="grown-random-clusters", accuracy_mean=0.842)]
    plots.plot_pareto(cands, tmp_path / "p.png")
    assert labels == ["grown (grown network)", "grown-random-kernels (grown network; the same as grown)",
                      "grown-random-clusters (grown network)"]
    labels.clear()
    roles = {c["candidate"]: ("discovered", "grown") for c in cands}
    curves = {"grown": [[0.5, 0.6]], "grown-random-kernels": [[0.5, 0.6]], "grown-random-clusters": [[0.5, 0.61]]}
    plots.plot_curves(curves, roles, tmp_path / "c.png", style_of=plots.styles(cands))
    assert labels == ["grown (discovered, 1 seed)", "grown-random-kernels (discovered, 1 seed; the same as grown)",
                      "grown-random-clusters (discovered, 1 seed)"]
