"""CorrelationAnalyzer as a scikit-learn estimator: API, inputs, attributes, errors."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

import sparsenet
from sparsenet.analyser import CorrelationAnalyzer
from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats
from sparsenet.data.synthetic import planted_groups


def fast(**params):
    defaults = dict(n_permutations=0, n_resamples=0, random_state=0)
    return CorrelationAnalyzer(**{**defaults, **params})


@pytest.fixture(scope="module")
def planted():
    return planted_groups(n_samples=48, random_state=2)


@pytest.fixture(scope="module")
def flat():
    """N x C features: two correlated groups of 3 channels."""
    rng = np.random.default_rng(0)
    sources = rng.standard_normal((200, 2))
    X = np.repeat(sources, 3, axis=1) + 0.3 * rng.standard_normal((200, 6))
    return X, np.array([0, 0, 0, 1, 1, 1])


def test_check_estimator():
    check_estimator(CorrelationAnalyzer(n_clusters=2, n_permutations=3, n_resamples=2, random_state=0))


def test_lazy_top_level_export():
    assert sparsenet.CorrelationAnalyzer is CorrelationAnalyzer


def test_init_only_stores_parameters():
    model = CorrelationAnalyzer(n_clusters="many", affinity="cosine", mass_fraction=7)
    assert model.get_params()["affinity"] == "cosine"  # validated in fit, not here
    with pytest.raises(SparsenetError):
        model.fit(np.ones((4, 3)))


# ----------------------------------------------------------------------- fitted attributes

def test_fitted_attributes_on_maps(planted):
    model = fast(method="hierarchical", n_permutations=3, n_resamples=2).fit(planted.X)
    C, K = planted.X.shape[1], model.n_clusters_
    assert model.n_features_in_ == C and model.labels_.shape == (C,) and K == 4
    assert model.affinity_.shape == (C, C) and model.inactive_.dtype == bool
    assert model.cluster_sizes_.tolist() == np.bincount(model.labels_).tolist()
    assert model.spatial_profiles_.shape == (K, 3) and model.kernel_sizes_.shape == (K,)
    assert model.eigenvalues_.shape == (C,) and np.all(np.diff(model.eigenvalues_) >= 0)
    assert model.linkage_.shape == (C - 1, 4)
    assert model.significance_["n_permutations"] == 3 and 0 <= model.stability_ <= 1
    assert isinstance(model.stats_, ChannelStats)


def test_flat_input_has_no_spatial_profile(flat):
    X, labels = flat
    model = fast(n_clusters=2).fit(X)
    assert model.spatial_profiles_ is None and model.kernel_sizes_.tolist() == [1, 1]
    assert model.labels_.tolist() == labels.tolist() and model.linkage_ is None


def test_inactive_channels_get_minus_one_and_no_nan(planted):
    X = planted.X.copy()
    X[:, 0] = 0.0  # dead
    X[:, 9] = 2.5  # constant
    model = fast(n_permutations=3, n_resamples=2).fit(X)
    assert model.labels_[0] == -1 and model.labels_[9] == -1
    assert model.inactive_.tolist() == [i in (0, 9) for i in range(X.shape[1])]
    assert model.cluster_sizes_.sum() == X.shape[1] - 2
    for name in ("affinity_", "spatial_profiles_", "eigenvalues_"):
        assert np.isfinite(getattr(model, name)).all(), name
    # no NaN anywhere; z may be +inf when every shuffled copy gives the same value (a null without
    # spread, e.g. all pick K = 1): that is the documented reading of such a null
    assert not any(np.isnan(v) for v in model.significance_.values() if isinstance(v, float))
    assert all(np.isfinite(model.significance_[k]) for k in ("value", "null_mean", "null_std", "p"))
    assert np.all(model.affinity_[[0, 9]] == 0)
    out = model.transform(X)
    assert np.isfinite(out).all() and out.shape == (X.shape[0], 4, 12, 12)


def test_same_seed_same_result(planted):
    a = fast(n_permutations=4, n_resamples=2, random_state=5).fit(planted.X)
    b = fast(n_permutations=4, n_resamples=2, random_state=5).fit(planted.X)
    assert np.array_equal(a.labels_, b.labels_)
    assert a.significance_ == b.significance_ and a.stability_ == b.stability_


# ------------------------------------------------------------------------------ inputs

def test_fit_on_channel_stats_equals_fit_on_data(planted):
    stats = ChannelStats(max_radius=2)
    for batch in np.array_split(planted.X, 3):
        stats.partial_fit(batch)
    from_stats = fast(n_permutations=5, n_resamples=2).fit(stats)
    from_data = fast().fit(planted.X)
    assert np.array_equal(from_stats.labels_, from_data.labels_)
    assert np.array_equal(from_stats.kernel_sizes_, from_data.kernel_sizes_)
    assert np.allclose(from_stats.affinity_, from_data.affinity_)
    assert from_stats.significance_ is None and from_stats.stability_ is None
    assert from_stats.stats_ is stats


def test_two_pass_spatial_profiles_equal_one_pass(planted):
    """spatial_method='cluster_maps' (offset-0 statistics, then the K cluster maps) measures
    exactly the profiles of the C x C x rings statistics."""
    two = fast().fit(planted.X)
    one = fast(spatial_method="channel_pairs").fit(planted.X)
    assert two.spatial_method == "cluster_maps" and two.stats_.max_radius == 0
    assert one.stats_.max_radius == 2
    assert np.array_equal(two.labels_, one.labels_)
    np.testing.assert_allclose(two.spatial_profiles_, one.spatial_profiles_, rtol=0, atol=1e-8)
    assert np.array_equal(two.kernel_sizes_, one.kernel_sizes_)
    np.testing.assert_allclose(two.stats_.correlation_, one.stats_.correlation_, atol=1e-12)


def test_torch_input_equals_numpy(planted):
    a = fast().fit(torch.from_numpy(planted.X))
    b = fast().fit(planted.X)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.allclose(a.transform(torch.from_numpy(planted.X)), b.transform(planted.X))


def test_small_maps_limit_the_radius():
    X = np.random.default_rng(0).random((20, 4, 2, 2))
    model = fast(n_clusters=2).fit(X)
    assert model.spatial_profiles_.shape == (2, 2)  # radius 1 is all a 2 x 2 map holds


# --------------------------------------------------------------------------- transform

def test_transform_pools_cluster_means_flat(flat):
    X, labels = flat
    model = fast(n_clusters=2)
    out = model.fit_transform(X)
    assert out.shape == (200, 2)
    assert np.allclose(out[:, 0], X[:, :3].mean(axis=1)) and np.allclose(out[:, 1], X[:, 3:].mean(axis=1))
    assert np.allclose(out, clone(model).fit(X).transform(X))
    assert model.get_feature_names_out().tolist() == ["correlationanalyzer0", "correlationanalyzer1"]


def test_transform_maps_keeps_spatial_dims(planted):
    model = fast().fit(planted.X)
    out = model.transform(planted.X[:5])
    assert out.shape == (5, model.n_clusters_, 12, 12)
    members = model.labels_ == 1
    assert np.allclose(out[:, 1], planted.X[:5, members].mean(axis=1), atol=1e-6)


def test_transform_rejects_other_channel_count(planted):
    model = fast().fit(planted.X)
    with pytest.raises(SparsenetError, match="X has 5 channels .* fitted on 32"):
        model.transform(planted.X[:, :5])


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize(
    "params, match",
    [
        (dict(affinity="cosine"), r"unknown affinity 'cosine'; accepted: 'pearson_abs', 'pearson_pos', 'cofire_lift', 'cofire_jaccard', 'arora'"),
        (dict(method="kmeans"), r"unknown method 'kmeans'; accepted: 'spectral', 'hierarchical', 'communities'"),
        (dict(n_clusters=0), r"n_clusters must be an int >= 1 or 'auto'; got 0"),
        (dict(n_clusters="two"), r"n_clusters must be an int >= 1 or 'auto'; got 'two'"),
        (dict(n_clusters=2.5), r"n_clusters must be an int >= 1 or 'auto'; got 2.5"),
        (dict(mass_fraction=1.5), r"mass_fraction must be a number strictly between 0 and 1.*got 1.5"),
        (dict(mass_fraction=0), r"mass_fraction must be .*got 0"),
        (dict(graph_threshold=0.5), r"graph_threshold must be a finite lift > 1.*got 0.5"),
        (dict(n_permutations=-1), r"n_permutations must be an int >= 0; got -1"),
        (dict(max_clusters=0), r"max_clusters must be an int >= 1; got 0"),
        (dict(threshold="median"), r"threshold='median' is not understood"),
        (dict(spatial_method="rings"), r"spatial_method must be one of 'cluster_maps', 'channel_pairs'; got 'rings'"),
    ],
)
def test_bad_parameters(params, match, flat):
    with pytest.raises(SparsenetError, match=match):
        fast(**params).fit(flat[0])


def test_more_clusters_than_active_channels(flat):
    X = flat[0].copy()
    X[:, [1, 4]] = 0.0
    with pytest.raises(SparsenetError, match=r"n_clusters=5 is more than the 4 active channels .*\[1, 4\]"):
        fast(n_clusters=5).fit(X)


def test_too_few_channels_or_samples():
    with pytest.raises(SparsenetError, match=r"found 1 feature\(s\) .* minimum of 2 is required"):
        fast().fit(np.ones((10, 1)))
    with pytest.raises(SparsenetError, match=r"found 1 sample\(s\) .* minimum of 2 is required"):
        fast().fit(np.ones((1, 5)))
    with pytest.raises(SparsenetError, match=r"found 0 sample\(s\)"):
        fast().fit(np.ones((0, 5, 3, 3)))


@pytest.mark.parametrize("shape", [(10,), (4, 3, 5), (2, 3, 4, 4, 1)])
def test_wrong_ndim(shape):
    ndim = len(shape)
    with pytest.raises(SparsenetError, match=rf"X has {ndim} dimension\(s\).*accepted: N x C .* or N x C x H x W"):
        fast().fit(np.ones(shape))


def test_nan_reported_with_channel_index(planted):
    X = planted.X.copy()
    X[3, 7, 2, 2] = np.nan
    X[0, 11, 0, 0] = np.inf
    with pytest.raises(SparsenetError, match=r"non-finite values \(NaN or inf\) in 2 channel\(s\): 7 \(1\), 11 \(1\)"):
        fast().fit(X)


def test_all_channels_inactive():
    with pytest.raises(SparsenetError, match="all 4 channels are inactive"):
        fast().fit(np.zeros((10, 4)))


def test_unfitted_channel_stats():
    with pytest.raises(SparsenetError, match="has seen no data"):
        fast().fit(ChannelStats())
