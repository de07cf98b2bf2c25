"""Which rule should choose K? The eigengap against its alternatives, on generator families.

Every family below is a generator of this script's own (not the test suite's), with known
labels.  Each rule sees the default analyser's affinity (``pearson_pos``, threshold 0, inactive
channels dropped) and, where it needs them, the samples:

``eigengap<=10``  the old default: argmax of l_{k+1} - l_k over k <= 10.
``eigengap``      the same, searched up to half the channels.
``modularity``    the K in 1..min(C/2, 40) whose spectral partition has the largest modularity.
``stability``     the K in 2..min(C/2, 40) whose spectral partitions of two random halves of
                  the images agree best (mean adjusted Rand index over 3 splits).
``edge``          the analyser's rule: the number of Laplacian eigenvalues below the lowest
                  l_2 of 19 channel-shuffled copies (``sparsenet.analyser.clustering``).

For each family and rule the table gives the mean |K - K_true|, how often K is within +-2 of
K_true and the mean ARI against the planted labels; on structureless families (K_true = 1) how
often K > 1.  Usage (writes a Markdown table; docs/analyser.md shows its output):

    python analysis/k_selection.py --seeds 5 --out docs/k_selection.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

MAX_SEARCH = 40


# ------------------------------------------------------------------------------ generators

def flat_groups(rng, n_groups, size, rho, n_samples):
    """Gaussian channels: x = sqrt(rho) z_group + sqrt(1 - rho) e."""
    labels = np.repeat(np.arange(n_groups), size)
    z = rng.standard_normal((n_samples, n_groups))
    X = np.sqrt(rho) * z[:, labels] + np.sqrt(1 - rho) * rng.standard_normal((n_samples, labels.size))
    return X, labels


def unequal_groups(rng, n_samples=2000):
    """Groups of 30, 16, 8, 5, 4, 3 channels, within-group correlation 0.3, after a ReLU."""
    sizes = (30, 16, 8, 5, 4, 3)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    z = rng.standard_normal((n_samples, len(sizes)))
    X = np.sqrt(0.3) * z[:, labels] + np.sqrt(0.7) * rng.standard_normal((n_samples, labels.size))
    return np.maximum(X, 0.0), labels


def sparse_causes(rng, n_groups=12, size=8, rate=0.1, n_samples=3000):
    """Heavy-tailed sparse channels: a group's binary cause (rate 0.1) makes each member fire
    with probability 0.7, any channel fires spontaneously with probability 0.05; a firing
    channel takes a log-normal value (sigma 1), otherwise 0."""
    labels = np.repeat(np.arange(n_groups), size)
    cause = rng.random((n_samples, n_groups)) < rate
    fire = (cause[:, labels] & (rng.random((n_samples, labels.size)) < 0.7)) \
        | (rng.random((n_samples, labels.size)) < 0.05)
    return fire * rng.lognormal(0.0, 1.0, fire.shape), labels


def planted_maps(rng, noise=1.0, n_samples=64):
    """sparsenet's own planted maps (5 groups, extents 1-5 over 12 x 12), more noise."""
    from sparsenet.data.synthetic import planted_groups

    d = planted_groups(n_samples=n_samples, group_sizes=(12, 10, 8, 8, 6), kernel_sizes=(1, 3, 5, 1, 3),
                       noise=noise, shuffle=True, random_state=int(rng.integers(1 << 30)))
    return d.X, d.labels


def smooth_noise(rng, channels=48, n_images=64, size=12, width=2):
    """Structureless maps: each channel an independent white map blurred by a box of 2w+1."""
    from scipy.ndimage import uniform_filter

    X = rng.standard_normal((n_images, channels, size, size))
    X = uniform_filter(X, size=(1, 1, 2 * width + 1, 2 * width + 1), mode="wrap")
    return np.maximum(X, 0.0), np.zeros(channels, dtype=int)


def heavy_noise(rng, channels=64, n_samples=3000):
    """Structureless heavy-tailed sparse channels: fire w.p. 0.1, log-normal (sigma 1.5) values."""
    X = (rng.random((n_samples, channels)) < 0.1) * rng.lognormal(0.0, 1.5, (n_samples, channels))
    return X, np.zeros(channels, dtype=int)


FAMILIES = {
    "24 x 6 flat, rho 0.5, 3000": lambda r: flat_groups(r, 24, 6, 0.5, 3000),
    "40 x 4 flat, rho 0.3, 2000": lambda r: flat_groups(r, 40, 4, 0.3, 2000),
    "6 x 10 flat, rho 0.1, 3000 (weak)": lambda r: flat_groups(r, 6, 10, 0.1, 3000),
    "8 x 8 flat, rho 0.05, 5000 (weak)": lambda r: flat_groups(r, 8, 8, 0.05, 5000),
    "unequal 30..3, rho 0.3, ReLU": unequal_groups,
    "12 x 8 sparse causes, log-normal": sparse_causes,
    "planted maps, noise 1.0": lambda r: planted_maps(r, 1.0),
    "planted maps, noise 3.0 (weak)": lambda r: planted_maps(r, 3.0),
    "independent Gaussian (none)": lambda r: (r.standard_normal((3000, 64)), np.zeros(64, dtype=int)),
    "smooth maps (none)": smooth_noise,
    "heavy-tailed sparse (none)": heavy_noise,
}


# ------------------------------------------------------------------------------ rules

def _halves_affinity(X, rng, thresholds):
    from sparsenet.analyser.affinity import sample_affinity
    from sparsenet.analyser.significance import sample_rows

    X3 = X.reshape(X.shape[0], X.shape[1], -1)
    order = rng.permutation(X3.shape[0])
    half = X3.shape[0] // 2
    out = []
    for images in (np.sort(order[:half]), np.sort(order[half:2 * half])):
        affinity, inactive = sample_affinity(sample_rows(X3, (images, None), dtype=np.float32),
                                             "pearson_pos", thresholds)
        out.append((affinity, inactive))
    return out


def rules(X, est, rng):
    """K (and labels over the active channels) of each rule."""
    from sparsenet.analyser.clustering import (cluster_qr, eigengap_n_clusters, laplacian_eigenpairs,
                                               laplacian_spectrum)
    from sparsenet.analyser.significance import modularity

    active = ~est.inactive_
    A = est.affinity_[np.ix_(active, active)]
    n = A.shape[0]
    bound = min(n // 2, MAX_SEARCH)
    spectrum = laplacian_spectrum(A)
    _, emb = laplacian_eigenpairs(A, bound, 0)

    def labels_at(k, embedding=emb):
        return np.zeros(n, int) if k <= 1 else cluster_qr(embedding[:, :k])

    out = {}
    for name, k in (("eigengap<=10", eigengap_n_clusters(spectrum, 10)),
                    ("eigengap", eigengap_n_clusters(spectrum, n // 2))):
        out[name] = (k, labels_at(min(k, bound)) if k <= bound else None)
    qs = [modularity(A, labels_at(k)) for k in range(1, bound + 1)]
    k = int(np.argmax(qs)) + 1
    out["modularity"] = (k, labels_at(k))
    scores = np.zeros(bound + 1)
    for _ in range(3):
        (a1, i1), (a2, i2) = _halves_affinity(X, rng, est.stats_.thresholds_)
        both = active & ~i1 & ~i2
        e1 = laplacian_eigenpairs(a1[np.ix_(both, both)], bound, 0)[1]
        e2 = laplacian_eigenpairs(a2[np.ix_(both, both)], bound, 0)[1]
        for k in range(2, bound + 1):
            scores[k] += adjusted_rand_score(cluster_qr(e1[:, :k]), cluster_qr(e2[:, :k]))
    k = int(np.argmax(scores[2:])) + 2
    out["stability"] = (k, labels_at(k))
    out["edge"] = (int(est.n_clusters_), est.labels_[active])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default=None, help="write the Markdown table here too")
    args = p.parse_args()

    from sparsenet.analyser import CorrelationAnalyzer

    names = ("eigengap<=10", "eigengap", "modularity", "stability", "edge")
    lines = ["| family | K true | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    t0 = time.time()
    for family, make in FAMILIES.items():
        res = {name: [] for name in names}
        k_true = None
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            X, truth = make(rng)
            est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(X)
            truth_active = truth[~est.inactive_]
            k_true = len(np.unique(truth_active)) if truth_active.max() > 0 else 1
            for name, (k, labels) in rules(X, est, rng).items():
                ari = adjusted_rand_score(truth_active, labels) if labels is not None and k_true > 1 else np.nan
                res[name].append((k, ari))
        cells = []
        for name in names:
            ks = np.array([k for k, _ in res[name]])
            aris = np.array([a for _, a in res[name]], dtype=float)
            if k_true == 1:
                cells.append(f"K>1 in {np.mean(ks > 1):.0%} (mean K {ks.mean():.1f})")
            else:
                ari = f", ARI {np.nanmean(aris):.2f}" if np.isfinite(aris).any() else ""
                cells.append(f"K {ks.mean():.1f}, +-2: {np.mean(np.abs(ks - k_true) <= 2):.0%}{ari}")
        lines.append(f"| {family} | {k_true} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + f"\n\n({args.seeds} seeds per family, {time.time() - t0:.0f} s)\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
