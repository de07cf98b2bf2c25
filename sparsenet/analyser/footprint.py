"""The kernel size of a cluster: the footprint of the filter behind its shared spatial pattern.

Definition (``docs/analyser.md``).  A cluster's channels share a latent field ``s = h * z``: a
spatially white field z filtered by a spatial filter h.  The **footprint** of h for a mass
fraction f is the smallest odd k of the kernel set whose centred ``k x k`` window holds at
least f of the filter's mass ``sum |h|``; "centred" is the placement of the window that holds
the most mass (for a symmetric filter: on its centre; for an even-sized one, either of the
equivalent central placements).  A filter no window of the set holds gets the largest kernel.

Estimator.  h itself is not observed; what the channels show is the autocovariance of s,
``sigma^2 (h * h~)(d)`` at offset d, seen through each channel's gain, noise and nonlinearity.
Cross-channel pairs (i != j) carry it without the channels' own noise, so the analyser measures
each cluster's cross-pair covariance ``c(d)`` at every offset up to radius 2R + 1
(``ClusterMapStats.cross_covariance_``, per-position means removed) and compares it with the
exact autocorrelations of candidate filters (``candidate_filters``: boxes of every width, and
generalised-Gaussian falloffs ``exp(-(rho/s)^beta)`` of several shapes and scales).  Offsets
equal up to the 8 symmetries of the square are averaged together (``offset_classes``: 21
classes up to radius 5), weighted by their pair counts, for the measurement and the candidates
alike.  The model of a candidate with normalised autocorrelation
``a(d) = (h * h~)(d) / (h * h~)(0)`` is

    c(d) = B1 a(d) + B2 a(d)^2 + b,      B1 >= 0,  0 <= B2 <= rho B1,  b of either sign:

``B1`` carries gains and group size (any scale is allowed, so the fit is invariant to both);
``B2`` the curvature a nonlinearity adds (for Gaussian inputs and the same nonlinearity on
both channels, Mehler's expansion of the covariance is ``sum_m c_m rho_ij(d)^m`` with
``c_m >= 0``; the second term relative to the first is ``rho_ij(0) c_2 / c_1``, at most
``rho`` -- the cluster's mean cross-pair correlation -- when ``c_2 <= c_1``, as for a ReLU
at threshold 0, ``c_2 / c_1 = 1 / pi``); and ``b`` a constant over offsets that per-image
offsets shared by a cluster add (``b > 0``) or a per-image normalisation of the total activity
takes away (``b < 0``).  With few offset groups (small maps, 3 rings of a ``ChannelStats``)
``b`` and then ``B2`` are left out, so the fit always has more measurements than parameters.
The fitted footprint is the footprint of the candidate with the smallest RMS misfit; the
margin is how much larger the misfit of the best candidate of another footprint is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sparsenet.errors import SparsenetError


def check_mass_fraction(value) -> float:
    """The mass fraction is a number strictly between 0 and 1."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or not 0.0 < value < 1.0:
        raise SparsenetError(
            f"mass_fraction must be a number strictly between 0 and 1 (the share of the "
            f"generating filter's mass a kernel's window must hold); got {value!r}")
    return float(value)


def check_kernel_set(sizes) -> tuple[int, ...]:
    """Kernel sizes: distinct positive odd integers, returned in ascending order."""
    try:
        ks = tuple(sorted(int(k) for k in sizes))
    except (TypeError, ValueError):
        raise SparsenetError(f"kernel sizes {sizes!r}; accepted: positive odd integers") from None
    if not ks or any(k < 1 or k % 2 == 0 for k in ks) or len(set(ks)) != len(ks):
        raise SparsenetError(f"kernel sizes {sizes!r}; accepted: distinct positive odd integers")
    return ks


# --------------------------------------------------------------------------- the definition
def window_mass_fractions(h, sizes) -> np.ndarray:
    """For each k in ``sizes``: the largest share of ``sum |h|`` that one k x k window holds."""
    h = np.abs(np.asarray(h, dtype=np.float64))
    if h.ndim != 2 or h.size == 0 or not np.isfinite(h).all() or h.sum() <= 0:
        raise SparsenetError(f"a filter must be a finite 2-D array with some mass; got shape "
                             f"{np.shape(h)}")
    total = h.sum()
    c = np.zeros((h.shape[0] + 1, h.shape[1] + 1))
    c[1:, 1:] = h.cumsum(0).cumsum(1)
    out = []
    for k in sizes:
        if k >= max(h.shape):
            out.append(1.0)
            continue
        a, b = min(k, h.shape[0]), min(k, h.shape[1])
        win = c[a:, b:] - c[:-a, b:] - c[a:, :-b] + c[:-a, :-b]
        out.append(min(1.0, float(win.max()) / total))
    return np.array(out)


def footprint_of_filter(h, kernel_sizes=(1, 3, 5), mass_fraction: float = 0.8) -> int:
    """The smallest k of ``kernel_sizes`` whose best k x k window holds ``mass_fraction`` of the
    mass of h; the largest kernel when none does."""
    ks = check_kernel_set(kernel_sizes)
    f = check_mass_fraction(mass_fraction)
    fractions = window_mass_fractions(h, ks)
    hit = np.flatnonzero(fractions >= f - 1e-12)
    return ks[int(hit[0])] if hit.size else ks[-1]


# ------------------------------------------------------------------------------- candidates
def box(width: int) -> np.ndarray:
    """A ``width x width`` box (even widths allowed)."""
    return np.ones((int(width), int(width)))


def falloff(scale: float, shape: float, *, radius: int = 9) -> np.ndarray:
    """``exp(-(rho / scale)^shape)`` sampled on a grid, rho the Euclidean distance to the centre
    pixel; values below 1e-6 of the peak cut."""
    n = 2 * radius + 1
    g = np.arange(n) - (n - 1) / 2
    rho = np.hypot(*np.meshgrid(g, g, indexing="ij"))
    h = np.exp(-((rho / scale) ** shape - (rho.min() / scale) ** shape))  # peak 1
    h[h < 1e-6 * h.max()] = 0.0
    keep_r = np.flatnonzero(h.any(axis=1))
    return h[keep_r[0]:keep_r[-1] + 1, keep_r[0]:keep_r[-1] + 1]


SHAPES = (0.5, 1.0, 1.5, 2.0, 3.0, 6.0)  # generalised-Gaussian exponents of the candidates
SCALES = tuple(np.round(np.geomspace(0.15, 6.0, 40), 4))


def candidate_filters(max_width: int = 9) -> list[tuple[str, np.ndarray]]:
    """The candidate filters the profile is compared with: boxes of every width 1..max_width
    (even widths centred between pixels) and generalised-Gaussian falloffs (``SHAPES`` x
    ``SCALES``) peaked on a pixel.  A family chosen to span compact to heavy-tailed shapes, not
    any test generator.  Smooth falloffs centred between pixels are left out: their
    autocorrelations are those of the pixel-centred ones to within sampling noise, while their
    window mass fractions are lower (a Gaussian of sigma 0.9: 0.74 in 3x3 instead of 0.85), so
    the data cannot choose between the two and the kernel's convention (an odd kernel centred on
    a pixel) does."""
    out = [(f"box {w}", box(w)) for w in range(1, max_width + 1)]
    for beta in SHAPES:
        for s in SCALES:
            out.append((f"falloff shape {beta:g} scale {s:g}", falloff(s, beta)))
    return out


# --------------------------------------------------------------------------- exact profiles
def autocorrelation(h) -> np.ndarray:
    """``(h * h~)(d) / (h * h~)(0)`` as a (2a-1) x (2b-1) array centred at offset 0."""
    from scipy.signal import fftconvolve  # here: settings imports this module at CLI parse time

    h = np.asarray(h, dtype=np.float64)
    a = fftconvolve(h, h[::-1, ::-1])
    a[np.abs(a) < 1e-12 * np.abs(a).max()] = 0.0
    return a / a[h.shape[0] - 1, h.shape[1] - 1]


def at_offsets(a: np.ndarray, offsets) -> np.ndarray:
    """Values of a centred autocorrelation array at offsets (dy, dx); 0 outside it."""
    cy, cx = (a.shape[0] - 1) // 2, (a.shape[1] - 1) // 2
    offsets = np.asarray(offsets).reshape(-1, 2)
    dy, dx = offsets[:, 0] + cy, offsets[:, 1] + cx
    inside = (dy >= 0) & (dy < a.shape[0]) & (dx >= 0) & (dx < a.shape[1])
    vals = np.zeros(len(offsets))
    vals[inside] = a[dy[inside], dx[inside]]
    return vals


def offset_classes(max_radius: int) -> list[tuple[int, int]]:
    """The offsets up to Chebyshev radius R up to the 8 symmetries of the square, as
    ``(max(|dy|, |dx|), min(|dy|, |dx|))``, ring by ring."""
    return [(r, m) for r in range(max_radius + 1) for m in range(r + 1)]


def averaging_matrix(offsets, weights, max_radius: int, by: str = "class") -> np.ndarray:
    """(M, G): column g averages a per-offset quantity over group g with the pair counts as
    weights; groups are ``offset_classes(R)`` (``by="class"``) or the rings 0..R
    (``by="ring"``).  A group no pair reaches gets a zero column."""
    offsets = np.abs(np.asarray(offsets).reshape(-1, 2))
    weights = np.asarray(weights, dtype=np.float64)
    big, small = offsets.max(axis=1), offsets.min(axis=1)
    groups = offset_classes(max_radius) if by == "class" else [(r, None) for r in range(max_radius + 1)]
    G = np.zeros((len(offsets), len(groups)))
    for g, (r, m) in enumerate(groups):
        sel = (big == r) & ((small == m) if m is not None else True)
        w = np.where(sel, weights, 0.0)
        if w.sum() > 0:
            G[:, g] = w / w.sum()
    return G


@lru_cache(maxsize=4)
def _candidate_table(max_width: int = 9):
    """Names, window mass fractions for k = 1, 3, ..., 15 and autocorrelations of the candidates."""
    cands = candidate_filters(max_width)
    ks = tuple(range(1, 16, 2))
    return ([n for n, _ in cands], np.array([window_mass_fractions(h, ks) for _, h in cands]),
            [autocorrelation(h) for _, h in cands])


# ----------------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class FootprintFit:
    """The footprint fitted to one cluster's cross-pair profile."""

    kernel_size: int                 # footprint of the best candidate
    candidate: str                   # its name
    mass_fractions: tuple[float, ...]  # its window mass fractions, one per kernel size
    residual: float                  # RMS misfit of the best candidate (profile units, c(0) = 1)
    runner_up: int                   # footprint of the best candidate of another footprint
    runner_up_residual: float        # its RMS misfit (inf when every candidate has one footprint)
    profile: tuple[float, ...] = ()  # the measured cross-pair ring profile r = 0..R, c(0) = 1
    model: tuple[float, ...] = ()    # the best candidate's fitted ring profile

    def to_dict(self, kernel_sizes) -> dict:
        """JSON-ready: the fields, ``margin``, and the mass fractions keyed by kernel size."""
        return {"profile": list(self.profile), "model": list(self.model),
                "candidate": self.candidate,
                "mass_fractions": {str(k): v for k, v in zip(kernel_sizes, self.mass_fractions)},
                "residual": self.residual, "runner_up": self.runner_up,
                "runner_up_residual": self.runner_up_residual, "margin": self.margin}

    @property
    def margin(self) -> float:
        """How much worse the best candidate of another footprint fits:
        ``runner_up_residual - residual`` (0: a tie; compare it with ``residual``)."""
        return float(self.runner_up_residual - self.residual)


class FootprintBank:
    """The candidate filters with their exact profiles for one measurement geometry.

    ``offsets`` (M x 2) and ``weights`` (M,) are the offsets the covariance was measured at and
    the pair counts behind each (``ClusterMapStats.offsets_`` and ``offset_pairs_``, or every
    half-ring offset with the pairs an H x W map has); ``max_radius`` the last ring used;
    ``by`` whether profiles are compared per offset class (``"class"``: offsets equal up to
    the square's symmetries) or per ring (``"ring"``, for statistics kept as rings only).
    """

    def __init__(self, offsets, weights, max_radius: int, kernel_sizes=(1, 3, 5),
                 mass_fraction: float = 0.8, by: str = "class"):
        self.kernel_sizes = check_kernel_set(kernel_sizes)
        if self.kernel_sizes[-1] > 15:
            raise SparsenetError(f"kernel sizes {kernel_sizes!r}; accepted: odd sizes up to 15")
        self.mass_fraction = check_mass_fraction(mass_fraction)
        self.max_radius = int(max_radius)
        self.by = by
        names, fractions, autocorrs = _candidate_table()
        self.names = names
        self.fractions = fractions[:, [k // 2 for k in self.kernel_sizes]]
        hit = self.fractions >= self.mass_fraction - 1e-12
        self.footprints = np.where(hit.any(axis=1),
                                   np.array(self.kernel_sizes)[np.argmax(hit, axis=1)],
                                   self.kernel_sizes[-1])
        self.G = averaging_matrix(offsets, weights, self.max_radius, by=by)
        V = np.stack([at_offsets(a, offsets) for a in autocorrs])  # T x M
        self.templates = np.stack([V @ self.G, (V * V) @ self.G], axis=1)  # T x 2 x groups
        self.R = averaging_matrix(offsets, weights, self.max_radius, by="ring")
        self.ring_templates = np.stack([V @ self.R, (V * V) @ self.R], axis=1)  # T x 2 x rings

    def average(self, values) -> np.ndarray:
        """Per-offset values (... x M) -> the groups the fit compares."""
        return np.asarray(values, dtype=np.float64) @ self.G

    def fit(self, values, correlation: float = 1.0) -> FootprintFit:
        """Fit the candidates to per-offset cross-pair covariances (M values, any scale).

        ``correlation``: the cluster's mean cross-pair correlation at offset 0, which bounds the
        curvature term: ``B2 <= correlation * B1`` (module docstring).
        """
        from scipy.optimize import nnls

        values = np.nan_to_num(np.asarray(values, dtype=np.float64))
        c = values @ self.G
        rings = values @ self.R
        if c[0] <= 0:  # no shared signal: the profile of a point
            i = int(np.flatnonzero(self.footprints == self.kernel_sizes[0])[0])
            point = tuple(float(r == 0) for r in range(len(rings)))
            return FootprintFit(self.kernel_sizes[0], self.names[i], tuple(self.fractions[i]),
                                0.0, self.kernel_sizes[0], float("inf"), point, point)
        rings, c = rings / c[0], c / c[0]
        tau = float(np.clip(correlation, 1e-6, 1.0))
        ones = np.ones_like(c)
        # a fit needs more measurements than parameters: with few offset groups (small maps,
        # statistics kept as 3 rings) the pedestal, then the curvature, are left out
        use = [True, len(c) >= 4, len(c) >= 6, len(c) >= 6]
        res = np.empty(len(self.names))
        coefs = np.empty((len(self.names), 4))
        for t, (a1, a2) in enumerate(self.templates):
            # B1 = B2 / tau + e with e, B2 >= 0 keeps 0 <= B2 <= tau * B1
            # b = b+ - b-: the pedestal may have either sign
            A = np.column_stack([a1, a1 / tau + a2, ones, -ones]) * use
            coefs[t], _ = nnls(A, c)
            res[t] = np.sqrt(np.mean((A @ coefs[t] - c) ** 2))
        best = int(np.argmin(res))
        r1, r2 = self.ring_templates[best]
        one = np.ones_like(r1)
        model = (np.column_stack([r1, r1 / tau + r2, one, -one]) * use) @ coefs[best]
        k = int(self.footprints[best])
        other = np.flatnonzero(self.footprints != k)
        j = int(other[np.argmin(res[other])]) if other.size else best
        return FootprintFit(
            kernel_size=k, candidate=self.names[best],
            mass_fractions=tuple(float(v) for v in self.fractions[best]),
            residual=float(res[best]), runner_up=int(self.footprints[j]),
            runner_up_residual=float(res[j]) if other.size else float("inf"),
            profile=tuple(float(v) for v in rings), model=tuple(float(v) for v in model))


# ------------------------------------------------------------------------- cluster read-outs
def kernel_set(max_radius: int) -> tuple[int, ...]:
    """The kernels 1, 3, ..., 2R + 1 of an analyser measuring rings up to R."""
    return tuple(range(1, 2 * int(max_radius) + 2, 2))


def fit_cluster_maps(maps, kernel_sizes, mass_fraction: float) -> list[FootprintFit]:
    """One fit per cluster of a fitted ``ClusterMapStats`` (cross pairs, per-position means
    removed, compared per offset class).  A cluster of one channel has no cross pair: its own
    autocovariance stands in (its noise inflates offset 0, so it leans to small kernels)."""
    bank = FootprintBank(maps.offsets_, maps.offset_pairs_, maps.max_radius, kernel_sizes,
                         mass_fraction, by="class")
    cross, own, rho = maps.cross_covariance_, maps.own_covariance_, maps.cross_correlation_
    sizes = np.bincount(maps.labels[maps.labels >= 0], minlength=maps.n_clusters)
    return [bank.fit(cross[k], rho[k]) if sizes[k] > 1 else bank.fit(own[k], 1.0)
            for k in range(maps.n_clusters)]


def fit_channel_rings(spatial_corr, labels, n_clusters: int, map_shape, kernel_sizes,
                      mass_fraction: float) -> list[FootprintFit]:
    """One fit per cluster from ring-averaged C x C correlations ((R+1) x C x C, e.g.
    ``ChannelStats.spatial_correlation()``), cross pairs only, compared per ring.  The rings do
    not say how their offsets were weighted, so the candidates' rings are weighted with the
    pairs of maps of ``map_shape`` (H, W); per-position means cannot be removed here."""
    from sparsenet.stats.rings import ring_offsets  # not at import: sparsenet.stats loads torch

    corr = np.nan_to_num(np.asarray(spatial_corr, dtype=np.float64))
    R = corr.shape[0] - 1
    H, W = map_shape
    offsets = np.array([d for r in range(R + 1) for d in ring_offsets(r, half=True)])
    weights = np.clip(H - np.abs(offsets[:, 0]), 0, None) * np.clip(W - np.abs(offsets[:, 1]), 0, None)
    bank = FootprintBank(offsets, weights, R, kernel_sizes, mass_fraction, by="ring")
    ring_of = np.abs(offsets).max(axis=1)
    fits = []
    for k in range(n_clusters):
        idx = np.flatnonzero(np.asarray(labels) == k)
        block = corr[:, idx][:, :, idx]
        own = np.einsum("rii->r", block)
        cross = block.sum(axis=(1, 2)) - own
        n = len(idx)
        ring_values = cross if n > 1 else own
        values = ring_values[ring_of]  # the ring average at every offset of its ring
        fits.append(bank.fit(values, cross[0] / (n * (n - 1)) if n > 1 else 1.0))
    return fits

