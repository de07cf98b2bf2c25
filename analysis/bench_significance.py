"""Wall time of the analyser with its significance null and stability halves at 1,024 channels.

The target of issue 11: 99 permutations plus the stability resamples at 1,024 channels in
<= 20 s on a 2-core machine.  The data are the clustering benchmark's (``sparsenet.bench.clustering``:
``planted_groups``, 8 groups, 128 images of 8 x 8, so 8,192 rows per copy).  Beside each
timing the script measures the machine's own speed on the same work unit, one float32
``Z^T Z`` of 8,192 x 1,024 (the product every shuffled copy needs), so that runs on a machine
shared with other jobs can be compared as a ratio, and the process's CPU seconds (``cpu_s``,
all threads), which other jobs inflate much less than the wall time: on an idle 2-core
machine the wall time cannot be below ``cpu_s / 2``.

To compare with an older sparsenet, run the same script with that tree first on PYTHONPATH
(it uses only the public ``CorrelationAnalyzer``), interleaved with this one:

    python analysis/bench_significance.py --permutations 99 --resamples 5 --repeats 3
    PYTHONPATH=/path/to/old/tree python analysis/bench_significance.py --permutations 20 --resamples 5
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def gram_seconds(repeats: int = 3) -> float:
    """Median seconds of one float32 8,192 x 1,024 Z^T Z (numpy, default threads)."""
    Z = np.random.default_rng(0).standard_normal((8192, 1024)).astype(np.float32)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        Z.T @ Z
        runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


def planted(C: int, images: int = 128, size: int = 8):
    """The clustering benchmark's data: C channels in 8 planted groups, kernels 1, 3, 5 in turn."""
    from sparsenet.data.synthetic import planted_groups

    sizes = [C // 8 + (1 if g < C % 8 else 0) for g in range(8)]
    return planted_groups(n_samples=images, group_sizes=sizes, kernel_sizes=[(1, 3, 5)[g % 3] for g in range(8)],
                          size=size, shuffle=True, random_state=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--permutations", type=int, default=99)
    p.add_argument("--resamples", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", default=None, help="append one JSON line per run to this file")
    args = p.parse_args()

    import sparsenet
    from sklearn.metrics import adjusted_rand_score

    from sparsenet.analyser import CorrelationAnalyzer

    data = planted(args.channels)
    for _ in range(args.repeats):
        gram = gram_seconds()
        t0, c0 = time.perf_counter(), time.process_time()
        est = CorrelationAnalyzer(n_permutations=args.permutations, n_resamples=args.resamples,
                                  random_state=0).fit(data.X)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"sparsenet": os.path.dirname(sparsenet.__file__), "channels": args.channels,
               "permutations": args.permutations, "resamples": args.resamples,
               "seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "gram_s": round(gram, 4),
               "seconds_in_grams": round(seconds / gram, 1), "k": int(est.n_clusters_),
               "ari": round(float(adjusted_rand_score(data.labels, est.labels_)), 3),
               "p": est.significance_["p"] if est.significance_ else None,
               "load_average": round(os.getloadavg()[0], 2)}
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
