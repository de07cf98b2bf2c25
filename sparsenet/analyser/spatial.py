"""Spatial extent of a cluster of channels, and the kernel size that covers it.

For cluster k with channel set S, the spatial profile at Chebyshev radius r = 0..R is

    profile_k(r) = sum_{i,j in S} rho_r(i, j) / sum_{i,j in S} rho_0(i, j),

where ``rho_r(i, j)`` is :meth:`ChannelStats.spatial_correlation` (the correlation of channel i
at a position p with channel j at p + d, averaged over the offsets d in the ring
``max(|dx|, |dy|) = r``).  Because correlations are covariances of standardised channels, the
numerator is the ring-averaged autocovariance of the cluster's summed standardised map
``sum_{i in S} (x_i - mean_i) / std_i`` and the denominator its variance: profile_k is the
autocorrelation function of that summed map, 1 at r = 0.

A cluster whose units respond to a k x k patch has a summed map that stays correlated up to
radius (k - 1) / 2 and falls off beyond.  The kernel size is therefore ``2 r* + 1`` where r*
is the extent: the last radius of the run r = 0, 1, ... whose profile stays above
``threshold`` (the profile is read outward from the centre and the extent ends at the first
radius where it drops to ``threshold`` or below; a later rebound, e.g. from a periodic
texture, does not extend it).  Radii are limited to the R measured, so kernels to 2R + 1
(1, 3, 5 for the default R = 2).
"""

from __future__ import annotations

import numpy as np

from sparsenet.errors import SparsenetError


def check_extent_threshold(value) -> float:
    """The extent threshold is a correlation level strictly between 0 and 1."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or not 0.0 < value < 1.0:
        raise SparsenetError(
            f"extent_threshold must be a number strictly between 0 and 1 (a correlation "
            f"level of the cluster's spatial profile); got {value!r}"
        )
    return float(value)


def cluster_spatial_profiles(spatial_corr: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """K x (R+1) profiles from the (R+1, C, C) spatial correlation and channel labels.

    Channels labelled -1 (inactive) are ignored.  A cluster with no variance left (its
    channels cancel out exactly) gets the profile of a point: 1 at r = 0, then 0.
    """
    spatial_corr = np.nan_to_num(np.asarray(spatial_corr, dtype=np.float64))
    profiles = np.zeros((n_clusters, spatial_corr.shape[0]))
    for k in range(n_clusters):
        members = np.flatnonzero(labels == k)
        sums = spatial_corr[:, members][:, :, members].sum(axis=(1, 2))
        profiles[k] = sums / sums[0] if sums[0] > 1e-12 else _point_profile(len(sums))
    return profiles


def kernel_size_from_profile(profile, threshold: float) -> int:
    """Kernel size ``2 r* + 1`` where r* is the last radius of the initial run above threshold.

    ``profile[0]`` is the centre (1 for a normalised profile) and always counts, so the
    smallest answer is 1.  The largest is ``2 * (len(profile) - 1) + 1``.

    >>> kernel_size_from_profile([1.0, 0.6, 0.05], 0.15)
    3
    """
    threshold = check_extent_threshold(threshold)
    profile = np.nan_to_num(np.asarray(profile, dtype=np.float64).ravel())
    if profile.size == 0:
        raise SparsenetError("profile must hold at least the r = 0 value; got an empty profile")
    below = np.flatnonzero(profile[1:] <= threshold)
    extent = int(below[0]) if below.size else profile.size - 1
    return 2 * extent + 1


def kernel_sizes_from_profiles(profiles: np.ndarray, threshold: float) -> np.ndarray:
    """Kernel size for each row of a K x (R+1) profile matrix."""
    return np.array([kernel_size_from_profile(p, threshold) for p in profiles], dtype=int)


def _point_profile(length: int) -> np.ndarray:
    profile = np.zeros(length)
    profile[0] = 1.0
    return profile
