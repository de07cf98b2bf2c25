"""Would a per-cluster re-test of the automatic K find weak sub-blocks inside strong blocks?

    python analysis/k_retest.py [--seeds 2] [--no-real]

The default analyser (no null, no resamples) is fitted; then each cluster of four or more
channels is analysed again on its own channels with the same rule (noise edge and all), and
split where that finds K > 1 (one level).  For the families of analysis/k_undercount.py (3,000
samples) it prints K and the ARI against the truth before and after.  On plaincnn's
`features.pool2` (mnist5k) the real answer is unknown, so the images are split in two halves:
the re-test runs on half A, and each split it makes is checked on half B with the held-out
ratio of analysis/cluster_replication.py (B's mean affinity between the two parts over the
lower of their mean affinities within; below 1 the split holds on images it was not fitted on).
"""

from __future__ import annotations

import argparse
import numpy as np
from sklearn.metrics import adjusted_rand_score

# this directory is on sys.path when run as a script
from cluster_replication import default_model_activations, fit, held_out  # noqa: E402
from k_undercount import groups, nested, nested_levels  # noqa: E402

SMALLEST = 4  # a cluster of fewer channels is not re-tested (two parts of at least 2)

FAMILIES = {
    "nested: 5 x 10, common 0.4, sub 0.1": lambda s: nested(5, 10, 0.4, 0.1, 3000, s),
    "nested: 5 x 10, common 0.3, sub 0.2": lambda s: nested(5, 10, 0.3, 0.2, 3000, s),
    "two parents of 3 x 8, common 0.3, sub 0.2": lambda s: nested_levels(2, 3, 8, 0.3, 0.2, 3000, s),
    "six of 8 at rho 0.3": lambda s: groups([8] * 6, [0.3] * 6, 3000, s),
    "sizes 3..24, rho 0.4": lambda s: groups([3, 4, 6, 8, 12, 16, 24], [0.4] * 7, 3000, s),
    "24 x 6 flat, rho 0.5": lambda s: groups([6] * 24, [0.5] * 24, 3000, s),
    "one block of 100 at rho 0.05 (K = 1)": lambda s: groups([100], [0.05], 3000, s),
    "one block of 30 at rho 0.6 (K = 1)": lambda s: groups([30], [0.6], 3000, s),
}


def retest(X):
    """(the fit, labels after one level of re-test, per cluster of the fit: its parts' labels)."""
    whole = fit(X)
    labels, parts = whole.labels_.copy(), {}
    next_label = whole.n_clusters_
    for k in range(whole.n_clusters_):
        members = np.flatnonzero(whole.labels_ == k)
        if len(members) < SMALLEST:
            continue
        sub = fit(X[:, members])
        if sub.n_clusters_ > 1:
            parts[k] = [k]
            for j in range(1, sub.n_clusters_):
                labels[members[sub.labels_ == j]] = next_label
                parts[k].append(next_label)
                next_label += 1
    return whole, labels, parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--no-real", action="store_true")
    a = p.parse_args()
    print("| family | seed | K true | K | ARI | K re-tested | ARI re-tested |")
    print("|---|---|---|---|---|---|---|")
    for name, make in FAMILIES.items():
        for seed in range(a.seeds):
            X, truth = make(seed)
            whole, labels, _ = retest(X)
            print(f"| {name} | {seed} | {len(set(truth))} | {whole.n_clusters_} | "
                  f"{adjusted_rand_score(truth, whole.labels_):.2f} | {labels.max() + 1} | "
                  f"{adjusted_rand_score(truth, labels):.2f} |", flush=True)
    if a.no_real:
        return
    acts = default_model_activations("features.pool2", 4000)
    order = np.random.default_rng(0).permutation(len(acts))
    A, B = acts[order[: len(acts) // 2]], acts[order[len(acts) // 2:]]
    whole, labels, parts = retest(A)
    affinity_b = fit(B).affinity_
    print(f"\nplaincnn features.pool2, mnist5k, half A ({len(A)} images): K {whole.n_clusters_} -> {labels.max() + 1}")
    for k, ids in parts.items():
        inside = np.where(np.isin(labels, ids), labels, -1)
        relabel = np.full(labels.max() + 1, -1)
        relabel[ids] = np.arange(len(ids))
        ratios = held_out(np.where(inside >= 0, relabel[np.maximum(inside, 0)], -1), affinity_b)
        sizes = [int((labels == i).sum()) for i in ids]
        print(f"  cluster {k} ({sum(sizes)} channels) -> parts of {sizes}: held-out ratio on B "
              + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
