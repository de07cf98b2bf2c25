"""``CorrelationAnalyzer``: cluster a layer's channels by how they fire together."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from sparsenet.analyser.affinity import check_affinity_kind, compute_affinity, sample_affinity
from sparsenet.analyser.arora import arora_step, binarise, check_alpha, primary_labels
from sparsenet.analyser.clustering import check_method, check_n_clusters, cluster_affinity, expand_labels
from sparsenet.analyser.footprint import (check_mass_fraction, fit_channel_rings, fit_cluster_maps,
                                         kernel_set)
from sparsenet.analyser.settings import ARORA_EXTENT_LEVEL, DISCOVER, SPATIAL_METHODS, check_graph_threshold
from sparsenet.analyser.noise_edge import noise_edge
from sparsenet.analyser.significance import (cluster_stability, half_labelings, modularity, permutation_test,
                                             split_agreement)
from sparsenet.analyser.spatial import cluster_spatial_profiles, kernel_sizes_from_profiles
from sparsenet.errors import SparsenetError
from sparsenet.stats import ChannelStats, ClusterMapStats

_SEED_MAX = np.iinfo(np.int32).max


class CorrelationAnalyzer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Cluster the channels (features) of a layer by how they fire together.

    Like :class:`sklearn.cluster.FeatureAgglomeration`, this clusters the *features*: ``fit``
    reads activations, groups channels that fire together (Arora et al. 2014's Hebbian rule),
    measures each group's spatial extent (the kernel size that covers it, 1/3/5 for
    Inception-like branches), tests the grouping against a shuffled null and scores its
    stability; ``transform`` pools the channels of each cluster.

    Parameters
    ----------
    n_clusters : int >= 1 or "auto", default "auto"
        Number of clusters K.  "auto": the number of eigenvalues of the normalised Laplacian of
        the affinity among active channels that lie below the noise edge (``k_edge_``), the
        higher of the lowest ``l_2`` of 19 channel-shuffled copies and of 19 degree-matched
        references (the data's degrees without cluster structure, plus the affinity's noise
        from a random split of the images; see :mod:`sparsenet.analyser.noise_edge`: K > 1 on
        structureless data in about 5%), at most ``max_clusters``; fitted on
        a ``ChannelStats`` (nothing to shuffle), the eigengap.  An int larger than the number of active channels
        raises ``SparsenetError``.  With ``method="communities"`` an int is an upper bound:
        modularity decides, merged down to at most ``n_clusters``.
    affinity : str, default "pearson_pos"
        How "fire together" is measured; every option gives a symmetric matrix in [0, 1].

        - "pearson_abs": ``|r|``, absolute Pearson correlation.
        - "pearson_pos": ``max(r, 0)``, positive correlation only.
        - "cofire_lift": lift = P(i & j active) / (P(i) P(j)), mapped to [0, 1) by
          ``max(lift - 1, 0) / lift``: 0 at or below chance, 0.5 at twice chance.
        - "cofire_jaccard": |i & j active| / |i or j active| over samples.
        - "arora": Arora's binary Hebbian graph: an edge iff lift > ``graph_threshold`` and the
          co-firing count is significantly (Poisson z > 3) above independence.

        A channel is *active* in a sample where its value exceeds ``threshold``.  The co-firing
        kinds assume sparse firing (Arora's model): on a dense layer where channels are active
        half of the time, independent pairs already have Jaccard ~1/3 and lift cannot exceed 2,
        so use e.g. ``threshold="quantile:0.9"`` there (planted groups: "arora" and
        "cofire_jaccard" recover them exactly with it and fail with 0.0; the Pearson kinds and
        "cofire_lift" recover them with either).
    method : str, default "spectral"
        - "spectral": scikit-learn ``SpectralClustering`` on the precomputed affinity, seeded
          by ``random_state``.
        - "hierarchical": scipy average linkage on distances ``1 - affinity``, cut into K
          clusters; the linkage matrix is kept in ``linkage_`` (for a dendrogram).
        - "communities": greedy modularity communities (Clauset-Newman-Moore, networkx) of the
          weighted affinity graph (for "arora", the binary graph); see ``n_clusters``.
        - "arora": Arora et al.'s single-layer step (:mod:`sparsenet.analyser.arora`,
          docs/arora.md): co-firing graph by a Bonferroni-corrected binomial test, one
          *overlapping* neighbourhood per hidden cause (a channel may be in several or none),
          K found by the data (``n_clusters``, ``affinity``, ``max_clusters`` are ignored).
          Needs the samples (not a ChannelStats).  ``labels_`` is then each channel's primary
          neighbourhood, ``neighbourhoods_`` holds them all and ``arora_`` the decoded hidden
          layer.
    max_clusters : int >= 1 or "auto", default "auto"
        Largest K considered by ``n_clusters="auto"`` (and the cap of "communities" there);
        "auto": half the active channels.
    threshold : float, "quantile:q" or array of C floats, default 0.0
        Activity threshold passed to :class:`~sparsenet.stats.ChannelStats` (0.0: a channel
        fires where it is positive, i.e. after a ReLU; "quantile:0.9": its top 10% of values).
        Used by the co-firing affinities and to call never-active channels dead.  Ignored when
        fitting a ``ChannelStats`` (its own ``thresholds_`` apply).
    max_radius : int >= 0, default 2
        Largest Chebyshev radius R of ``spatial_profiles_``; the kernel set is 1, 3, ...,
        ``2R + 1`` (R = 2: 1x1, 3x3, 5x5) and the footprint is fitted to cross-pair
        covariances measured up to radius ``2R + 1``.  Both are limited to ``max(H, W) - 1``
        for small maps; ignored when fitting a ``ChannelStats`` (its own ``max_radius``
        applies, to both).
    mass_fraction : float in (0, 1), default 0.8
        A cluster's kernel size is the footprint of the filter behind its shared pattern: the
        smallest kernel whose centred window holds this share of the filter's mass
        (:mod:`sparsenet.analyser.footprint`, ``docs/analyser.md``).
    graph_threshold : float > 1, default 2.0
        Lift above which the "arora" affinity draws an edge (2.0: the pair co-fires at least
        twice as often as independent units would).  Used only by ``affinity="arora"``.
    cofiring_alpha : float in (0, 1), default 0.05
        ``method="arora"``: family-wise rate of false related pairs among independent channels
        (the Bonferroni level of the co-firing test over all C(C-1)/2 pairs).
    n_permutations : int >= 0, default 99
        Channel-shuffled null repeats of the significance test (the smallest reachable p is
        ``1 / (1 + n_permutations)``); 0 skips the test.
    n_resamples : int >= 0, default 5
        Random half-splits of the images for the stability score; 0 skips it.
    random_state : int, RandomState or None, default None
        Seeds spectral clustering, the null's permutations and the half-splits.
    spatial_method : {"cluster_maps", "channel_pairs"}, default "cluster_maps"
        How the spatial profiles are measured when fitting activations (both give the same
        profiles, to rounding; see :mod:`sparsenet.analyser.spatial`).

        - "cluster_maps": two passes.  The first accumulates offset-0 statistics only
          (``ChannelStats(max_radius=0)``: covariance and co-firing, enough to cluster); after
          clustering, a second pass over the activations measures the ring autocovariances of
          the K summed, standardised cluster maps (:class:`~sparsenet.stats.ClusterMapStats`):
          ``C x K`` work per position instead of ``C x C x (R + 1)``.  ``stats_`` then holds
          offset 0 only (``max_radius == 0``).
        - "channel_pairs": one pass of ``ChannelStats(max_radius=R)``, the C x C
          cross-covariance at every ring; ``stats_.spatial_correlation()`` holds all of them.

        Fitting a ``ChannelStats`` always uses its own rings.

    Attributes
    ----------
    labels_ : ndarray of shape (C,)
        Cluster of each channel, 0..K-1 numbered in order of first appearance; -1 for inactive
        channels (dead or constant), which are left out of clustering.
    neighbourhoods_ : list of K int arrays
        The channels of each cluster; with ``method="arora"`` they may overlap
        (``overlapping_`` is then True).
    n_clusters_ : int
        K found (may be below a requested int for "hierarchical" ties and "communities").
    cluster_sizes_ : ndarray of shape (K,)
        Channels per cluster.
    affinity_ : ndarray of shape (C, C)
        The affinity; rows/columns of inactive channels are 0.  Never NaN.
    inactive_ : ndarray of bool, shape (C,)
        Channels excluded as dead (never above threshold) or constant.
    eigenvalues_ : ndarray of shape (n_active,)
        Ascending spectrum of the normalised Laplacian of the active affinity (eigengap plot).
    linkage_ : ndarray or None
        scipy linkage matrix over the active channels for "hierarchical", else None.
    spatial_profiles_ : ndarray of shape (K, R + 1) or None
        Within-cluster correlation vs radius r = 0..R (1 at r = 0), all pairs (each channel
        with itself included); None for flat N x C input.
    kernel_sizes_ : ndarray of shape (K,)
        Footprint of each cluster (1, 3, 5, ...); all 1 for flat input (no extent).
    footprints_ : list of FootprintFit or None
        Per cluster: the measured cross-pair ring profile (``profile``, per-position means
        removed, up to radius 2R + 1), the best candidate filter and its fitted profile
        (``model``), its window mass fractions, and the runner-up footprint with its misfit
        (``margin``); None for flat input.
    kernel_set_ : tuple of int
        The kernel sizes considered (1, 3, ..., 2R + 1 for the radius R the maps allowed).
    significance_ : dict or None
        ``{"statistic": "modularity", "value", "null_mean", "null_std", "z", "p",
        "n_permutations"}`` from the channel-shuffled null (see
        :mod:`sparsenet.analyser.significance`): each channel is permuted across images and
        the same pipeline (thresholds, affinity, method, and under "auto" the choice of K with
        the shuffled copies' edge ``shuffle_edge_``, the structureless copies' own; an int K
        stays fixed) is re-run.
        ``p = (1 + #{null >= value}) / (1 + n_permutations)``, ties at equal modularity
        (K = 1) ordered by minus ``l_2`` under "auto"; z is 0 or +-inf when
        the null has no spread.  Data with more than 50,000 rows (image positions) are
        subsampled to 50,000 rows for the null, the observed value and the halves.  None when ``n_permutations=0``, when fitted on a
        ``ChannelStats`` (the null needs the samples) or with fewer than 2 images.
    stability_ : float or None
        Mean adjusted Rand index between the clusterings (K fixed at ``n_clusters_``) of two
        random halves of the images, over ``n_resamples`` splits: about 1 for real structure,
        about 0 for noise.  None when ``n_resamples=0``, when ``n_clusters_ == 1`` (a single
        cluster agrees with itself trivially), when fitted on a ``ChannelStats`` (the halves
        need the samples) or with fewer than 4 images.
    cluster_stability_ : ndarray of shape (n_clusters_,) or None
        Per cluster, its mean Jaccard similarity with the most similar cluster of each of the
        same halves' clusterings (Hennig 2007): near 1 for a cluster found again whenever the
        images are resampled, 1/2 or below for one the clustering invents.  None where
        ``stability_`` is, and for overlapping neighbourhoods (``method="arora"``: the halves
        give primary labels, not neighbourhoods).
    k_edge_ : float or None
        The noise edge that chose K under "auto", ``max(matched_edge_, shuffle_edge_)`` (None
        with K given, without samples, or with too few images to split: the eigengap).
    matched_edge_, shuffle_edge_ : float or None
        The two references' edges: the degree-matched one, and the channel-shuffled copies'
        (which the permutation null's copies, being structureless, choose K with).
    stats_ : ChannelStats
        The statistics everything was computed from (with ``spatial_method="cluster_maps"``
        and activations: offset 0 only, the profiles coming from the second pass).
    n_features_in_ : int
        Number of channels C.

    Notes
    -----
    ``fit`` accepts N x C arrays (flat features), N x C x H x W maps (every image position is
    one sample of the C channels), numpy or torch, or an already fitted ``ChannelStats`` (e.g.
    streamed over a big dataset).  ``transform`` returns numpy: N x K for N x C input and
    N x K x H x W for maps (each output channel is the mean of its cluster's channels).

    Examples
    --------
    >>> from sparsenet.data.synthetic import planted_groups
    >>> planted = planted_groups(n_samples=64, random_state=0)
    >>> model = CorrelationAnalyzer(random_state=0).fit(planted.X)
    >>> model.n_clusters_, model.kernel_sizes_.tolist()
    (4, [1, 3, 5, 1])
    >>> model.transform(planted.X).shape
    (64, 4, 12, 12)
    """

    def __init__(
        self,
        n_clusters=DISCOVER.clusters,
        *,
        affinity=DISCOVER.affinity,
        method=DISCOVER.method,
        max_clusters=DISCOVER.max_clusters,
        threshold=DISCOVER.threshold,
        max_radius=DISCOVER.max_radius,
        mass_fraction=DISCOVER.mass_fraction,
        graph_threshold=DISCOVER.graph_threshold,
        cofiring_alpha=DISCOVER.cofiring_alpha,
        n_permutations=DISCOVER.permutations,
        n_resamples=DISCOVER.resamples,
        random_state=None,
        spatial_method=DISCOVER.spatial_method,
    ):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.method = method
        self.max_clusters = max_clusters
        self.threshold = threshold
        self.max_radius = max_radius
        self.mass_fraction = mass_fraction
        self.graph_threshold = graph_threshold
        self.cofiring_alpha = cofiring_alpha
        self.n_permutations = n_permutations
        self.n_resamples = n_resamples
        self.random_state = random_state
        self.spatial_method = spatial_method

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, stats=None):
        """Fit on activations (N x C or N x C x H x W, numpy or torch) or a fitted ChannelStats.

        ``stats``: the ``ChannelStats`` of exactly these activations, accumulated already (by
        :func:`sparsenet.discover` while it recorded them, on the device), used instead of a
        second pass over ``X``; it must match ``X`` (channels, images, kind) and the settings
        (threshold, rings)."""
        self._validate_params()
        rng = check_random_state(self.random_state)
        if isinstance(X, ChannelStats):
            if stats is not None:
                raise SparsenetError("fit got a ChannelStats as X and another as stats; give one of them")
            samples, stats = None, self._check_stats(X)
        else:
            samples = self._check_fit_input(X)
            two_pass = self.spatial_method == "cluster_maps"
            if stats is not None:
                stats = self._check_given_stats(stats, samples, two_pass)
            else:
                stats = ChannelStats(max_radius=0 if two_pass else self._radius(samples),
                                     threshold=self.threshold)
                stats.partial_fit(samples)
        self.stats_ = stats
        self.n_features_in_ = stats.n_channels_
        self.k_edge_ = None
        self.matched_edge_ = None
        self.shuffle_edge_ = None
        if self.method == "arora":
            self._fit_arora(stats, samples)
        else:
            self._fit_clusters(stats, rng, samples)
            self.neighbourhoods_ = [np.flatnonzero(self.labels_ == k) for k in range(self.n_clusters_)]
            self.overlapping_ = False
        self._fit_spatial(stats, samples)
        self._fit_significance(samples, stats, rng)
        return self

    def _fit_clusters(self, stats, rng, samples=None) -> None:
        self.inactive_ = np.asarray(stats.inactive_, dtype=bool).copy()
        n_active = int((~self.inactive_).sum())
        if n_active == 0:
            raise SparsenetError(
                f"all {stats.n_channels_} channels are inactive (dead: never above threshold="
                f"{self.threshold!r}, or constant); nothing to cluster"
            )
        check_n_clusters(self.n_clusters, n_active, np.flatnonzero(self.inactive_))
        self.affinity_ = compute_affinity(
            stats, self.affinity, graph_threshold=self.graph_threshold
        )
        if self.n_clusters == "auto" and samples is not None:
            edge = noise_edge(samples, self.affinity_, self.inactive_, self.affinity, stats.thresholds_,
                              self.graph_threshold, rng)
            self.k_edge_, self.matched_edge_, self.shuffle_edge_ = edge.edge, edge.matched, edge.shuffled
        self._seed = seed = rng.randint(_SEED_MAX)
        result = self._cluster(self.affinity_, self.inactive_, self.n_clusters, seed, edge=self.k_edge_)
        self.labels_ = expand_labels(result.labels, self.inactive_)
        self.n_clusters_ = int(result.labels.max()) + 1
        self.cluster_sizes_ = np.bincount(result.labels, minlength=self.n_clusters_)
        self.eigenvalues_ = result.eigenvalues
        self.linkage_ = result.linkage if self.method == "hierarchical" else None

    def _fit_arora(self, stats, samples) -> None:
        """Arora's single-layer step (:mod:`sparsenet.analyser.arora`) on the binarised samples."""
        if samples is None:
            raise SparsenetError("method='arora' needs the samples (three-wise co-firing counts); "
                                 "got a ChannelStats. Fit on the activations (N x C or N x C x H x W)")
        self.inactive_ = np.asarray(stats.inactive_, dtype=bool).copy()
        layer = arora_step(binarise(samples, stats.thresholds_), self.cofiring_alpha)
        if not layer.neighbourhoods:
            raise SparsenetError(
                f"method='arora' found no neighbourhood: {int(layer.graph.sum()) // 2} related pair(s) "
                f"among {stats.n_channels_} channels at cofiring_alpha={self.cofiring_alpha} "
                f"(threshold={self.threshold!r}); accepted: data whose units fire together "
                f"(sparse firing; raise the threshold, e.g. 'quantile:0.9', for dense layers)")
        self.arora_ = layer
        self.neighbourhoods_ = list(layer.neighbourhoods)
        self.overlapping_ = True
        self.labels_ = primary_labels(layer.neighbourhoods, layer.support, stats.n_channels_)
        self.n_clusters_ = len(layer.neighbourhoods)
        self.cluster_sizes_ = np.array([len(m) for m in layer.neighbourhoods])
        affinity = layer.graph.astype(np.float64)
        np.fill_diagonal(affinity, 1.0)
        affinity[self.inactive_, :] = 0.0
        affinity[:, self.inactive_] = 0.0
        self.affinity_ = affinity
        self.eigenvalues_ = None
        self.linkage_ = None

    def _cluster(self, affinity, inactive, n_clusters, seed, spectrum=True, edge=None):
        """Cluster the active channels of a full C x C affinity (K clamped to the active count;
        ``edge``: the noise edge of "auto", None for the eigengap)."""
        active = ~inactive
        sub = affinity if active.all() else affinity[np.ix_(active, active)]
        k = n_clusters if n_clusters == "auto" else min(n_clusters, sub.shape[0])
        return cluster_affinity(sub, self.method, k, self.max_clusters, seed, spectrum=spectrum,
                                edge=edge)

    def _fit_spatial(self, stats, samples=None) -> None:
        if not stats.spatial_:
            self.spatial_profiles_ = None
            self.footprints_ = None
            self.kernel_set_ = (1,)
            self.kernel_sizes_ = np.ones(self.n_clusters_, dtype=int)
            return
        if self.method == "arora":  # overlapping sets: no partition for the footprint's cluster maps
            self.spatial_profiles_ = self._neighbourhood_profiles(stats, samples)
            self.footprints_ = None
            self.kernel_set_ = kernel_set(self._radius(samples))
            self.kernel_sizes_ = kernel_sizes_from_profiles(self.spatial_profiles_, ARORA_EXTENT_LEVEL)
            return
        if samples is None:  # a ChannelStats: its rings, cross pairs, maps of its mean size
            R = stats.max_radius
            side = int(round(np.sqrt(stats.n_samples_ / max(stats.n_images_, 1))))
            profiles = cluster_spatial_profiles(stats.spatial_correlation(), self.labels_,
                                                self.n_clusters_)
            fits = fit_channel_rings(stats.spatial_correlation(), self.labels_, self.n_clusters_,
                                     (side, side), kernel_set(R), self.mass_fraction)
        else:
            # second pass over the K cluster maps: rings up to R for the profiles, offsets up
            # to 2R + 1 for the footprint
            R = self._radius(samples)
            maps = ClusterMapStats(self.labels_, stats.mean_, stats.std_,
                                   max_radius=min(2 * R + 1, max(samples.shape[2:]) - 1))
            maps.partial_fit(samples)
            profiles = maps.profiles_[:, :R + 1] if self.spatial_method == "cluster_maps" else \
                cluster_spatial_profiles(stats.spatial_correlation(), self.labels_, self.n_clusters_)
            fits = fit_cluster_maps(maps, kernel_set(R), self.mass_fraction)
        self.spatial_profiles_ = profiles
        self.footprints_ = fits
        self.kernel_set_ = kernel_set(R)
        self.kernel_sizes_ = np.array([f.kernel_size for f in fits], dtype=int)

    def _neighbourhood_profiles(self, stats, samples):
        """Profiles of overlapping neighbourhoods from the C x C rings (a channel may count in many)."""
        rings = stats if stats.max_radius >= self._radius(samples) else ChannelStats(
            max_radius=self._radius(samples), threshold=stats.thresholds_).partial_fit(samples)
        corr = rings.spatial_correlation()
        profiles = [cluster_spatial_profiles(corr, np.where(np.isin(np.arange(stats.n_channels_), m), 0, -1), 1)[0]
                    for m in self.neighbourhoods_]
        return np.asarray(profiles)

    def _fit_significance(self, samples, stats, rng) -> None:
        self.significance_ = None
        self.stability_ = None
        self.cluster_stability_ = None
        if samples is None:
            return
        auto = self.n_clusters == "auto" and self.k_edge_ is not None
        if self.n_permutations > 0 and samples.shape[0] >= 2:
            observed = modularity(self.affinity_, self.labels_)
            tiebreak = _tiebreak(self.eigenvalues_) if auto else None
            self.significance_ = permutation_test(
                samples, self._pipeline(stats.thresholds_, auto), self.n_permutations, rng,
                observed=observed, observed_tiebreak=tiebreak,
            )
        if self.n_resamples > 0 and self.n_clusters_ > 1:
            labelings = half_labelings(samples, self._pipeline(stats.thresholds_, False), self.n_resamples, rng)
            self.stability_ = split_agreement(labelings)
            if self.stability_ is not None and not self.overlapping_:
                self.cluster_stability_ = cluster_stability(self.labels_, labelings)

    def _pipeline(self, thresholds, auto: bool):
        """Samples (M x C) -> (affinity, labels[, tie-break]): the fit's pipeline for the null
        and the halves.

        Same activity thresholds, affinity and method as the fit.  ``auto``: K is chosen on
        every copy by the fit's rule and noise edge (the null includes the choice of K), and
        the tie-break among copies of equal modularity is minus the second Laplacian
        eigenvalue; otherwise K is fixed to the K found (for "communities": capped at it), as
        for the stability halves, which compare labelings at the fit's K.  The statistics are
        computed in float32 (``sample_affinity``: correlations within 1e-4 of float64,
        co-firing counts exact).
        """

        def run_arora(Z):
            layer = arora_step(binarise(Z, thresholds), self.cofiring_alpha)
            affinity = layer.graph.astype(np.float64)
            return affinity, primary_labels(layer.neighbourhoods, layer.support, Z.shape[1])

        if self.method == "arora":
            return run_arora

        def run(Z):
            affinity, inactive = sample_affinity(Z, self.affinity, thresholds,
                                                 graph_threshold=self.graph_threshold, overwrite=True)
            if inactive.all():
                return affinity, np.full(inactive.shape[0], -1), -np.inf
            result = self._cluster(affinity, inactive, "auto" if auto else self.n_clusters_,
                                   self._seed, spectrum=False, edge=self.shuffle_edge_ if auto else None)
            labels = expand_labels(result.labels, inactive)
            return (affinity, labels, _tiebreak(result.eigenvalues)) if auto else (affinity, labels)

        return run

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Mean of each cluster's channels: N x K (N x C input) or N x K x H x W (maps)."""
        check_is_fitted(self)
        X = self._check_transform_input(X)
        pool = np.zeros((self.n_features_in_, self.n_clusters_), dtype=X.dtype)
        for k, members in enumerate(self.neighbourhoods_):
            pool[members, k] = 1.0
        pool /= np.maximum(pool.sum(axis=0), 1.0)
        if X.ndim == 2:
            return X @ pool  # N x K
        return np.einsum("nchw,ck->nkhw", X, pool)  # N x K x H x W

    @property
    def _n_features_out(self):
        return self.n_clusters_

    # ----------------------------------------------------------- validation
    def _validate_params(self) -> None:
        check_affinity_kind(self.affinity)
        check_method(self.method)
        check_mass_fraction(self.mass_fraction)
        check_graph_threshold(self.graph_threshold)
        check_alpha(self.cofiring_alpha, "cofiring_alpha")
        if self.spatial_method not in SPATIAL_METHODS:
            raise SparsenetError(
                f"spatial_method must be one of {', '.join(repr(m) for m in SPATIAL_METHODS)}; "
                f"got {self.spatial_method!r}"
            )
        if not (self.n_clusters == "auto" or _is_int(self.n_clusters, minimum=1)):
            raise SparsenetError(
                f"n_clusters must be an int >= 1 or 'auto'; got {self.n_clusters!r}"
            )
        if not (self.max_clusters == "auto" or _is_int(self.max_clusters, minimum=1)):
            raise SparsenetError(
                f"max_clusters must be an int >= 1; got {self.max_clusters!r}; or 'auto' "
                f"(half the active channels)"
            )
        for name, minimum in (("max_radius", 0),
                              ("n_permutations", 0), ("n_resamples", 0)):
            if not _is_int(getattr(self, name), minimum=minimum):
                raise SparsenetError(
                    f"{name} must be an int >= {minimum}; got {getattr(self, name)!r}"
                )

    def _check_fit_input(self, X) -> np.ndarray:
        X = _to_numpy(X)
        ndim = _ndim(X)
        if ndim == 2:
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite=False,
                              ensure_min_samples=0, ensure_min_features=0)
        elif ndim == 4:
            X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=False,
                            allow_nd=True, ensure_min_samples=0, ensure_min_features=0)
        else:
            raise SparsenetError(
                f"X has {ndim} dimension(s) (shape {_shape(X)}); accepted: N x C (flat "
                f"features) or N x C x H x W (maps), numpy or torch, or a fitted ChannelStats. "
                f"Reshape your data (one sample of C channels: X.reshape(1, -1))"
            )
        _check_counts(X.shape[0] * int(np.prod(X.shape[2:])), X.shape[1], X.shape)
        return X

    def _check_stats(self, stats: ChannelStats) -> ChannelStats:
        if not hasattr(stats, "n_channels_"):
            raise SparsenetError("the ChannelStats passed to fit has seen no data; "
                                 "call its partial_fit first")
        _check_counts(stats.n_samples_, stats.n_channels_, f"ChannelStats of {stats.n_channels_} channels")
        return stats

    def _check_given_stats(self, stats, samples: np.ndarray, two_pass: bool) -> ChannelStats:
        """``stats`` as the fit's own would be: of these samples, with this threshold and the rings the
        fit reads (none with the two-pass cluster maps, which read the samples)."""
        if not isinstance(stats, ChannelStats):
            raise SparsenetError(f"stats is a {type(stats).__name__}; accepted: the ChannelStats of X")
        self._check_stats(stats)
        problems = []
        if stats.n_channels_ != samples.shape[1] or stats.n_images_ != samples.shape[0] \
                or bool(stats.spatial_) != (samples.ndim == 4):
            problems.append(f"they hold {stats.n_images_} images of {stats.n_channels_} channels, X has shape "
                            f"{samples.shape}")
        same = (np.array_equal(np.asarray(stats.threshold), np.asarray(self.threshold))
                if not isinstance(stats.threshold, str) or not isinstance(self.threshold, str)
                else stats.threshold == self.threshold)
        if not same:
            problems.append(f"their threshold is {stats.threshold!r}, the analyser's {self.threshold!r}")
        if not two_pass and stats.max_radius != self._radius(samples):
            problems.append(f"their rings reach {stats.max_radius}, the fit reads {self._radius(samples)}")
        if problems:
            raise SparsenetError("the ChannelStats given with X are not X's: " + "; ".join(problems)
                                 + "; accepted: the statistics of exactly X, or none (fit computes them)")
        return stats

    def _check_transform_input(self, X) -> np.ndarray:
        X = _to_numpy(X)
        ndim = _ndim(X)
        if ndim == 4:
            X = check_array(X, dtype=[np.float64, np.float32], allow_nd=True)
            if X.shape[1] != self.n_features_in_:
                raise SparsenetError(
                    f"X has {X.shape[1]} channels (shape {X.shape}) but the analyser was fitted "
                    f"on {self.n_features_in_}; accepted: the same channels"
                )
            return X
        if ndim != 2 and not sp.issparse(X):
            raise SparsenetError(
                f"X has {ndim} dimension(s) (shape {_shape(X)}); accepted: N x C or "
                f"N x C x H x W. Reshape your data (one sample of C channels: X.reshape(1, -1))"
            )
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _radius(self, X: np.ndarray) -> int:
        """max_radius, limited to what the maps can hold (0 for flat input)."""
        return min(self.max_radius, max(X.shape[2:]) - 1) if X.ndim == 4 else 0

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _check_counts(n_samples: int, n_channels: int, shape) -> None:
    if n_samples < 2:
        raise SparsenetError(
            f"found {n_samples} sample(s) (shape={shape}) while a minimum of 2 is required "
            f"to measure co-firing (n_samples = {n_samples})"
        )
    if n_channels < 2:
        raise SparsenetError(
            f"found {n_channels} feature(s) (shape={shape}) while a minimum of 2 is required: "
            f"need at least 2 channels to cluster (n_features = {n_channels})"
        )


def _tiebreak(eigenvalues) -> float:
    """Minus the second Laplacian eigenvalue: larger is closer to a second cluster."""
    if eigenvalues is None or len(eigenvalues) < 2:
        return -np.inf
    return -float(eigenvalues[1])


def _is_int(value, *, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _to_numpy(X):
    """torch tensors -> numpy (detached, on the CPU); anything else unchanged."""
    if type(X).__module__.startswith("torch"):
        return X.detach().cpu().numpy()
    return X


def _ndim(X) -> int:
    if sp.issparse(X):
        return 2
    ndim = getattr(X, "ndim", None)
    return int(ndim) if ndim is not None else np.asarray(X).ndim


def _shape(X) -> tuple:
    shape = getattr(X, "shape", None)
    return tuple(shape) if shape is not None else np.asarray(X).shape
