"""The automatic K, the null that repeats it, and every analysis setting from CLI and TOML."""

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from sparsenet.analyser import CorrelationAnalyzer
from sparsenet.analyser import significance
from sparsenet.analyser.settings import DISCOVER, EXPERIMENT, FIELDS, AnalysisSettings
from sparsenet.analyser.significance import permutation_test
from sparsenet.cli import build_parser, main
from sparsenet.cli.common import analysis_settings
from sparsenet.compare.candidates import analysis_settings as candidate_settings
from sparsenet.compare.experiment import ConfigError, parse_experiment
from sparsenet.data.synthetic import planted_groups
from sparsenet.errors import SparsenetError

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"


def flat_groups(n_groups, size, rho, n_samples, seed):
    """Gaussian channels x = sqrt(rho) z_group + sqrt(1 - rho) noise, shuffled channel order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(n_groups), size))
    z = rng.standard_normal((n_samples, n_groups))
    X = np.sqrt(rho) * z[:, labels] + np.sqrt(1 - rho) * rng.standard_normal((n_samples, labels.size))
    return X, labels


# -------------------------------------------------------------------------- automatic K

@pytest.mark.parametrize("n_groups,size,rho,seed", [(24, 6, 0.5, 0), (24, 6, 0.5, 1), (40, 3, 0.4, 2)])
def test_auto_k_recovers_many_small_groups(n_groups, size, rho, seed):
    X, labels = flat_groups(n_groups, size, rho, 3000, seed)
    est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(X)
    assert abs(est.n_clusters_ - n_groups) <= 2  # the old cap of 10 (and its eigengap) gave K = 1
    assert adjusted_rand_score(labels, est.labels_) >= 0.9


def test_auto_k_finds_weak_groups_the_eigengap_misses():
    from sparsenet.analyser.clustering import eigengap_n_clusters

    X, labels = flat_groups(6, 10, 0.06, 3000, 3)
    est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=0).fit(X)
    assert eigengap_n_clusters(est.eigenvalues_, 30) == 1  # the first gap, against l_1 = 0, wins
    assert est.n_clusters_ == 6 and adjusted_rand_score(labels, est.labels_) > 0.9


def nested_blocks(n_sub, size, r_common, r_sub, n_other, n_samples, seed):
    """Sub-blocks sharing one common factor (each with its own too) beside a separate group (0.5)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.concatenate([np.repeat(np.arange(n_sub), size), np.full(n_other, n_sub)]))
    inner = labels < n_sub
    z = rng.standard_normal((n_samples, n_sub + 1))
    X = rng.standard_normal((n_samples, labels.size))
    X[:, inner] = (np.sqrt(r_common) * rng.standard_normal((n_samples, 1)) + np.sqrt(r_sub) * z[:, labels[inner]]
                   + np.sqrt(1 - r_common - r_sub) * X[:, inner])
    X[:, ~inner] = np.sqrt(0.5) * z[:, labels[~inner]] + np.sqrt(0.5) * X[:, ~inner]
    return X, labels


@pytest.mark.parametrize("n_sub,size,r_common,r_sub,seed", [(4, 8, 0.3, 0.2, 0), (3, 12, 0.25, 0.15, 1)])
def test_auto_k_separates_blocks_that_share_a_common_factor(n_sub, size, r_common, r_sub, seed):
    """The common factor makes the block's degrees large and squeezes its noise bulk near 1: the
    shuffled copies' edge (noise at small degrees) counts the block once, the degree-matched
    edge counts its sub-blocks."""
    from sparsenet.analyser.clustering import edge_n_clusters

    X, labels = nested_blocks(n_sub, size, r_common, r_sub, 6, 2000, seed)
    est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(X)
    assert est.n_clusters_ == n_sub + 1 and adjusted_rand_score(labels, est.labels_) >= 0.9
    assert est.k_edge_ == max(est.matched_edge_, est.shuffle_edge_) > est.shuffle_edge_
    assert edge_n_clusters(est.eigenvalues_, est.shuffle_edge_, X.shape[1]) == 2  # the rule before


def test_noise_edge_is_what_the_estimator_records():
    """analyser.noise_edge on the fit's affinity and draws gives the estimator's three edges; a
    data set that cannot be split into two parts of two rows has none (the eigengap decides)."""
    from sklearn.utils import check_random_state

    from sparsenet.analyser.noise_edge import NO_EDGE, noise_edge
    from sparsenet.stats import ChannelStats

    X, _ = nested_blocks(3, 8, 0.3, 0.2, 6, 600, 0)
    est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=3).fit(X)
    stats = ChannelStats(max_radius=0).partial_fit(X)
    edge = noise_edge(X, est.affinity_, est.inactive_, est.affinity, stats.thresholds_, est.graph_threshold,
                      check_random_state(3))
    assert (edge.edge, edge.matched, edge.shuffled) == (est.k_edge_, est.matched_edge_, est.shuffle_edge_)
    assert edge.edge == max(edge.matched, edge.shuffled)
    two = X[:2].reshape(2, X.shape[1])
    assert noise_edge(two, est.affinity_, est.inactive_, est.affinity, stats.thresholds_, est.graph_threshold,
                      check_random_state(0)) == NO_EDGE


def test_auto_k_stays_one_on_structureless_data():
    """K > 1 on independent channels at about the copies' 5% (40 data sets: at most 6 expected
    with probability 0.99 at 5%), and never with a single common factor's strong block."""
    ks = [CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(
        np.random.default_rng(300 + seed).standard_normal((400, 16))).n_clusters_ for seed in range(40)]
    assert np.mean(np.array(ks) > 1) <= 6 / 40
    X, _ = flat_groups(1, 24, 0.5, 2000, 5)
    assert CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=0).fit(X).n_clusters_ == 1


def test_max_clusters_bounds_the_search():
    X, _ = flat_groups(24, 6, 0.5, 3000, 0)
    assert CorrelationAnalyzer(n_permutations=0, n_resamples=0, max_clusters=5,
                               random_state=0).fit(X).n_clusters_ == 5


# ------------------------------------------------------------------------ significance

def test_null_is_calibrated_on_structureless_data():
    """Independent channels, K chosen automatically on the data and on every null copy: the p
    values spread over (0, 1] (at K = 1 the tie-break orders the copies) instead of sitting at 1."""
    ps, ks = [], []
    for seed in range(30):
        X = np.random.default_rng(100 + seed).standard_normal((300, 12))
        est = CorrelationAnalyzer(n_permutations=19, n_resamples=0, random_state=seed).fit(X)
        ps.append(est.significance_["p"])
        ks.append(est.n_clusters_)
    ps = np.array(ps)
    assert 0.35 < ps.mean() < 0.65  # uniform on {1/20, ..., 1}: mean 0.525
    assert np.mean(ps <= 0.05) <= 0.2 and np.mean(ps >= 0.5) >= 0.25
    assert np.mean(np.array(ks) == 1) >= 0.8


def test_p_reaches_its_floor_with_auto_and_given_k():
    X, labels = flat_groups(4, 6, 0.5, 400, 0)
    for k in ("auto", 4):
        est = CorrelationAnalyzer(n_clusters=k, n_permutations=99, n_resamples=0, random_state=0).fit(X)
        assert est.significance_["p"] == pytest.approx(1 / 100) and est.significance_["n_permutations"] == 99
        assert adjusted_rand_score(labels, est.labels_) == 1.0
    assert DISCOVER.permutations == 99 and EXPERIMENT.permutations == 10


def test_ties_at_equal_modularity_are_ordered_by_the_tiebreak():
    X = np.random.RandomState(0).standard_normal((40, 4))
    tiebreaks = iter([0.5, 0.1, 0.9, 0.3, 0.7])  # one per null copy, in order

    def pipeline(Z):  # every copy: one cluster (Q = 0), a tie-break value
        return np.eye(4), np.zeros(4, int), next(tiebreaks)

    significance.WORKERS, workers = 1, significance.WORKERS
    try:
        result = permutation_test(X, pipeline, 5, np.random.RandomState(0), observed=0.0, observed_tiebreak=0.4)
    finally:
        significance.WORKERS = workers
    assert result["p"] == pytest.approx((1 + 3) / 6)  # 0.5, 0.9, 0.7 >= 0.4


def test_threads_do_not_change_the_result():
    X, _ = flat_groups(5, 4, 0.3, 300, 1)
    fits = []
    for workers in (1, 2):
        significance.WORKERS, old = workers, significance.WORKERS
        try:
            fits.append(CorrelationAnalyzer(n_permutations=9, n_resamples=2, random_state=3).fit(X))
        finally:
            significance.WORKERS = old
    assert fits[0].significance_ == fits[1].significance_ and fits[0].stability_ == fits[1].stability_


def test_null_workers_follow_torch_threads():
    # a process given one torch thread (threads = 1, a torchrun rank) runs the copies one at a time
    import torch

    from sparsenet.compare.latency import torch_threads

    assert significance.WORKERS is None
    for n in (1, 2, 3):
        with torch_threads(n):
            assert significance.workers() == n
    significance.WORKERS = 1
    try:
        with torch_threads(3):
            assert significance.workers() == 1
    finally:
        significance.WORKERS = None
    assert significance.workers() == min(torch.get_num_threads(), significance.MAX_WORKERS)
    with torch_threads(significance.MAX_WORKERS + 4):   # many cores: memory caps the copies at a time
        assert significance.workers() == significance.MAX_WORKERS

def test_sample_affinity_matches_channel_stats():
    from sparsenet.analyser.affinity import AFFINITIES, compute_affinity, sample_affinity
    from sparsenet.stats import ChannelStats

    d = planted_groups(n_samples=32, n_dead=2, random_state=1)
    rows = d.X.transpose(0, 2, 3, 1).reshape(-1, d.X.shape[1])
    stats = ChannelStats(max_radius=0, threshold="quantile:0.8").partial_fit(d.X)
    for kind in AFFINITIES:
        affinity, inactive = sample_affinity(rows, kind, stats.thresholds_)
        assert np.array_equal(inactive, stats.inactive_)
        assert np.abs(affinity - compute_affinity(stats, kind)).max() < 1e-4



def test_gram_is_symmetric_and_exact_to_float32():
    # the copies' product: exactly symmetric (the Laplacian assumes it), float32-accurate, and
    # on a C-ordered matrix as on a transposed (Fortran-ordered) one
    from sparsenet.analyser.affinity import _gram

    A = np.random.default_rng(0).standard_normal((300, 40)).astype(np.float32)
    want = (A.astype(np.float64).T @ A.astype(np.float64)) / 300
    for M in (A, np.asfortranarray(A)):
        G = _gram(1.0 / 300, M)
        assert G.dtype == np.float32 and np.array_equal(G, G.T)
        assert np.abs(G - want).max() < 1e-5

# ----------------------------------------------------------------- settings everywhere

NEW = {"max_clusters": 3, "threshold": "quantile:0.9", "max_radius": 1, "mass_fraction": 0.7,
       "graph_threshold": 3.0, "spatial_method": "channel_pairs"}
CLI = {"max_clusters": "--max-clusters", "threshold": "--threshold", "max_radius": "--max-radius",
       "mass_fraction": "--mass-fraction", "graph_threshold": "--graph-threshold",
       "spatial_method": "--spatial-method"}
BAD = [("--max-clusters", "0", "argument --max-clusters: invalid K"), ("--threshold", "quantile:2", "threshold='quantile:2'"),
       ("--max-radius", "-1", "max_radius must be an integer >= 0"),
       ("--mass-fraction", "1.5", "mass_fraction must be a number strictly between 0 and 1"),
       ("--graph-threshold", "0.5", "graph_threshold must be a finite lift > 1"),
       ("--spatial-method", "rings", "unknown spatial_method 'rings'")]


def _cli_args(values):
    return [x for key, value in values.items() for x in (CLI[key], str(value))]


@pytest.mark.parametrize("command", ["discover", "grow"])
def test_every_setting_reaches_the_settings_from_the_cli(command):
    args = build_parser().parse_args([command, *_cli_args(NEW)])
    settings = analysis_settings(args)
    assert {key: getattr(settings, key) for key in NEW} == NEW
    assert set(FIELDS) >= set(NEW) | {"clusters", "affinity", "method", "permutations", "resamples"}


def test_discover_cli_threshold_makes_arora_recover_planted(capsys, tmp_path):
    planted = planted_groups(n_samples=64, random_state=0)
    np.save(tmp_path / "acts.npy", planted.X)
    values = {**NEW, "max_clusters": "auto", "max_radius": 2, "mass_fraction": 0.8}
    code = main(["discover", "--activations", str(tmp_path / "acts.npy"), "--affinity", "arora",
                 "--permutations", "3", "--resamples", "0", "--out", str(tmp_path / "run"), *_cli_args(values)])
    assert code == 0, capsys.readouterr().err
    d = json.loads((tmp_path / "run" / "discovery.json").read_text())
    assert adjusted_rand_score(planted.labels, d["labels"]) == 1.0
    assert {key: d["settings"][key] for key in values} == values


@pytest.mark.parametrize("command", ["discover", "grow"])
@pytest.mark.parametrize("option,value,message", BAD)
def test_bad_setting_refused_by_name(capsys, tmp_path, monkeypatch, command, option, value, message):
    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path / "cache"))  # nothing may be trained
    try:
        code = main([command, option, value, "--out", str(tmp_path / "run")])
    except SystemExit as exit_:  # argparse's own type check (usage line + error, exit 2)
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_every_setting_from_an_experiment_toml():
    data = tomllib.loads(SMOKE.read_text())
    data["candidates"][3]["analysis"] = dict(NEW)
    experiment = parse_experiment(data)
    point = experiment.point("swap-3b-full")  # candidates[3]
    settings = candidate_settings(point, seed=7)
    assert {key: getattr(settings, key) for key in NEW} == NEW and settings.seed == 7
    defaults = parse_experiment(tomllib.loads(SMOKE.read_text())).point("swap-3b-full").options["analysis"]
    assert {key: defaults[key] for key in NEW} == {key: getattr(EXPERIMENT, key) for key in NEW}


@pytest.mark.parametrize("key,value,message", [
    ("max_clusters", 0, 'expected "auto" or an integer >= 1'),
    ("threshold", "quantile:1.5", 'expected a number or "quantile:q"'),
    ("max_radius", -1, "expected an integer >= 0"),
    ("mass_fraction", 1.0, r"expected a number in \(0, 1\)"),
    ("graph_threshold", 1.0, r"expected a number in \(1, inf\)"),
    ("spatial_method", "rings", r"expected one of \['cluster_maps'"),
])
def test_bad_toml_setting_refused_by_path(key, value, message):
    data = tomllib.loads(SMOKE.read_text())
    data["candidates"][3]["analysis"] = {key: value}
    with pytest.raises(ConfigError, match=rf"candidates\[3\]\.analysis\.{key} is .*{message}"):
        parse_experiment(copy.deepcopy(data), source="bad.toml")


@pytest.mark.parametrize("field,value,message", [
    ("max_clusters", 0, "max_clusters must be a positive integer or 'auto'"),
    ("threshold", True, "threshold must be a number or 'quantile:q'"),
    ("max_radius", 1.5, "max_radius must be an integer >= 0"),
    ("spatial_method", "x", "unknown spatial_method 'x'"),
])
def test_settings_validate_by_name(field, value, message):
    with pytest.raises(SparsenetError, match=message):
        AnalysisSettings(**{field: value}).validate()
