"""Clustering scale: how long the analyser takes for 64 ... 2,048 channels.

Data: ``sparsenet.data.synthetic.planted_groups`` with C channels in 8 planted groups (kernel sizes
1, 3, 5 in turn), ``images`` maps of ``size x size``.  Three ways, each timed separately:

``from_stats``
    ``CorrelationAnalyzer(n_permutations=0, n_resamples=0).fit(stats)`` on a ``ChannelStats``
    (max_radius 2) fitted beforehand (untimed): affinity, Laplacian spectrum (eigengap K),
    spectral clustering and the spatial profiles from the C x C x 3 ring correlations.  This is
    the analyser's own cost once the statistics exist (streamed over any amount of data).
``from_data``
    ``fit(X)`` on the activations with ``n_permutations=0, n_resamples=0``: adds the statistics
    (and the profiles' second pass over the K cluster maps).
``with_significance``
    ``fit(X)`` with the permutation null and the split-half stability at the given counts
    (defaults of ``sparsenet discover``: 99 and 5): every permutation and half reruns the
    statistics, the affinity and the clustering (and, under the automatic K, the choice of K
    and its 19 reference copies), so this is the expensive part.

Also a breakdown of ``from_stats`` into its stages, and the log-log slope of time against C.
Targets at 1,024 channels: ``from_stats`` under ``INTERACTIVE_S`` seconds (interactive),
``with_significance`` under ``SIGNIFICANCE_S``.
"""

from __future__ import annotations

import time

import numpy as np

from sparsenet.timing import Timing, load_average, summary_row

INTERACTIVE_S = 10.0
SIGNIFICANCE_S = 20.0  # 99 permutations + the stability halves at 1,024 channels (issue 11)


def _planted(C: int, images: int, size: int, seed: int = 0):
    from sparsenet.data.synthetic import planted_groups

    n_groups = 8 if C >= 16 else 2
    sizes = [C // n_groups + (1 if g < C % n_groups else 0) for g in range(n_groups)]
    kernels = [(1, 3, 5)[g % 3] for g in range(n_groups)]
    return planted_groups(n_samples=images, group_sizes=sizes, kernel_sizes=kernels, size=size,
                          shuffle=True, random_state=seed)


def _clock(fn, repeats: int) -> tuple[list[float], object]:
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return runs, out


def _stages(stats, est) -> dict:
    """Seconds of each stage of a fit from statistics (one run each, the fitted K)."""
    from sparsenet.analyser.affinity import compute_affinity
    from sparsenet.analyser.clustering import laplacian_spectrum, spectral_labels
    from sparsenet.analyser.spatial import cluster_spatial_profiles

    out = {}
    t0 = time.perf_counter()
    aff = compute_affinity(stats, "pearson_pos")
    out["affinity_s"] = time.perf_counter() - t0
    active = ~np.asarray(stats.inactive_)
    sub = aff[np.ix_(active, active)]
    t0 = time.perf_counter()
    laplacian_spectrum(sub)
    out["spectrum_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spectral_labels(sub, est.n_clusters_, 0)
    out["spectral_clustering_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster_spatial_profiles(stats.spatial_correlation(), est.labels_, est.n_clusters_)
    out["profiles_from_rings_s"] = time.perf_counter() - t0
    return out


def run(*, channels: tuple[int, ...], significance_channels: tuple[int, ...], images: int,
        size: int, n_permutations: int, n_resamples: int, repeats: int) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from sparsenet.analyser import CorrelationAnalyzer
    from sparsenet.stats import ChannelStats

    rows = []
    for C in channels:
        data = _planted(C, images, size)
        stats = ChannelStats(max_radius=2).partial_fit(data.X)
        quiet = dict(n_permutations=0, n_resamples=0, random_state=0)
        reps = repeats if C <= 256 else max(1, min(repeats, 2))
        runs, est = _clock(lambda: CorrelationAnalyzer(**quiet).fit(stats), reps)
        row = {"channels": C, "images": images, "size": size, "rows": images * size * size,
               "from_stats": Timing(runs).to_dict(), "clusters_found": int(est.n_clusters_),
               "ari_to_planted": float(adjusted_rand_score(data.labels, est.labels_)),
               "stages": _stages(stats, est)}
        runs, _ = _clock(lambda: CorrelationAnalyzer(**quiet).fit(data.X), 1)
        row["from_data"] = Timing(runs).to_dict()
        if C in significance_channels:
            runs, est2 = _clock(lambda: CorrelationAnalyzer(
                n_permutations=n_permutations, n_resamples=n_resamples, random_state=0).fit(data.X), 1)
            row["with_significance"] = {**Timing(runs).to_dict(), "n_permutations": n_permutations,
                                        "n_resamples": n_resamples,
                                        "z": float(est2.significance_["z"]) if est2.significance_ else None}
        row["load_average_after"] = load_average()
        rows.append(row)
    out = {"interactive_target_s": INTERACTIVE_S, "rows": rows,
           "what": "analyser wall time vs channels (from ChannelStats, from data, with significance)"}
    for key in ("from_stats", "from_data", "with_significance"):
        pts = [(r["channels"], r[key]["median_s"]) for r in rows if key in r]
        if len(pts) >= 2:
            c, t = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[f"slope_{key}"] = float(np.polyfit(c, t, 1)[0])
    return out


def summary_rows(result: dict) -> list[dict]:
    rows = []
    for r in result["rows"]:
        C = r["channels"]
        rows.append(summary_row("analyser time (s), from ChannelStats", f"C={C}", r["from_stats"]["median_s"],
                                at_most=INTERACTIVE_S if C == 1024 else None, unit=" s"))
        rows.append(summary_row("analyser time (s), from data", f"C={C}", r["from_data"]["median_s"]))
        if "with_significance" in r:
            w = r["with_significance"]
            rows.append(summary_row("analyser time (s), with significance",
                                    f"C={C}, {w['n_permutations']} perm + {w['n_resamples']} halves", w["median_s"],
                                    at_most=SIGNIFICANCE_S if C == 1024 else None, unit=" s"))
    return rows
