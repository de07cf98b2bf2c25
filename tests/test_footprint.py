"""The footprint: its definition, the exact candidate profiles, the streaming cross-pair
covariance, and the estimator on filters of several falloff families (ground truth from the
generating filter)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from sparsenet.analyser import CorrelationAnalyzer
from sparsenet.analyser.footprint import (FootprintBank, check_kernel_set, fit_cluster_maps,
                                          footprint_of_filter, window_mass_fractions)
from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.data.filtered import filtered_groups, make_filter
from sparsenet.discovery.value import from_labels, validate
from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats, ClusterMapStats
from sparsenet.stats.rings import ring_offsets, valid_range


# ------------------------------------------------------------------------------ definition
def _brute_fraction(h, k):
    """Largest share of sum |h| in one k x k window, by trying every placement (zero-padded)."""
    h = np.abs(h)
    pad = np.pad(h, k)
    best = 0.0
    for y in range(pad.shape[0] - k + 1):
        for x in range(pad.shape[1] - k + 1):
            best = max(best, pad[y:y + k, x:x + k].sum())
    return best / h.sum()


@pytest.mark.parametrize("family, size", [("box", 2), ("box", 3), ("box", 4), ("gaussian", 0.8),
                                          ("exponential", 1.0), ("tent", 2.5), ("anisotropic", 1.5)])
def test_window_mass_fractions_match_brute_force(family, size):
    h = make_filter(family, size)
    np.testing.assert_allclose(window_mass_fractions(h, (1, 3, 5)),
                               [_brute_fraction(h, k) for k in (1, 3, 5)], atol=1e-12)


def test_footprint_of_filter_follows_the_definition():
    assert [footprint_of_filter(np.ones((w, w))) for w in (1, 2, 3, 4, 5, 6)] == [1, 3, 3, 5, 5, 5]
    g = make_filter("gaussian", 0.8)  # 3x3 holds 91% of it, 1x1 only 25%
    assert footprint_of_filter(g, mass_fraction=0.8) == 3
    assert footprint_of_filter(g, mass_fraction=0.95) == 5
    assert footprint_of_filter(g, kernel_sizes=(1, 3, 5, 7), mass_fraction=0.2) == 1


def test_definition_bad_input():
    with pytest.raises(SparsenetError, match="mass_fraction must be a number strictly between 0 and 1.*got 1.2"):
        footprint_of_filter(np.ones((3, 3)), mass_fraction=1.2)
    with pytest.raises(SparsenetError, match="distinct positive odd integers"):
        check_kernel_set((1, 2, 3))
    with pytest.raises(SparsenetError, match="finite 2-D array with some mass"):
        window_mass_fractions(np.zeros((3, 3)), (1, 3))
    with pytest.raises(SparsenetError, match="mass_fraction must be"):
        AnalysisSettings(mass_fraction=0.0).validate()


# ------------------------------------------------------------------- profile -> footprint
def _geometry(R, H, W, N=100):
    offsets = np.array([d for r in range(R + 1) for d in ring_offsets(r, half=True)])
    pairs = np.array([N * np.diff(valid_range(dy, H))[0] * np.diff(valid_range(dx, W))[0]
                      for dy, dx in offsets], dtype=float)
    return offsets, np.clip(pairs, 0, None)


def _exact_covariance(h, offsets):
    """Autocovariance of white noise filtered by h at the offsets (scipy's direct correlation)."""
    a = correlate2d(h, h, mode="full")
    cy, cx = h.shape[0] - 1, h.shape[1] - 1
    out = []
    for dy, dx in offsets:
        y, x = cy + dy, cx + dx
        out.append(a[y, x] if 0 <= y < a.shape[0] and 0 <= x < a.shape[1] else 0.0)
    return np.array(out) / a[cy, cx]


TEMPLATES = [("box", 1), ("box", 2), ("box", 3), ("box", 4), ("box", 5), ("gaussian", 0.5),
             ("gaussian", 1.6), ("exponential", 0.3), ("exponential", 1.5), ("disc", 1.0),
             ("tent", 3.0), ("cauchy", 2.0)]


@pytest.mark.parametrize("family, size", TEMPLATES)
def test_exact_profile_of_each_template_gives_its_footprint(family, size):
    """The noise-free cross-pair covariance of a filter -- scaled, curved as a ReLU curves it
    and lifted by a per-image pedestal -- is fitted to that filter's footprint."""
    h = make_filter(family, size)
    offsets, pairs = _geometry(5, 12, 12)
    bank = FootprintBank(offsets, pairs, 5)
    a = _exact_covariance(h, offsets)
    truth = footprint_of_filter(h)
    for values, rho in ((3.0 * a, 1.0), (2.0 * (a + 0.25 * a * a) + 0.1, 0.8)):
        fit = bank.fit(values, rho)
        assert fit.kernel_size == truth, (family, size, fit)
        assert fit.margin > 0
        if family == "box":  # boxes are among the candidates: an exact fit
            assert fit.residual < 1e-6
        assert len(fit.profile) == 6 and fit.profile[0] == pytest.approx(1.0)


def test_a_profile_without_shared_signal_is_a_point():
    offsets, pairs = _geometry(3, 8, 8)
    fit = FootprintBank(offsets, pairs, 3).fit(np.zeros(len(offsets)))
    assert fit.kernel_size == 1 and fit.profile == (1.0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------- streaming against numpy
def _direct_cross(X, labels, R):
    """Per offset and cluster: sum over ordered pairs i != j of the per-position-centred
    covariance of the standardised channels, averaged over the (image, p) pairs (plain numpy)."""
    X = X.astype(np.float64)
    N, C, H, W = X.shape
    sd = X.transpose(1, 0, 2, 3).reshape(C, -1).std(axis=1)
    Xs = (X - X.mean(axis=0, keepdims=True)) / sd[None, :, None, None]
    offsets = [d for r in range(R + 1) for d in ring_offsets(r, half=True)]
    out = np.zeros((labels.max() + 1, len(offsets)))
    for m, (dy, dx) in enumerate(offsets):
        (h0, h1), (w0, w1) = valid_range(dy, H), valid_range(dx, W)
        a, b = Xs[:, :, h0:h1, w0:w1], Xs[:, :, h0 + dy:h1 + dy, w0 + dx:w1 + dx]
        for k in range(labels.max() + 1):
            idx = np.flatnonzero(labels == k)
            total = (a[:, idx].sum(1) * b[:, idx].sum(1)).sum()
            out[k, m] = (total - (a[:, idx] * b[:, idx]).sum()) / a[:, 0].size
    return np.array(offsets), out


def test_streaming_cross_covariance_equals_direct_numpy():
    d = filtered_groups([make_filter("gaussian", 1.0), make_filter("box", 2)], [5, 4], n_images=30,
                        size=9, position_mean=2.0, offset=0.3, random_state=0)
    X = d.X + 40.0  # large means: the shifted sums must not cancel
    labels = d.labels.copy()
    labels[2] = -1  # an unclustered channel is left out
    first = ChannelStats(max_radius=0).partial_fit(X)
    maps = ClusterMapStats(labels, first.mean_, first.std_, max_radius=4)
    for batch in np.array_split(X, 4):
        maps.partial_fit(batch)
    keep = labels >= 0
    offsets, ref = _direct_cross(X[:, keep], labels[keep], 4)
    np.testing.assert_array_equal(maps.offsets_, offsets)
    np.testing.assert_allclose(maps.cross_covariance_, ref, rtol=0, atol=1e-9)
    sizes = np.bincount(labels[keep])
    np.testing.assert_allclose(maps.cross_correlation_, ref[:, 0] / (sizes * (sizes - 1)), atol=1e-12)


def test_streaming_cross_covariance_over_two_map_sizes():
    """Maps of two sizes: each size is centred by its own per-position means."""
    a = filtered_groups([make_filter("box", 3)], [4], n_images=20, size=8, position_mean=1.0,
                        random_state=1)
    b = filtered_groups([make_filter("box", 3)], [4], n_images=15, size=6, position_mean=1.0,
                        random_state=2)
    first = ChannelStats(max_radius=0).partial_fit(a.X).partial_fit(b.X)
    maps = ClusterMapStats(a.labels, first.mean_, first.std_, max_radius=3)
    maps.partial_fit(a.X).partial_fit(b.X)
    # direct: centre each size by its own per-position means and standardise with the global std
    sd = first.std_
    sums = np.zeros(len(maps.offsets_))
    for X in (a.X.astype(np.float64), b.X.astype(np.float64)):
        Xs = (X - X.mean(axis=0, keepdims=True)) / sd[None, :, None, None]
        H, W = X.shape[2:]
        for m, (dy, dx) in enumerate(maps.offsets_):
            (h0, h1), (w0, w1) = valid_range(dy, H), valid_range(dx, W)
            p, q = Xs[:, :, h0:h1, w0:w1], Xs[:, :, h0 + dy:h1 + dy, w0 + dx:w1 + dx]
            sums[m] += (p.sum(1) * q.sum(1)).sum() - (p * q).sum()
    np.testing.assert_allclose(maps.cross_covariance_[0], sums / maps.offset_pairs_, atol=1e-9)


# ------------------------------------------------------------------ the estimator's answers
FAMILY_CASES = [("box", 1), ("box", 2), ("box", 3), ("box", 5), ("gaussian", 0.4),
                ("gaussian", 0.7), ("gaussian", 1.6), ("exponential", 0.25), ("exponential", 0.5),
                ("exponential", 1.5), ("disc", 1.0), ("tent", 4.0)]


def _fits(filters, group, noise, images, seed, size=10, **kw):
    d = filtered_groups(filters, [group] * len(filters), n_images=images, size=size, noise=noise,
                        random_state=seed, **kw)
    first = ChannelStats(max_radius=0).partial_fit(d.X)
    maps = ClusterMapStats(d.labels, first.mean_, first.std_, max_radius=5).partial_fit(d.X)
    return [f.kernel_size for f in fit_cluster_maps(maps, (1, 3, 5), 0.8)]


def test_footprint_accuracy_on_small_instances_of_each_family():
    filters = [make_filter(f, s) for f, s in FAMILY_CASES]
    truth = [footprint_of_filter(h) for h in filters]
    assert sorted(set(truth)) == [1, 3, 5]
    assert _fits(filters, 6, 1.0, 150, seed=3) == truth
    # spiky latents, per-image offsets and a per-position mean
    assert _fits(filters, 6, 1.0, 150, seed=4, latent="spiky", offset=0.5, position_mean=1.5) == truth


def test_same_filter_same_kernel_at_group_sizes_4_and_40_and_noise_half_and_2():
    filters = [make_filter(f, s) for f, s in [("box", 1), ("box", 3), ("gaussian", 0.7),
                                              ("exponential", 1.5), ("tent", 4.0)]]
    truth = [footprint_of_filter(h) for h in filters]
    for group, images in ((4, 200), (40, 40)):
        for noise in (0.5, 2.0):
            assert _fits(filters, group, noise, images, seed=group) == truth, (group, noise)


def test_estimator_clusters_and_sizes_filtered_groups_end_to_end():
    filters = [make_filter("box", 1), make_filter("gaussian", 0.7), make_filter("box", 5)]
    d = filtered_groups(filters, [8, 8, 8], n_images=150, size=12, noise=0.7, random_state=5)
    model = CorrelationAnalyzer(n_clusters="auto", n_permutations=0, n_resamples=0,
                                random_state=0).fit(d.X)
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(d.labels, model.labels_) == 1.0
    first_channel = [np.flatnonzero(model.labels_ == k)[0] for k in range(3)]
    truth = [footprint_of_filter(filters[d.labels[c]]) for c in first_channel]
    assert model.kernel_sizes_.tolist() == truth and sorted(truth) == [1, 3, 5]
    assert model.kernel_set_ == (1, 3, 5) and len(model.footprints_[0].profile) == 6


def test_discovery_keeps_the_footprint_fields():
    fit = {"profile": [1.0, 0.4], "model": [1.0, 0.41], "candidate": "box 2",
           "mass_fractions": {"1": 0.25, "3": 1.0}, "residual": 0.01, "runner_up": 1,
           "runner_up_residual": 0.2, "margin": 0.19}
    d = from_labels([0, 0, 1], [3, 1], [[1.0, 0.5], [1.0, 0.0]], footprints=[fit, {}])
    data = d.to_dict()
    assert data["clusters"][0]["footprint"] == fit and "footprint" not in data["clusters"][1]
    assert data["clusters"][0]["kernel_size"] == 3  # the existing fields stay as they were
    assert validate(data).clusters[0].footprint == fit
    data["clusters"][0]["footprint"] = [1, 2]
    with pytest.raises(SparsenetError, match=r"clusters\[0\].footprint must be an object"):
        validate(data)


def test_settings_import_neither_torch_nor_scipy_signal():
    """AnalysisSettings validates the mass fraction with this module at CLI parse time."""
    import subprocess
    import sys

    code = ("import sys, sparsenet.cli.common; "
            "print(sorted(m for m in ('torch', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
