"""The analysis building blocks and what they find on planted and structureless data."""

import networkx as nx
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from sparsenet.analyser import CorrelationAnalyzer, kernel_size_from_profile
from sparsenet.analyser.affinity import AFFINITIES, compute_affinity
from sparsenet.analyser.clustering import (
    canonical_labels,
    cluster_affinity,
    eigengap_n_clusters,
    laplacian_spectrum,
)
from sparsenet.analyser.significance import cluster_stability, modularity, permutation_test, sample_rows, stability
from sparsenet.analyser.spatial import cluster_spatial_profiles
from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats
from sparsenet.data.synthetic import arora_network, planted_groups


def fast(**params):
    """An analyser without the (slower) null and stability unless asked for."""
    defaults = dict(n_permutations=0, n_resamples=0, random_state=0)
    return CorrelationAnalyzer(**{**defaults, **params})


@pytest.fixture(scope="module")
def planted():
    return planted_groups(n_samples=64, random_state=0)


@pytest.fixture(scope="module")
def planted_shuffled_dead():
    return planted_groups(n_samples=64, n_dead=3, shuffle=True, random_state=1)


@pytest.fixture(scope="module")
def noise_maps():
    rng = np.random.default_rng(3)
    return np.maximum(rng.standard_normal((64, 24, 12, 12)), 0.0).astype(np.float32)


# ------------------------------------------------------------------------------ affinity

def tiny_stats():
    """8 binary samples tiled 20 times; channel 4 is dead."""
    pattern = np.array([
        [1, 1, 1, 1, 0, 0, 0, 0],  # ch0
        [1, 1, 1, 0, 0, 0, 0, 0],  # ch1: both with ch0 3/8, lift 2, Jaccard 3/4
        [0, 0, 0, 0, 1, 1, 1, 1],  # ch2: never with ch0, r = -1
        [1, 0, 1, 0, 1, 0, 1, 0],  # ch3: with ch0 2/8 = chance (lift 1), Jaccard 1/3, r = 0
        [0, 0, 0, 0, 0, 0, 0, 0],  # ch4: dead
    ], dtype=float).T
    X = np.tile(pattern, (20, 1))
    return X, ChannelStats().partial_fit(X)


@pytest.mark.parametrize("kind", AFFINITIES)
def test_affinity_symmetric_in_unit_interval(kind, planted_shuffled_dead):
    stats = ChannelStats(max_radius=0).partial_fit(planted_shuffled_dead.X)
    A = compute_affinity(stats, kind)
    assert np.allclose(A, A.T) and np.isfinite(A).all()
    assert A.min() >= 0.0 and A.max() <= 1.0
    dead = planted_shuffled_dead.labels < 0
    assert np.all(A[dead] == 0) and np.all(A[:, dead] == 0)
    assert np.all(np.diag(A)[~dead] == 1.0)


def test_affinity_values_on_hand_made_example():
    X, stats = tiny_stats()
    r01 = np.corrcoef(X[:, 0], X[:, 1])[0, 1]
    A = compute_affinity(stats, "pearson_abs")
    assert A[0, 1] == pytest.approx(abs(r01)) and A[0, 2] == pytest.approx(1.0)
    assert A[0, 3] == pytest.approx(0.0, abs=1e-12) and np.all(A[4] == 0)
    P = compute_affinity(stats, "pearson_pos")
    assert P[0, 1] == pytest.approx(r01) and P[0, 2] == 0.0
    L = compute_affinity(stats, "cofire_lift")
    assert L[0, 1] == pytest.approx(0.5) and L[0, 2] == 0.0 and L[0, 3] == pytest.approx(0.0)
    J = compute_affinity(stats, "cofire_jaccard")
    assert J[0, 1] == pytest.approx(0.75) and J[0, 2] == 0.0 and J[0, 3] == pytest.approx(1 / 3)
    G = compute_affinity(stats, "arora", graph_threshold=1.5)
    assert G[0, 1] == 1.0 and G[0, 2] == 0.0 and G[0, 3] == 0.0 and G[1, 3] == 0.0
    assert compute_affinity(stats, "arora", graph_threshold=2.5)[0, 1] == 0.0


def test_affinity_unknown_kind():
    _, stats = tiny_stats()
    with pytest.raises(SparsenetError, match="unknown affinity 'cosine'.*'pearson_abs'.*'arora'"):
        compute_affinity(stats, "cosine")


# ---------------------------------------------------------------------------- clustering

def block_affinity(sizes=(4, 3, 5), inside=0.8, outside=0.05):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    A = np.where(labels[:, None] == labels[None, :], inside, outside)
    np.fill_diagonal(A, 1.0)
    return A, labels


def test_eigengap_finds_the_number_of_blocks():
    A, _ = block_affinity()
    assert eigengap_n_clusters(laplacian_spectrum(A), max_clusters=10) == 3
    spectrum = laplacian_spectrum(A)
    assert spectrum[:3].max() < 0.3 < 1.0 < spectrum[3]  # three near 0, then the jump
    # capped at 2: only the gaps after l_1 and l_2 compete, and the first is larger here
    assert eigengap_n_clusters(spectrum, max_clusters=2) == 1


def test_eigengap_gives_one_cluster_without_structure():
    rng = np.random.default_rng(0)
    A = np.abs(rng.normal(0.05, 0.01, (20, 20)))
    A = (A + A.T) / 2
    spectrum = laplacian_spectrum(A)
    assert spectrum[0] == pytest.approx(0.0, abs=1e-9) and np.all(np.diff(spectrum) >= 0)
    assert eigengap_n_clusters(spectrum, max_clusters=10) == 1


@pytest.mark.parametrize("method", ["spectral", "hierarchical", "communities"])
def test_cluster_affinity_recovers_blocks(method):
    A, labels = block_affinity()
    result = cluster_affinity(A, method, "auto", 10, seed=0)
    assert np.array_equal(result.labels, labels)  # canonical numbering
    assert (result.linkage is not None) == (method == "hierarchical")


def test_canonical_labels_number_by_first_appearance():
    assert canonical_labels([5, 5, 2, 7, 2]).tolist() == [0, 0, 1, 2, 1]


# ------------------------------------------------------------------------------- spatial

@pytest.mark.parametrize(
    "profile, threshold, expected",
    [
        ([1.0], 0.1, 1),
        ([1.0, 0.05, 0.0], 0.1, 1),
        ([1.0, 0.4, 0.02], 0.1, 3),
        ([1.0, 0.55, 0.2], 0.1, 5),
        ([1.0, 0.55, 0.2], 0.25, 3),
        ([1.0, 0.05, 0.5], 0.1, 1),  # a rebound beyond a gap does not extend the extent
        ([1.0, 0.1, 0.0], 0.1, 1),  # at the threshold is not above it
        ([1.0, np.nan, 0.3], 0.1, 1),  # NaN counts as no correlation
        ([1.0, 0.9, 0.8, 0.7], 0.1, 7),
    ],
)
def test_kernel_size_from_profile(profile, threshold, expected):
    assert kernel_size_from_profile(profile, threshold) == expected


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, float("nan"), "0.1", True])
def test_kernel_size_from_profile_rejects_bad_threshold(bad):
    with pytest.raises(SparsenetError, match="extent_threshold must be a number strictly between 0 and 1"):
        kernel_size_from_profile([1.0, 0.5], bad)


def test_kernel_size_from_empty_profile():
    with pytest.raises(SparsenetError, match="at least the r = 0 value"):
        kernel_size_from_profile([], 0.1)


def test_communities_take_n_clusters_as_a_cap(planted):
    assert fast(method="communities", n_clusters=2).fit(planted.X).n_clusters_ <= 2
    assert fast(method="communities", n_clusters=8).fit(planted.X).n_clusters_ == 4


def test_cluster_profiles_are_autocorrelation_of_summed_map(planted):
    stats = ChannelStats(max_radius=2).partial_fit(planted.X)
    profiles = cluster_spatial_profiles(stats.spatial_correlation(), planted.labels, planted.n_groups)
    assert profiles.shape == (planted.n_groups, 3) and np.allclose(profiles[:, 0], 1.0)
    # oracle: ring-averaged autocorrelation of a group's summed standardised map
    Z = planted.X[:, planted.labels == 2].astype(np.float64)  # a 5x5 group
    Z = (Z - Z.mean(axis=(0, 2, 3), keepdims=True)) / Z.std(axis=(0, 2, 3), keepdims=True)
    S = Z.sum(axis=1)
    size = S.shape[1]
    for r in (1, 2):
        total, pairs = 0.0, 0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if max(abs(dy), abs(dx)) != r:
                    continue
                a = S[:, max(0, -dy):size - max(0, dy), max(0, -dx):size - max(0, dx)]
                b = S[:, max(0, dy):size - max(0, -dy), max(0, dx):size - max(0, -dx)]
                total, pairs = total + np.sum(a * b), pairs + a.size
        assert profiles[2, r] == pytest.approx(total / pairs / np.mean(S * S), abs=1e-6)


# ------------------------------------------------------------- planted groups recovered

@pytest.mark.parametrize("method", ["spectral", "hierarchical", "communities"])
def test_planted_groups_recovered_with_auto_k(method, planted_shuffled_dead):
    p = planted_shuffled_dead
    model = fast(method=method).fit(p.X)
    assert model.n_clusters_ == p.n_groups
    live = p.labels >= 0
    assert adjusted_rand_score(p.labels[live], model.labels_[live]) >= 0.95
    assert np.array_equal(model.labels_ < 0, ~live) and np.array_equal(model.inactive_, ~live)


@pytest.mark.parametrize("affinity", ["pearson_pos", "cofire_lift"])
def test_planted_groups_recovered_with_other_affinities(affinity, planted):
    model = fast(affinity=affinity, n_clusters=4).fit(planted.X)
    assert adjusted_rand_score(planted.labels, model.labels_) >= 0.95


@pytest.mark.parametrize("affinity", ["cofire_jaccard", "arora"])
def test_sparse_cofiring_affinities_need_a_sparse_threshold(affinity, planted):
    model = fast(affinity=affinity, threshold="quantile:0.9").fit(planted.X)
    assert model.n_clusters_ == 4
    assert adjusted_rand_score(planted.labels, model.labels_) >= 0.95


def test_planted_kernel_sizes_recovered_exactly(planted_shuffled_dead):
    p = planted_shuffled_dead
    model = fast().fit(p.X)
    live = p.labels >= 0
    found = model.kernel_sizes_[model.labels_[live]]
    assert np.array_equal(found, p.kernel_sizes[p.labels[live]])
    assert set(model.kernel_sizes_.tolist()) == {1, 3, 5}
    assert np.isfinite(model.spatial_profiles_).all() and np.isfinite(model.affinity_).all()


def test_planted_kernel_sizes_other_layout():
    p = planted_groups(n_samples=48, group_sizes=(6, 6, 6), kernel_sizes=(5, 1, 3), random_state=7)
    model = fast().fit(p.X)
    assert model.n_clusters_ == 3
    assert np.array_equal(model.kernel_sizes_[model.labels_], p.kernel_sizes[p.labels])


# ------------------------------------------------------------ significance and stability

def test_modularity_matches_networkx():
    A, labels = block_affinity()
    W = A.copy()
    np.fill_diagonal(W, 0.0)
    graph = nx.from_numpy_array(W)
    parts = [set(np.flatnonzero(labels == k)) for k in range(3)]
    expected = nx.community.modularity(graph, parts, weight="weight")
    assert modularity(A, labels) == pytest.approx(expected)
    assert modularity(A, np.zeros_like(labels)) == pytest.approx(0.0, abs=1e-12)


def test_modularity_ignores_inactive_channels():
    A, labels = block_affinity()
    labels_with_dead = np.append(labels, -1)
    A_dead = np.pad(A, ((0, 1), (0, 1)))
    assert modularity(A_dead, labels_with_dead) == pytest.approx(modularity(A, labels))


def test_planted_is_significant_and_stable(planted):
    model = fast(n_permutations=9, n_resamples=2).fit(planted.X)
    sig = model.significance_
    assert set(sig) == {"statistic", "value", "null_mean", "null_std", "z", "p", "n_permutations"}
    assert sig["statistic"] == "modularity" and sig["n_permutations"] == 9
    assert sig["p"] == pytest.approx(1 / 10) and sig["z"] > 10
    assert sig["value"] == pytest.approx(modularity(model.affinity_, model.labels_))
    assert model.stability_ > 0.95


@pytest.mark.parametrize("n_clusters", ["auto", 4])
def test_noise_is_not_significant(n_clusters, noise_maps):
    model = fast(n_clusters=n_clusters, n_permutations=9, n_resamples=2).fit(noise_maps)
    assert model.significance_["p"] > 0.05
    assert abs(model.significance_["z"]) < 3
    if n_clusters == "auto":
        assert model.n_clusters_ == 1 and model.stability_ is None
    else:
        assert model.stability_ < 0.3


def test_permutation_test_p_value_formula():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 4))
    blocks = np.kron(np.eye(2), np.ones((2, 2)))
    calls = []

    def pipeline(Z):  # observed: one cluster (Q = 0); every null copy: two blocks (Q = 0.5)
        calls.append(Z.shape)
        return blocks, (np.array([0, 0, 1, 1]) if len(calls) > 1 else np.zeros(4, int))

    result = permutation_test(X, pipeline, 4, rng)
    assert result["value"] == pytest.approx(0.0) and result["null_mean"] == pytest.approx(0.5)
    assert result["p"] == pytest.approx(1.0) and result["n_permutations"] == 4
    assert result["z"] == float("-inf")  # a null without spread
    assert len(calls) == 5 and all(shape == (40, 4) for shape in calls)


def test_big_data_is_subsampled_for_the_null():
    X = np.random.RandomState(0).standard_normal((10, 3, 4, 4))  # 160 rows
    shapes = []

    def pipeline(Z):
        shapes.append(Z.shape)
        return np.eye(3), np.array([0, 1, 2])

    result = permutation_test(X, pipeline, 3, np.random.RandomState(0), observed=123.0, max_rows=50)
    assert result["value"] != 123.0  # recomputed on the same 50 rows as the null
    assert shapes == [(50, 3)] * 4
    assert stability(X, pipeline, 2, np.random.RandomState(0), max_rows=50) == pytest.approx(1.0)
    assert shapes[4:] == [(50, 3)] * 4


def test_permuted_rows_keep_each_channel_and_its_maps():
    X = np.random.RandomState(0).standard_normal((6, 2, 3, 3))
    perms = np.array([[1, 0, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    Z = sample_rows(X.reshape(6, 2, 9), (np.arange(6), None), perms)
    assert np.array_equal(Z[:, 0].reshape(6, 9), X[perms[0], 0].reshape(6, 9))
    assert np.array_equal(Z[:, 1].reshape(6, 9), X[perms[1], 1].reshape(6, 9))


@pytest.mark.parametrize("shape,max_rows", [((12, 5, 9), 10_000), ((12, 5, 9), 40), ((30, 4, 1), 10)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shuffled_rows_gather_what_sample_rows_does(shape, max_rows, dtype):
    """The null's batched gather (one take from a shared channel-major copy, or one fancy index
    with a row subset) gives the per-channel gather's values and memory layout (so the products
    that follow run the same BLAS path)."""
    from sparsenet.analyser.significance import row_index, shuffled_rows

    X3 = np.random.RandomState(0).standard_normal(shape).astype(dtype)
    rows, _ = row_index(np.arange(shape[0]), shape[2], max_rows, np.random.RandomState(1))
    gather = shuffled_rows(X3, rows)
    for seed in range(3):
        perms = np.stack([np.random.RandomState(seed * 10 + c).permutation(shape[0]) for c in range(shape[1])])
        expected, got = sample_rows(X3, rows, perms, dtype=np.float32), gather(perms)
        assert got.dtype == np.float32 and got.strides == expected.strides
        assert np.array_equal(got, expected)


def test_stability_needs_four_images():
    X = np.random.RandomState(0).standard_normal((3, 4))
    assert stability(X, lambda Z: (np.eye(4), np.zeros(4, int)), 3, np.random.RandomState(0)) is None


# -------------------------------------------------------------------- Arora's network

def test_arora_graph_links_siblings():
    """Bottom layer: an edge of Arora's graph is far likelier between units sharing a parent."""
    net = arora_network(random_state=0)
    siblings = net.siblings()
    graph = fast(affinity="arora").fit(net.observed).affinity_ > 0
    off = ~np.eye(len(siblings), dtype=bool)
    assert graph[siblings & off].mean() > 3 * graph[~siblings & off].mean()


def test_arora_clusters_gather_siblings():
    """First hidden layer: units clustered together share a top-layer parent, beyond chance."""
    net = arora_network(random_state=0)
    siblings = net.siblings(1)
    labels = fast(affinity="arora").fit(net.layers[1]).labels_
    live = labels >= 0
    pairs = live[:, None] & live[None, :] & ~np.eye(len(labels), dtype=bool)
    together = (labels[:, None] == labels[None, :]) & pairs
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(50):
        perm = labels.copy()
        perm[live] = rng.permutation(labels[live])
        shuffled.append(siblings[(perm[:, None] == perm[None, :]) & pairs].mean())
    assert siblings[together].mean() > max(shuffled) + 0.2


def test_cluster_stability_is_the_mean_best_match_jaccard():
    labels = np.array([0, 0, 0, 0, 1, 1, -1])
    same = labels.copy()
    # cluster 0 cut in two in this half (best match 2/4), cluster 1 found again; the last channel,
    # inactive in the fit, is left out (it would make half cluster 0 hold three channels)
    cut = np.array([0, 0, 1, 1, 2, 2, 0])
    assert np.allclose(cluster_stability(labels, [same, same]), [1.0, 1.0])
    assert np.allclose(cluster_stability(labels, [same, cut]), [0.75, 1.0])
    # channels silent in a half have not moved: only channels active in both count ...
    quiet = np.array([0, 0, -1, -1, 1, 1, -1])
    assert np.allclose(cluster_stability(labels, [quiet]), [1.0, 1.0])
    # ... and a half in which all of a cluster's channels are silent does not count for it
    dead = np.array([-1, -1, -1, -1, 0, 0, -1])
    assert np.allclose(cluster_stability(labels, [same, dead]), [1.0, 1.0])
    only_dead = cluster_stability(labels, [dead])
    assert np.isnan(only_dead[0]) and only_dead[1] == 1.0
    assert cluster_stability(labels, None) is None


def _flat_groups(sizes, rho, n, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    z = rng.standard_normal((n, len(sizes)))
    return np.sqrt(rho) * z[:, labels] + np.sqrt(1 - rho) * rng.standard_normal((n, labels.size)), labels


def test_cluster_stability_tells_real_clusters_from_an_imposed_split():
    X, truth = _flat_groups([8] * 4, 0.3, 1200, 0)
    real = CorrelationAnalyzer(n_permutations=0, n_resamples=3, random_state=0).fit(X)
    assert real.n_clusters_ == 4 and np.all(real.cluster_stability_ > 0.95)
    # one homogeneous block cut in two because K = 2 was asked for: each half cuts it elsewhere
    block, _ = _flat_groups([40], 0.3, 1200, 1)
    forced = CorrelationAnalyzer(n_clusters=2, n_permutations=0, n_resamples=3, random_state=0).fit(block)
    assert forced.cluster_stability_.shape == (2,) and np.all(forced.cluster_stability_ < 0.75)
    none = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=0).fit(X)
    assert none.cluster_stability_ is None and none.stability_ is None
    one, _ = _flat_groups([30], 0.6, 600, 2)  # one cluster: nothing to compare, as for the ARI
    single = CorrelationAnalyzer(n_permutations=0, n_resamples=2, random_state=0).fit(one)
    assert single.n_clusters_ == 1 and single.cluster_stability_ is None


def test_overlapping_neighbourhoods_get_no_cluster_stability():
    from sparsenet.data.synthetic import arora_layer

    sample = arora_layer(3000, 12, 48, degree=6, density=0.05, random_state=0)
    model = CorrelationAnalyzer(method="arora", n_permutations=0, n_resamples=2, random_state=0).fit(sample.observed)
    assert model.overlapping_ and model.cluster_stability_ is None


def test_cluster_stability_survives_the_discovery_file(tmp_path):
    import json

    from sparsenet.discovery.value import from_labels, load_discovery

    with pytest.raises(SparsenetError, match="cluster_stability has 1 values for 2 clusters"):
        from_labels([0, 0, 1, 1, -1], [1, 3], cluster_stability=[0.9])
    assert [c.stability for c in from_labels([0, 1], [1, 1], cluster_stability=[None, np.nan]).clusters] == [None, None]
    d = from_labels([0, 0, 1, 1, -1], [1, 3], cluster_stability=[0.9, 0.45], stability=0.5)
    path = d.save(tmp_path / "discovery.json")
    assert [c.stability for c in load_discovery(path).clusters] == [0.9, 0.45]
    older = json.loads(path.read_text())
    for c in older["clusters"]:
        del c["stability"]  # a file written before the field existed
    path.write_text(json.dumps(older))
    assert [c.stability for c in load_discovery(path).clusters] == [None, None]
