"""The two references behind the automatic K on a layer of the cached default model: the
shuffled copies' edge, the degree-matched edge, and the K each would choose alone (the
copies-only rule is the one before 2026-12-02; docs/analyser.md, "Real layers, re-read").

    python analysis/noise_edges.py features.pool2 --max-samples 2000
    python analysis/noise_edges.py features.relu3 --max-samples 1000 [--affinity pearson_abs]

No null and one resample: the samples are kept (so the edges are computed) at the least cost.
"""

from __future__ import annotations

import argparse

import numpy as np

from sparsenet.analyser.clustering import edge_n_clusters
from sparsenet.analyser.settings import AFFINITIES, AnalysisSettings
from sparsenet.discover import default_checkpoint, discover_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layer")
    parser.add_argument("--max-samples", type=int, default=2000)
    parser.add_argument("--affinity", default="pearson_pos", choices=AFFINITIES)
    args = parser.parse_args()
    settings = AnalysisSettings(max_samples=args.max_samples, affinity=args.affinity, permutations=0, resamples=1)
    fitted = discover_model(default_checkpoint(0), None, None, None, layer=args.layer, data=None, data_root=None,
                            device="cpu", settings=settings, progress=False)
    a = fitted.analyzer
    spectrum = np.sort(np.asarray(a.eigenvalues_))
    bound = len(spectrum)  # unclipped counts: what each edge alone reaches
    print(f"{args.layer} ({args.affinity}, {args.max_samples} samples): K = {fitted.n_clusters}")
    for name, edge in (("shuffled copies", a.shuffle_edge_), ("degree-matched", a.matched_edge_)):
        k = "n/a" if edge is None else edge_n_clusters(spectrum, edge, bound)
        print(f"  {name:16s} edge {'n/a' if edge is None else f'{edge:.3f}'}  K alone {k}")
    print("  smallest eigenvalues:", " ".join(f"{v:.3f}" for v in spectrum[:16]))


if __name__ == "__main__":
    main()
