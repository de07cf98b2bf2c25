"""ChannelStats against numpy oracles on tiny deterministic data."""

import numpy as np
import pytest
import torch

from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats, NotFittedError, ring_offsets


def _maps(seed=0, shape=(24, 5, 6, 7), offset=3.0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=shape)
    base[:, 1] += 0.8 * base[:, 0]  # some real correlation
    return base + offset


def _flat(X):
    """N x C x H x W -> (N*H*W) x C samples."""
    return X.transpose(0, 2, 3, 1).reshape(-1, X.shape[1])


def _fit(X, batches=4, **kw):
    s = ChannelStats(**kw)
    for b in np.array_split(X, batches):
        s.partial_fit(b)
    return s


def _slow_ring_cov(X, r):
    """Cross-covariance at Chebyshev ring r, the obvious way (all offsets, all valid p)."""
    N, C, H, W = X.shape
    mu = _flat(X).mean(axis=0)
    acc, count = np.zeros((C, C)), 0
    for dy, dx in ring_offsets(r):
        for h in range(H):
            for w in range(W):
                if 0 <= h + dy < H and 0 <= w + dx < W:
                    a = X[:, :, h, w] - mu
                    b = X[:, :, h + dy, w + dx] - mu
                    acc += a.T @ b
                    count += N
    return acc / count


def test_ring_offsets():
    assert ring_offsets(0) == [(0, 0)]
    assert len(ring_offsets(1)) == 8 and len(ring_offsets(2)) == 16
    half = ring_offsets(2, half=True)
    assert len(half) == 8
    assert sorted(half + [(-a, -b) for a, b in half]) == sorted(ring_offsets(2))


@pytest.mark.parametrize("as_torch", [False, True])
def test_flat_streaming_matches_numpy(as_torch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 6)) * [1, 2, 3, 0.5, 1, 1] + 100.0  # large mean: no cancellation
    X[:, 2] += X[:, 0]
    s = ChannelStats()
    for b in np.array_split(X, 7):
        s.partial_fit(torch.from_numpy(b) if as_torch else b)
    assert s.n_samples_ == 300 and s.n_images_ == 300 and s.n_channels_ == 6
    assert not s.spatial_
    np.testing.assert_allclose(s.mean_, X.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(s.covariance_, np.cov(X.T, bias=True), rtol=0, atol=1e-10)
    np.testing.assert_allclose(s.correlation_, np.corrcoef(X.T), rtol=0, atol=1e-10)
    np.testing.assert_allclose(s.std_, X.std(axis=0), rtol=0, atol=1e-10)
    with pytest.raises(SparsenetError, match="flat"):
        s.spatial_covariance()


def test_map_streaming_matches_numpy():
    X = _maps()
    s = _fit(X, batches=5)
    F = _flat(X)
    assert s.n_samples_ == F.shape[0] and s.n_images_ == X.shape[0] and s.spatial_
    np.testing.assert_allclose(s.covariance_, np.cov(F.T, bias=True), rtol=0, atol=1e-10)
    np.testing.assert_allclose(s.correlation_, np.corrcoef(F.T), rtol=0, atol=1e-10)


def test_spatial_covariance_matches_slow_computation():
    X = _maps(seed=2, shape=(6, 4, 5, 6))
    s = _fit(X, batches=3, max_radius=3)
    sc = s.spatial_covariance()
    assert sc.shape == (4, 4, 4)
    for r in range(4):
        np.testing.assert_allclose(sc[r], _slow_ring_cov(X, r), rtol=0, atol=1e-12)
        np.testing.assert_allclose(sc[r], sc[r].T, rtol=0, atol=1e-14)
    scor = s.spatial_correlation()
    np.testing.assert_allclose(scor[0], s.correlation_, atol=1e-14)
    np.testing.assert_allclose(scor[2], sc[2] / np.outer(s.std_, s.std_), atol=1e-12)


def test_spatial_statistics_with_varying_map_size():
    X1, X2 = _maps(3, (5, 3, 6, 6)), _maps(4, (4, 3, 4, 5))
    s = ChannelStats(max_radius=2).partial_fit(X1).partial_fit(X2)
    mu = np.concatenate([_flat(X1), _flat(X2)]).mean(axis=0)
    for r in (1, 2):
        num, den = np.zeros((3, 3)), 0
        for X in (X1, X2):
            N, C, H, W = X.shape
            for dy, dx in ring_offsets(r):
                for h in range(H):
                    for w in range(W):
                        if 0 <= h + dy < H and 0 <= w + dx < W:
                            num += (X[:, :, h, w] - mu).T @ (X[:, :, h + dy, w + dx] - mu)
                            den += N
        np.testing.assert_allclose(s.spatial_covariance()[r], num / den, atol=1e-12)


def test_merge_equals_one_pass_and_leaves_operands_unchanged():
    X = _maps(seed=5)
    whole = _fit(X, batches=1)
    a, b = _fit(X[:9], batches=2), _fit(X[9:], batches=3)
    a_before = a.to_dict()
    m = a.merge(b)
    assert m is not a and m is not b
    for k, v in a.to_dict().items():
        np.testing.assert_array_equal(v, a_before[k])
    assert m.n_samples_ == whole.n_samples_ and m.n_images_ == whole.n_images_
    np.testing.assert_allclose(m.mean_, whole.mean_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.covariance_, whole.covariance_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.spatial_covariance(), whole.spatial_covariance(), rtol=0,
                               atol=1e-12)
    np.testing.assert_array_equal(m.cofiring_, whole.cofiring_)
    # merging with an unfitted shard is a copy
    np.testing.assert_array_equal(ChannelStats().merge(a).covariance_, a.covariance_)
    np.testing.assert_array_equal(a.merge(ChannelStats()).covariance_, a.covariance_)


def test_float32_mode_within_stated_tolerance():
    X = np.maximum(_maps(seed=6, offset=0.3), 0) + 10.0  # mean >> std stresses float32
    s64 = _fit(X, dtype="float64")
    s32 = _fit(X.astype(np.float32), dtype="float32")
    np.testing.assert_allclose(s32.correlation_, s64.correlation_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s32.spatial_correlation(), s64.spatial_correlation(), rtol=0,
                               atol=1e-4)
    np.testing.assert_allclose(s32.covariance_, s64.covariance_, rtol=1e-4,
                               atol=1e-4 * np.abs(s64.covariance_).max())
    np.testing.assert_array_equal(s32.cofiring_, s64.cofiring_)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cofiring_counts_equal_direct_count(dtype):
    rng = np.random.default_rng(7)
    X = np.maximum(rng.normal(size=(10, 5, 4, 4)), 0).astype(np.float32)
    thr = 0.25
    s = _fit(X, threshold=thr, dtype=dtype)
    A = (_flat(X) > np.float32(thr)).astype(np.int64)
    np.testing.assert_array_equal(s.cofiring_, A.T @ A)
    np.testing.assert_allclose(s.active_rate_, A.mean(axis=0))
    np.testing.assert_array_equal(s.thresholds_, np.full(5, thr))


def test_quantile_threshold_from_first_batch_and_array_thresholds():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 4)) * [1, 2, 3, 4]
    s = ChannelStats(threshold="quantile:0.75")
    s.partial_fit(X[:200]).partial_fit(X[200:])
    expected = np.quantile(X[:200], 0.75, axis=0)
    np.testing.assert_allclose(s.thresholds_, expected)
    A = (X > expected).astype(np.int64)
    np.testing.assert_array_equal(s.cofiring_, A.T @ A)
    # a second shard with the first's thresholds can be merged
    other = ChannelStats(threshold=s.thresholds_).partial_fit(X[:50])
    assert s.merge(other).n_samples_ == 450
    # a shard with its own quantiles cannot
    own = ChannelStats(threshold="quantile:0.75").partial_fit(X[300:])
    with pytest.raises(SparsenetError, match="thresholds differ"):
        s.merge(own)


def test_constant_and_dead_channels_are_inactive_without_nan():
    rng = np.random.default_rng(9)
    X = np.maximum(rng.normal(size=(8, 5, 4, 4)), 0)
    X[:, 1] = 0.0  # dead after ReLU (and constant)
    X[:, 3] = 0.7  # constant but active
    X[:, 4] = -rng.random((8, 4, 4)) - 0.1  # varying but never > 0: dead
    s = _fit(X)
    np.testing.assert_array_equal(s.inactive_, [False, True, False, True, True])
    np.testing.assert_array_equal(s.constant_, [False, True, False, True, False])
    np.testing.assert_array_equal(s.dead_, [False, True, False, False, True])
    corr = s.correlation_
    assert np.isfinite(corr).all() and np.isfinite(s.spatial_correlation()).all()
    assert np.all(corr[[1, 3, 4]] == 0) and np.all(corr[:, [1, 3, 4]] == 0)
    np.testing.assert_array_equal(np.diag(corr), [1, 0, 1, 0, 0])
    np.testing.assert_allclose(corr[0, 2], np.corrcoef(_flat(X)[:, [0, 2]].T)[0, 1], atol=1e-12)


def test_errors_say_what_was_received():
    s = ChannelStats()
    with pytest.raises(NotFittedError, match="partial_fit"):
        s.mean_
    assert not hasattr(s, "correlation_")
    with pytest.raises(SparsenetError, match=r"3 dimensions.*N x C x H x W.*X\[None\]"):
        s.partial_fit(np.zeros((3, 4, 5)))
    with pytest.raises(SparsenetError, match="empty"):
        s.partial_fit(np.zeros((0, 4)))
    X = np.ones((4, 6, 3, 3))
    X[1, 2, 0, 0] = np.nan
    X[2, 5, 1, 1] = np.inf
    X[3, 5, 2, 1] = -np.inf
    msg = r"3 non-finite .* in 2 channel\(s\): 2 \(1\), 5 \(2\)"
    with pytest.raises(SparsenetError, match=msg):
        s.partial_fit(X)
    assert not hasattr(s, "mean_")  # a rejected batch leaves nothing behind
    s.partial_fit(np.ones((4, 6, 3, 3)))
    with pytest.raises(SparsenetError, match="7 channels.*earlier batches had 6"):
        s.partial_fit(np.ones((2, 7, 3, 3)))
    with pytest.raises(SparsenetError, match="2 dimensions.*earlier batches were N x C x H x W"):
        s.partial_fit(np.ones((2, 6)))
    with pytest.raises(SparsenetError, match="dtype"):
        s.partial_fit(np.array([["a", "b"]]))
    assert s.n_images_ == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"max_radius": -1}, "max_radius"),
    ({"dtype": "float16"}, "float32"),
    ({"threshold": "quantile:1.5"}, "quantile:q"),
    ({"threshold": "median"}, "quantile:q"),
    ({"threshold": float("nan")}, "finite"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(SparsenetError, match=match):
        ChannelStats(**kwargs)


def test_merge_mismatches():
    X = _maps(seed=10, shape=(4, 3, 4, 4))
    a = ChannelStats().partial_fit(X)
    with pytest.raises(SparsenetError, match="3 channels vs 2 channels"):
        a.merge(ChannelStats().partial_fit(X[:, :2]))
    with pytest.raises(SparsenetError, match="max_radius differs"):
        a.merge(ChannelStats(max_radius=1).partial_fit(X))
    with pytest.raises(SparsenetError, match="dtype differs"):
        a.merge(ChannelStats(dtype="float32").partial_fit(X))
    with pytest.raises(SparsenetError, match="flat features"):
        a.merge(ChannelStats().partial_fit(_flat(X)))
    with pytest.raises(SparsenetError, match="thresholds differ"):
        a.merge(ChannelStats(threshold=0.5).partial_fit(X))
    with pytest.raises(SparsenetError, match="accepted: a ChannelStats"):
        a.merge(X)


def test_ring_too_large_for_maps():
    s = ChannelStats(max_radius=2).partial_fit(np.random.default_rng(0).normal(size=(3, 2, 2, 2)))
    with pytest.raises(SparsenetError, match="distance 2"):
        s.spatial_covariance()


def test_to_dict_from_dict_round_trip(tmp_path):
    X = _maps(seed=11, shape=(6, 3, 5, 5))
    s = _fit(X, threshold="quantile:0.6")
    d = s.to_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in d.values())
    path = tmp_path / "stats.npz"
    s.save(path)
    for t in (ChannelStats.from_dict(d), ChannelStats.load(path)):
        assert t.threshold == "quantile:0.6" and t.max_radius == 2 and t.dtype == "float64"
        np.testing.assert_array_equal(t.spatial_covariance(), s.spatial_covariance())
        np.testing.assert_array_equal(t.cofiring_, s.cofiring_)
        np.testing.assert_array_equal(t.thresholds_, s.thresholds_)
        assert (t.n_samples_, t.n_images_) == (s.n_samples_, s.n_images_)
        # a restored object keeps streaming like the original
        more = _fit(X[:2], batches=1, threshold=s.thresholds_)
        np.testing.assert_allclose(t.partial_fit(X[:2]).covariance_, s.merge(more).covariance_,
                                   atol=1e-12)
    empty = ChannelStats.from_dict(ChannelStats(threshold=0.5, max_radius=1).to_dict())
    assert empty.threshold == 0.5 and not hasattr(empty, "mean_")
    with pytest.raises(SparsenetError, match="format"):
        ChannelStats.from_dict({"format": np.array("something else")})
    bad = dict(d, mean=np.zeros(4))
    with pytest.raises(SparsenetError, match="'mean' has shape"):
        ChannelStats.from_dict(bad)


def test_memory_is_independent_of_number_of_batches():
    rng = np.random.default_rng(12)
    s = ChannelStats()
    sizes = []
    for i in range(100):
        s.partial_fit(rng.normal(size=(2, 4, 5, 5)))
        if i + 1 in (10, 100):
            sizes.append(s.state_nbytes())
    assert sizes[0] == sizes[1]
    assert s.n_images_ == 200


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chunked_pipeline_and_blas_path_match_numpy(monkeypatch, dtype):
    """Force several chunks per batch, the torch (BLAS) product path and co-firing flushes."""
    from sparsenet.stats import kernels as st

    monkeypatch.setattr(st, "CHUNK_BYTES", 3 * 6 * 7 * 5 * 8)  # 3 maps (float64) per chunk
    monkeypatch.setattr(st, "SMALL_PRODUCT", 0)
    monkeypatch.setattr(st, "COUNT_CHUNK", 100)  # flush float32 counts every 2 maps
    X = np.maximum(_maps(seed=13, shape=(11, 5, 6, 7), offset=0.2), 0)
    s = _fit(X.astype(dtype), batches=2, dtype=dtype, max_radius=2)
    tol = 1e-10 if dtype == "float64" else 1e-5
    F = _flat(X)
    np.testing.assert_allclose(s.correlation_, np.corrcoef(F.T), atol=tol)
    for r in range(3):
        np.testing.assert_allclose(s.spatial_covariance()[r], _slow_ring_cov(X, r), atol=tol)
    A = (F > 0).astype(np.int64)
    np.testing.assert_array_equal(s.cofiring_, A.T @ A)


def test_integer_and_mixed_precision_inputs():
    rng = np.random.default_rng(14)
    Xi = rng.integers(0, 5, size=(6, 3, 4, 4))
    s = ChannelStats().partial_fit(Xi).partial_fit(torch.from_numpy(Xi.astype(np.float32)))
    F = _flat(np.concatenate([Xi, Xi]).astype(np.float64))
    np.testing.assert_allclose(s.covariance_, np.cov(F.T, bias=True), atol=1e-10)
    s32 = ChannelStats(dtype="float32").partial_fit(Xi.astype(np.float64))
    np.testing.assert_allclose(s32.correlation_, np.corrcoef(_flat(Xi).T), atol=1e-5)
    with pytest.raises(SparsenetError, match="too large"):
        ChannelStats(dtype="float32").partial_fit(np.full((2, 2), 1e300))


def test_half_precision_input_is_read_in_float32():
    rng = np.random.default_rng(15)
    X = (rng.random((40, 3, 16, 16)) * 100).astype(np.float16)  # sums overflow float16
    s = ChannelStats(dtype="float32").partial_fit(torch.from_numpy(X))
    np.testing.assert_allclose(s.mean_, _flat(X.astype(np.float64)).mean(axis=0), rtol=1e-5)


# ----------------------------------------------------------------- ClusterMapStats (second pass)

def _two_path_profiles(X, labels, K, R=2, batches=3, **kw):
    from sparsenet.analyser.spatial import cluster_spatial_profiles
    from sparsenet.stats import ClusterMapStats

    one = _fit(X, batches=batches, max_radius=R, **kw)
    ref = cluster_spatial_profiles(one.spatial_correlation(), labels, K)
    first = _fit(X, batches=batches, max_radius=0, **kw)
    maps = ClusterMapStats(labels, first.mean_, first.std_, max_radius=R)
    for b in np.array_split(X, batches):
        maps.partial_fit(b)
    return maps, ref


@pytest.mark.parametrize("seed", [0, 1])
def test_cluster_map_profiles_equal_channel_pair_profiles_on_planted_data(seed):
    from sparsenet.data.synthetic import planted_groups

    p = planted_groups(n_samples=48, group_sizes=(6, 5, 7, 4), kernel_sizes=(1, 3, 5, 3), size=9,
                       n_dead=2, shuffle=True, random_state=seed)
    maps, ref = _two_path_profiles(p.X, p.labels, p.n_groups)
    np.testing.assert_allclose(maps.profiles_, ref, rtol=0, atol=1e-8)
    assert maps.profiles_.shape == (4, 3) and np.all(maps.profiles_[:, 0] == 1.0)
    one = _fit(p.X, batches=3, max_radius=2)
    np.testing.assert_array_equal(maps.pair_counts_, one.ring_pair_counts_)


def test_cluster_map_profiles_with_large_means_varying_sizes_and_float32_first_pass():
    rng = np.random.default_rng(21)
    X = _maps(seed=21, shape=(20, 6, 7, 8), offset=50.0)  # large means: no cancellation
    labels = np.array([0, 0, 1, 1, 1, -1])
    maps, ref = _two_path_profiles(X, labels, 2, R=3)
    np.testing.assert_allclose(maps.profiles_, ref, rtol=0, atol=1e-8)
    from sparsenet.stats import ClusterMapStats  # maps of another size join the same sums

    small = rng.normal(size=(5, 6, 4, 4)) + 50.0
    first = ChannelStats(max_radius=0).partial_fit(X).partial_fit(small)
    one = ChannelStats(max_radius=2).partial_fit(X).partial_fit(small)
    from sparsenet.analyser.spatial import cluster_spatial_profiles

    m = ClusterMapStats(labels, first.mean_, first.std_, max_radius=2)
    m.partial_fit(torch.from_numpy(X)).partial_fit(small)
    np.testing.assert_allclose(m.profiles_, cluster_spatial_profiles(one.spatial_correlation(), labels, 2),
                               atol=1e-8)
    f32 = ChannelStats(max_radius=0, dtype="float32").partial_fit(X)  # float32 means/stds: ~1e-6
    m32 = ClusterMapStats(labels, f32.mean_, f32.std_, max_radius=3).partial_fit(X)
    np.testing.assert_allclose(m32.profiles_, maps.profiles_, atol=1e-4)


def test_cluster_map_stats_errors_and_degenerate_clusters():
    from sparsenet.stats import ClusterMapStats

    X = _maps(seed=22, shape=(4, 3, 5, 5))
    s = ChannelStats(max_radius=0).partial_fit(X)
    m = ClusterMapStats([0, 1, 1], s.mean_, s.std_, max_radius=2)
    assert not hasattr(m, "profiles_")  # NotFittedError is an AttributeError
    with pytest.raises(SparsenetError, match="N x 3 x H x W"):
        m.partial_fit(X[:, :2])
    with pytest.raises(SparsenetError, match="N x 3 x H x W"):
        m.partial_fit(X.reshape(4, 3, 25)[..., 0])
    with pytest.raises(SparsenetError, match="one value per channel"):
        ClusterMapStats([0, 1, 1], s.mean_[:2], s.std_)
    with pytest.raises(SparsenetError, match="std > 0"):
        ClusterMapStats([0, 1, 1], s.mean_, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(SparsenetError, match="all -1"):
        ClusterMapStats([-1, -1, -1], s.mean_, s.std_)
    with pytest.raises(SparsenetError, match="1-D array of C integers"):
        ClusterMapStats([[0, 1]], s.mean_, s.std_)
    with pytest.raises(SparsenetError, match="non-finite"):
        m.partial_fit(np.full((1, 3, 5, 5), np.nan))
    with pytest.raises(SparsenetError, match="Chebyshev distance 2"):
        ClusterMapStats([0, 1, 1], s.mean_, s.std_, max_radius=2).partial_fit(X[:, :, :2, :2]).profiles_
    # channels that cancel exactly: the summed map has no variance -> the profile of a point
    Y = np.stack([X[:, 0], -X[:, 0] + 2 * X[:, 0].mean(), X[:, 2]], axis=1)
    t = ChannelStats(max_radius=0).partial_fit(Y)
    mt = ClusterMapStats([0, 0, 1], t.mean_, t.std_ * np.array([1.0, 1.0, 1.0]), max_radius=1)
    p = mt.partial_fit(Y).profiles_
    np.testing.assert_array_equal(p[0], [1.0, 0.0])
    assert "n_clusters=2" in repr(mt)


def test_cofiring_false_counts_active_samples_only(tmp_path):
    X = np.maximum(_maps(seed=23, shape=(9, 4, 5, 6), offset=0.1), 0)
    X[:, 3] = 0.0  # a dead channel
    full = _fit(X, batches=3, max_radius=1)
    lite = _fit(X, batches=3, max_radius=1, cofiring=False)
    np.testing.assert_array_equal(lite.correlation_, full.correlation_)
    np.testing.assert_array_equal(lite.active_rate_, full.active_rate_)
    np.testing.assert_array_equal(lite.inactive_, full.inactive_)
    assert lite.dead_[3] and "cofiring=False" in repr(lite)
    with pytest.raises(SparsenetError, match="cofiring=False"):
        lite.cofiring_
    path = tmp_path / "lite.npz"
    lite.save(path)
    again = ChannelStats.load(path)
    assert again.cofiring is False
    np.testing.assert_array_equal(again.active_rate_, full.active_rate_)
    merged = lite.merge(again)
    np.testing.assert_array_equal(merged.active_rate_, full.active_rate_)
    with pytest.raises(SparsenetError, match="cofiring differs"):
        full.merge(lite)
    with pytest.raises(SparsenetError, match="cofiring="):
        ChannelStats(cofiring="yes")


def test_read_only_input_is_accepted_without_warning():
    import warnings

    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 5, 5))
    ref = ChannelStats().partial_fit(X.copy())
    X.flags.writeable = False  # e.g. a memory-mapped file opened read-only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ChannelStats().partial_fit(X)
    np.testing.assert_allclose(got.covariance_, ref.covariance_)
