"""Where the automatic K under-counts: families of this script's own, with the noise edge shown.

    python analysis/k_undercount.py > table.md
    python analysis/k_undercount.py --single     # K over 12 seeds on blocks that must stay one

Gaussian channels (3,000 samples, default analyser, no null) in four families: unequal group
sizes, one strong group beside weak ones, graded strengths, and *nested* blocks (sub-blocks that
share a common factor, plus one separate group), the shape of the mnist5k pool2 correlation
matrix (2 clusters where the matrix shows sub-blocks).  For each it prints K found against the
truth and the ARI under the previous rule (the edge of channel-shuffled copies, ``shuffle_edge_``)
and the current one (the higher of that edge and the degree-matched one, ``k_edge_``), both edges and the data's leading
Laplacian eigenvalues.  Further families of nested blocks (several parents, after a ReLU) and
single blocks that must stay one cluster check that the degree-matched edge does not over-split.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.metrics import adjusted_rand_score

from sparsenet.analyser import CorrelationAnalyzer


def groups(sizes, rhos, n, seed):
    """Group g: x = sqrt(rho_g) z_g + sqrt(1 - rho_g) noise; channel order shuffled."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.concatenate([np.full(s, g) for g, s in enumerate(sizes)]))
    z = rng.standard_normal((n, len(sizes)))
    r = np.asarray(rhos)[labels]
    return np.sqrt(r) * z[:, labels] + np.sqrt(1 - r) * rng.standard_normal((n, labels.size)), labels


def nested(n_sub, size, r_common, r_sub, n, seed, n_other=8):
    """n_sub sub-blocks of ``size`` sharing one common factor (r_common) each with its own
    (r_sub), and one separate group of ``n_other`` (0.5): n_sub + 1 clusters at the finest level."""
    rng = np.random.default_rng(seed)
    sub = np.concatenate([np.repeat(np.arange(n_sub), size), np.full(n_other, n_sub)])
    common = rng.standard_normal(n)
    z = rng.standard_normal((n, n_sub + 1))
    inner = sub < n_sub
    X = np.empty((n, sub.size))
    noise = rng.standard_normal((n, sub.size))
    X[:, inner] = (np.sqrt(r_common) * common[:, None] + np.sqrt(r_sub) * z[:, sub[inner]]
                   + np.sqrt(1 - r_common - r_sub) * noise[:, inner])
    X[:, ~inner] = np.sqrt(0.5) * z[:, sub[~inner]] + np.sqrt(0.5) * noise[:, ~inner]
    return X, sub


def nested_levels(n_parent, n_sub, size, r_common, r_sub, n, seed, relu=False):
    """Several parents, each with its own common factor (r_common) over ``n_sub`` sub-blocks of
    ``size`` (each its own factor, r_sub), no separate group; channel order shuffled; optionally
    after a ReLU (skewed, half-zero channels)."""
    rng = np.random.default_rng(seed)
    sub = rng.permutation(np.repeat(np.arange(n_parent * n_sub), size))
    parent = sub // n_sub
    X = (np.sqrt(r_common) * rng.standard_normal((n, n_parent))[:, parent]
         + np.sqrt(r_sub) * rng.standard_normal((n, n_parent * n_sub))[:, sub]
         + np.sqrt(1 - r_common - r_sub) * rng.standard_normal((n, sub.size)))
    return (np.maximum(X, 0.0) if relu else X), sub


FAMILIES = {
    "sizes 3..24, rho 0.4": lambda s: groups([3, 4, 6, 8, 12, 16, 24], [0.4] * 7, 3000, s),
    "one of 40 at 0.8 + six of 8 at 0.15": lambda s: groups([40] + [8] * 6, [0.8] + [0.15] * 6, 3000, s),
    "six of 8 at rho 0.1 .. 0.6": lambda s: groups([8] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 3000, s),
    "nested: 5 x 10, common 0.3, sub 0.2": lambda s: nested(5, 10, 0.3, 0.2, 3000, s),
    "nested: 5 x 10, common 0.2, sub 0.1": lambda s: nested(5, 10, 0.2, 0.1, 3000, s),
    "nested: 5 x 10, common 0.4, sub 0.1": lambda s: nested(5, 10, 0.4, 0.1, 3000, s),
    "nested, no separate group: 3 x 16, common 0.25, sub 0.15": lambda s: nested_levels(1, 3, 16, 0.25, 0.15, 3000, s),
    "two parents of 3 x 8, common 0.3, sub 0.2": lambda s: nested_levels(2, 3, 8, 0.3, 0.2, 3000, s),
    "two parents of 4 x 6, common 0.3, sub 0.3, ReLU": lambda s: nested_levels(2, 4, 6, 0.3, 0.3, 3000, s, relu=True),
    "one block of 100 at rho 0.05 (K = 1)": lambda s: groups([100], [0.05], 3000, s),
    "one block of 30 at rho 0.6 (K = 1)": lambda s: groups([30], [0.6], 3000, s),
    "independent, 64 channels (K = 1)": lambda s: groups([64], [0.0], 3000, s),
}


def before(est):
    """K and labels of the previous rule: the eigenvalues below the lowest l_2 of the channel-
    shuffled copies (``shuffle_edge_``, the edge the permutation null still uses)."""
    from sparsenet.analyser.clustering import cluster_affinity, cluster_bound, edge_n_clusters

    active = ~est.inactive_
    A = est.affinity_[np.ix_(active, active)]
    k = edge_n_clusters(est.eigenvalues_, est.shuffle_edge_, cluster_bound("auto", A.shape[0]))
    return k, cluster_affinity(A, "spectral", k, "auto", 0, spectrum=False).labels


SINGLE = {  # one block or none: every K > 1 is an over-split
    "one block of 100 at rho 0.05": lambda s: groups([100], [0.05], 3000, 500 + s),
    "one block of 60 at rho 0.1": lambda s: groups([60], [0.1], 3000, 500 + s),
    "one block of 30 at rho 0.6": lambda s: groups([30], [0.6], 3000, 500 + s),
    "independent, 64 channels": lambda s: groups([64], [0.0], 3000, 500 + s),
}


def single(seeds: int = 12) -> None:
    print("| family | K over seeds 0..%d | K > 1 |" % (seeds - 1))
    print("|---|---|---:|")
    for name, make in SINGLE.items():
        ks = [CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=s).fit(make(s)[0]).n_clusters_
              for s in range(seeds)]
        print(f"| {name} | {' '.join(map(str, ks))} | {np.mean(np.array(ks) > 1):.0%} |", flush=True)


def main() -> None:
    if "--single" in sys.argv[1:]:
        return single()
    print("| family | seed | K true | before: K | ARI | after: K | ARI | shuffled edge | matched edge "
          "| l_2 | l_3 .. l_6 | l_7 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, make in FAMILIES.items():
        for seed in (0, 1):
            X, labels = make(seed)
            est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(X)
            ev = est.eigenvalues_
            k_old, labels_old = before(est)
            ari = lambda found: adjusted_rand_score(labels[~est.inactive_], found)
            print(f"| {name} | {seed} | {len(set(labels))} | {k_old} | {ari(labels_old):.2f} | "
                  f"{est.n_clusters_} | {ari(est.labels_[~est.inactive_]):.2f} | {est.shuffle_edge_:.3f} | "
                  f"{est.matched_edge_:.3f} | {ev[1]:.3f} | {ev[2]:.3f} .. {ev[5]:.3f} | {ev[6]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
