"""Tables of docs/arora.md: Arora's step on planted layers, its sweeps, and layer-wise learning.

    python analysis/arora_recovery.py [--quick] > table.md

Every instance is generated here from its seed (sparsenet.data.synthetic: ``arora_layer``, one
layer with the hidden side's degree fixed as in the paper, and ``arora_network``, whose units
have a fixed number of parents); the scores compare the recovered neighbourhoods with the true
excitatory children (sparsenet.analyser.arora_layers.score_network).
"""

from __future__ import annotations

import argparse
import time

from sparsenet.analyser.arora_layers import learn_layers, score_network
from sparsenet.data.synthetic import arora_layer, arora_network


def _row(name, score, seconds):
    d = score.to_dict()
    within = abs(d["n_recovered"] - d["n_true"]) / d["n_true"]
    return (f"| {name} | {d['n_true']} | {d['n_recovered']} ({within:.0%}) | {d['mean_best_jaccard']:.3f} | "
            f"{d['share_jaccard_0.8']:.2f} | {d['precision']:.3f} | {d['recall']:.3f} | {score.f1:.3f} | {seconds:.1f} |")


HEADER = ("| instance | hidden | neighbourhoods (off by) | mean best Jaccard | share >= 0.8 | edge precision | "
          "edge recall | F1 | s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def single(name, sample):
    t = time.perf_counter()
    steps = learn_layers(sample.observed, 1)
    return _row(name, score_network(sample, steps)[0], time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds (for a smoke run)")
    args = parser.parse_args()
    seeds = range(2) if args.quick else range(5)

    print("## Single layer: 64 hidden, 256 observed, degree 8, density 0.05, 5,000 samples\n")
    print(HEADER)
    for seed in seeds:
        print(single(f"arora_layer seed {seed}", arora_layer(5000, 64, 256, degree=8, density=0.05, random_state=seed)))
    for seed in (0, 1):
        print(single(f"arora_network 64->256, 2 parents each (mean degree 8), seed {seed}",
                     arora_network(5000, 64, (256,), degree=2, top_sparsity=0.05, random_state=seed)))

    print("\n## Sweeps (arora_layer, seed 0; the rest as above)\n")
    print(HEADER)
    for degree in (4, 8, 16, 24, 32):
        print(single(f"degree {degree}", arora_layer(5000, 64, 256, degree=degree, density=0.05, random_state=0)))
    for density in (0.01, 0.02, 0.05, 0.1, 0.2):
        print(single(f"density {density}", arora_layer(5000, 64, 256, degree=8, density=density, random_state=0)))
    for n in (250, 500, 1000, 2000, 5000, 20000):
        print(single(f"{n} samples", arora_layer(n, 64, 256, degree=8, density=0.05, random_state=0)))

    print("\n## Layer-wise learning (arora_network, seed 0; step 1 recovers the layer above the observed one)\n")
    head, rule = HEADER.split("\n")
    print("| network (top -> bottom), parents per unit, top density, samples | step | " + head.split("| ", 2)[2])
    print("|---" + rule)
    for top, sizes, parents, rho, n in ((16, (64, 256, 1024), 2, 0.03, 10000), (32, (96, 288, 864), 3, 0.01, 20000),
                                       (64, (64, 64, 64), 6, 0.004, 20000)):
        net = arora_network(n, top, sizes, degree=parents, top_sparsity=rho, random_state=0)
        t = time.perf_counter()
        scores = score_network(net, learn_layers(net.observed, len(sizes)))
        seconds = time.perf_counter() - t
        for i, score in enumerate(scores):
            name = f"{top}->{'->'.join(map(str, sizes))}, {parents}, {rho}, {n}" if i == 0 else ""
            print(_row(f"{name} | {i + 1}", score, seconds if i == 0 else 0.0))


if __name__ == "__main__":
    main()
