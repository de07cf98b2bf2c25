"""Planted-structure generators: shapes, determinism, and the documented statistics."""

import numpy as np
import pytest

from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats
from sparsenet.data.synthetic import AroraSample, PlantedActivations, arora_network, planted_groups


@pytest.fixture(scope="module")
def planted():
    return planted_groups(n_samples=128, random_state=0)


@pytest.fixture(scope="module")
def planted_stats(planted):
    return ChannelStats(max_radius=5).partial_fit(planted.X)


def test_planted_shapes_and_labels(planted):
    assert isinstance(planted, PlantedActivations)
    assert planted.X.shape == (128, 32, 12, 12) and planted.X.dtype == np.float32
    assert (planted.X >= 0).all() and (planted.X == 0).any()  # ReLU-like
    np.testing.assert_array_equal(planted.labels, np.repeat(np.arange(4), 8))
    np.testing.assert_array_equal(planted.kernel_sizes, [1, 3, 5, 1])
    np.testing.assert_array_equal(planted.support_radius, [0, 2, 4, 0])


def test_planted_is_deterministic():
    a = planted_groups(n_samples=8, random_state=3)
    b = planted_groups(n_samples=8, random_state=3)
    c = planted_groups(n_samples=8, random_state=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_planted_dead_channels_and_shuffle():
    p = planted_groups(n_samples=16, group_sizes=(3, 4), kernel_sizes=(1, 3), n_dead=2,
                       shuffle=True, random_state=1)
    assert p.X.shape[1] == 9
    assert sorted(p.labels.tolist()) == [-1, -1, 0, 0, 0, 1, 1, 1, 1]
    assert np.all(p.X[:, p.labels == -1] == 0)
    s = ChannelStats(max_radius=1).partial_fit(p.X)
    np.testing.assert_array_equal(s.inactive_, p.labels == -1)


def test_planted_groups_correlate_within_not_across(planted, planted_stats):
    corr = planted_stats.correlation_
    same = planted.labels[:, None] == planted.labels[None, :]
    off = ~np.eye(len(corr), dtype=bool)
    assert corr[same & off].min() > 0.6
    assert np.abs(corr[~same]).max() < 0.1


def test_planted_spatial_support_matches_kernel_size(planted, planted_stats):
    """Documented convention: a group of kernel size k (a k x k box) is correlated at ring r
    iff r <= k - 1."""
    sc = planted_stats.spatial_correlation()
    off = ~np.eye(8, dtype=bool)
    for g, k in enumerate(planted.kernel_sizes):
        m = planted.labels == g
        ring = np.array([sc[r][np.ix_(m, m)][off].mean() for r in range(6)])
        radius = k - 1
        assert np.all(ring[: radius + 1] > 0.02 * ring[0]), (k, ring)
        assert np.all(np.abs(ring[radius + 1:]) < 0.03), (k, ring)  # few pairs at r = 5 on 12 x 12
    # across groups nothing at any ring
    cross = planted.labels[:, None] != planted.labels[None, :]
    assert np.abs(sc[:, cross]).max() < 0.05


def test_planted_bad_arguments():
    with pytest.raises(SparsenetError, match="kernel_sizes"):
        planted_groups(kernel_sizes=(1, 2, 3, 5))
    with pytest.raises(SparsenetError, match="one kernel size per group"):
        planted_groups(group_sizes=(4, 4), kernel_sizes=(1,))
    with pytest.raises(SparsenetError, match="sparsity"):
        planted_groups(sparsity=0.0)
    with pytest.raises(SparsenetError, match="random_state"):
        planted_groups(random_state="seed")


def test_arora_network_shapes_sparsity_and_siblings():
    a = arora_network(random_state=0)
    assert isinstance(a, AroraSample)
    assert [h.shape for h in a.layers] == [(2000, 10), (2000, 60), (2000, 60)]
    for h in a.layers:
        assert set(np.unique(h)) <= {0.0, 1.0}
        assert 0.05 < h.mean() < 0.35  # sparse
    assert [w.shape for w in a.weights] == [(60, 10), (60, 60)]
    for w, par in zip(a.weights, a.true_parents):
        assert par.shape == (60, 3)
        assert np.all((w != 0).sum(axis=1) == 3) and set(np.unique(w)) <= {-1, 0, 1}
        np.testing.assert_array_equal(np.sort(np.flatnonzero(w[0])), np.sort(par[0]))
    # the layers follow the model exactly
    h1 = ((a.layers[0] @ a.weights[0].T) > 0).astype(np.float32)
    np.testing.assert_array_equal(h1, a.layers[1])
    # bottom units sharing an excitatory parent co-fire more than unrelated ones
    B = a.observed
    co = (B.T @ B) / len(B)
    sib = a.siblings()
    unrelated = ~a.siblings(positive=False) & ~np.eye(60, dtype=bool)
    assert co[sib].mean() > 2 * co[unrelated].mean()


def test_arora_network_deterministic_and_validated():
    a = arora_network(n_samples=50, random_state=5)
    b = arora_network(n_samples=50, random_state=5)
    for x, y in zip(a.layers, b.layers):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(SparsenetError, match="degree"):
        arora_network(n_top=2, degree=3)
    with pytest.raises(SparsenetError, match="top_sparsity"):
        arora_network(top_sparsity=1.5)
    with pytest.raises(SparsenetError, match="top layer"):
        a.siblings(0)
