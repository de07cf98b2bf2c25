"""Do the automatic K's clusters replicate on images they were not fitted on?

    python analysis/cluster_replication.py [--layer features.pool2] [--images 4000] [--splits 3]

The images are split at random into two halves A and B, the default analyser (``sparsenet
discover``'s settings, no null, no resamples) is fitted on each, and for every split this prints:
K on each half; the ARI between the two halves' labels (channels active in both); and a
held-out test of every split the analyser made on A: for each pair of A's clusters, their mean
affinity *on B* between the two clusters against the lower of their two mean affinities within
(B's affinity, pairs of distinct channels).  A ratio below 1 means the two clusters are still
apart on images they were not fitted on; at or above 1, B does not support the split.

The same on three synthetic families with known answers (flat Gaussian channels, 4,000
samples, from analysis/k_undercount.py): six groups of 8 at rho 0.3 (six clusters that must
replicate), one block of 100 at rho 0.05 and one of 30 at rho 0.6 (one cluster: any split must
fail the held-out test).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from sklearn.metrics import adjusted_rand_score

from k_undercount import groups  # noqa: E402  (this directory is on sys.path when run as a script)
from sparsenet.analyser.settings import DISCOVER
from sparsenet.discover import make_analyzer

SETTINGS = replace(DISCOVER, permutations=0, resamples=0)


def fit(X):
    return make_analyzer(SETTINGS).fit(X)


def held_out(labels_a: np.ndarray, affinity_b: np.ndarray) -> list[float]:
    """Per pair of A's clusters (two channels or more each): B's mean affinity between them over
    the lower of their mean affinities within."""
    ids = [k for k in range(labels_a.max() + 1) if (labels_a == k).sum() >= 2]
    W = np.asarray(affinity_b, dtype=float)
    within, members = {}, {}
    for k in ids:
        m = np.flatnonzero(labels_a == k)
        block = W[np.ix_(m, m)]
        within[k] = (block.sum() - np.trace(block)) / (len(m) * (len(m) - 1))
        members[k] = m
    return [W[np.ix_(members[i], members[j])].mean() / min(within[i], within[j])
            for a, i in enumerate(ids) for j in ids[a + 1:] if min(within[i], within[j]) > 0]


def report(name: str, X: np.ndarray, splits: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for s in range(splits):
        order = rng.permutation(len(X))
        a_rows, b_rows = order[: len(X) // 2], order[len(X) // 2:]
        A, B = fit(X[a_rows]), fit(X[b_rows])
        both = (A.labels_ >= 0) & (B.labels_ >= 0)
        ari = adjusted_rand_score(A.labels_[both], B.labels_[both])
        ratios = held_out(A.labels_, B.affinity_)
        worst = max(ratios) if ratios else float("nan")
        print(f"| {name} | {s} | {A.n_clusters_} | {B.n_clusters_} | {ari:.2f} | {len(ratios)} | "
              f"{sum(r >= 1 for r in ratios)} | {sum(r >= 0.8 for r in ratios)} | {worst:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layer", default="features.pool2")
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--no-synthetic", action="store_true")
    a = p.parse_args()
    print("| data | split | K on A | K on B | ARI(A, B) | pairs of A's clusters | held-out ratio >= 1 | >= 0.8 | largest ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    if not a.no_synthetic:
        for name, (sizes, rhos) in {"six groups of 8, rho 0.3": ([8] * 6, [0.3] * 6),
                                    "one block of 100, rho 0.05 (K = 1)": ([100], [0.05]),
                                    "one block of 30, rho 0.6 (K = 1)": ([30], [0.6])}.items():
            report(name, groups(sizes, rhos, 4000, 0)[0], a.splits)
    acts = default_model_activations(a.layer, a.images)
    report(f"plaincnn {a.layer}, mnist5k ({len(acts)} images)", acts, a.splits)


def default_model_activations(layer: str, images: int) -> np.ndarray:
    """``layer``'s activations of the cached default model (plaincnn on mnist5k) on its first
    ``images`` training images, normalised as it was trained."""
    import torch

    from sparsenet.discover import dataset_loader, default_checkpoint, load_model
    from sparsenet.recording import record

    net, info = load_model(default_checkpoint(0), None, None, None)
    _, loader = dataset_loader(info["dataset"], None, info["normalization"], 0)
    with torch.no_grad():
        return record(net, layer, loader, max_samples=images).numpy()


if __name__ == "__main__":
    main()
