"""Validation suite of the footprint estimator: kernel sizes against the generating filters.

Every configuration generates channel groups that share a filtered latent field
(``sparsenet.data.filtered.filtered_groups``: one group per filter, all filters of the suite in
one dataset, groups independent), streams them through the analyser's second pass
(``ClusterMapStats`` with the true labels, so that only the footprint is judged) and fits each
group's footprint (``fit_cluster_maps``).  The truth is ``footprint_of_filter`` of the
generating filter.  Filters whose window mass fraction lies within 3 points of the threshold at
a window of the kernel set are listed separately ("near") and left out of the accuracy.

    python analysis/footprint_suite.py --out runs/footprint_suite.json

prints a table per family and configuration and writes every fit to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sparsenet.analyser.footprint import fit_cluster_maps, footprint_of_filter, window_mass_fractions
from sparsenet.data.filtered import HELD_OUT, filtered_groups, make_filter
from sparsenet.stats import ChannelStats, ClusterMapStats

KERNELS = (1, 3, 5)
FILTERS = ([("box", w) for w in (1, 2, 3, 4, 5, 6)]
           + [("gaussian", s) for s in (0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.2, 1.4, 1.7, 2.0)]
           + [("exponential", s) for s in (0.25, 0.4, 0.5, 0.7, 0.9, 1.2, 1.6, 2.0)]
           + [("disc", r) for r in (0.5, 1.0, 1.5, 2.0, 2.3, 2.9, 3.5)]
           + [("tent", r) for r in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)]
           + [("cauchy", g) for g in (0.3, 0.5, 0.8, 1.2, 2.0)]
           + [("anisotropic", s) for s in (0.5, 0.8, 1.2, 1.6, 2.2)])
BASE = dict(group=10, noise=1.0, gain=(0.75, 1.25), latent="gaussian", offset=0.0,
            position_mean=0.0, size=12, images=400)
CONFIGS = {
    "base": {},
    "group 4, noise 0.5": dict(group=4, noise=0.5),
    "group 4, noise 2": dict(group=4, noise=2.0),
    "group 40, noise 0.5": dict(group=40, noise=0.5, images=200),
    "group 40, noise 2": dict(group=40, noise=2.0, images=200),
    "gains 0.2-3": dict(gain=(0.2, 3.0)),
    "spiky latent": dict(latent="spiky"),
    "per-image offsets": dict(offset=0.7),
    "per-position mean": dict(position_mean=1.5),
    "offsets + mean, noise 0.5": dict(offset=0.7, position_mean=1.5, noise=0.5),
    "7 x 7 maps": dict(size=7, images=800),
    "28 x 28 maps": dict(size=28, images=100),
}
INVARIANCE = ("group 4, noise 0.5", "group 4, noise 2", "group 40, noise 0.5", "group 40, noise 2")


def run_config(name: str, cfg: dict, seed: int, mass_fraction: float) -> list[dict]:
    c = {**BASE, **cfg}
    filters = [make_filter(f, s) for f, s in FILTERS]
    data = filtered_groups(filters, [c["group"]] * len(filters), n_images=c["images"],
                           size=c["size"], noise=c["noise"], gain=c["gain"], latent=c["latent"],
                           offset=c["offset"], position_mean=c["position_mean"], random_state=seed)
    first = ChannelStats(max_radius=0).partial_fit(data.X)
    R = min(2 * (max(KERNELS) // 2) + 1, c["size"] - 1)
    maps = ClusterMapStats(data.labels, first.mean_, first.std_, max_radius=R)
    for batch in np.array_split(data.X, max(1, len(data.X) // 100)):
        maps.partial_fit(batch)
    fits = fit_cluster_maps(maps, KERNELS, mass_fraction)
    rows = []
    for (family, size), h, fit in zip(FILTERS, filters, fits):
        fractions = window_mass_fractions(h, KERNELS)
        rows.append({"config": name, "family": family, "size": size,
                     "truth": footprint_of_filter(h, KERNELS, mass_fraction),
                     "found": fit.kernel_size, "mass_fractions": fractions.round(4).tolist(),
                     "near": bool(np.any(np.abs(fractions[:-1] - mass_fraction) < 0.03)),
                     "candidate": fit.candidate, "residual": fit.residual,
                     "runner_up": fit.runner_up, "margin": fit.margin,
                     "held_out": family in HELD_OUT})
    return rows


def summarise(rows: list[dict]) -> str:
    families = list(dict.fromkeys(r["family"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    lines = ["| configuration | " + " | ".join(families) + " | all |",
             "|---|" + "---:|" * (len(families) + 1)]
    for cfg in configs + ["all"]:
        cells = []
        for fam in families + ["all"]:
            sel = [r for r in rows if (cfg == "all" or r["config"] == cfg)
                   and (fam == "all" or r["family"] == fam) and not r["near"]]
            ok = sum(r["truth"] == r["found"] for r in sel)
            cells.append(f"{ok}/{len(sel)}")
        lines.append(f"| {cfg} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def invariance(rows: list[dict]) -> tuple[int, int, list[str]]:
    same, total, bad = 0, 0, []
    for family, size in FILTERS:
        found = {r["config"]: r["found"] for r in rows
                 if r["family"] == family and r["size"] == size and r["config"] in INVARIANCE}
        if len(found) == len(INVARIANCE):
            total += 1
            if len(set(found.values())) == 1:
                same += 1
            else:
                bad.append(f"{family} {size:g}: " + ", ".join(f"{k} -> {v}" for k, v in found.items()))
    return same, total, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/footprint_suite.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mass-fraction", type=float, default=0.8)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), help="subset of the configurations")
    args = ap.parse_args(argv)
    rows = []
    for i, name in enumerate(args.configs):
        t = time.time()
        rows += run_config(name, CONFIGS[name], args.seed + i, args.mass_fraction)
        print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr)
    print(summarise(rows))
    judged = [r for r in rows if not r["near"]]
    ok = sum(r["truth"] == r["found"] for r in judged)
    print(f"\nright: {ok}/{len(judged)} = {ok / max(len(judged), 1):.1%} (near-threshold filters excluded)")
    for held in (False, True):
        sel = [r for r in judged if r["held_out"] == held]
        print(f"  {'held-out' if held else 'candidate-like'} families: "
              f"{sum(r['truth'] == r['found'] for r in sel)}/{len(sel)}")
    wrong = [r for r in judged if r["truth"] != r["found"]]
    if wrong:
        print("\nwrong (not near the threshold):")
        for r in wrong:
            print(f"  {r['config']}: {r['family']} {r['size']:g} truth {r['truth']} found {r['found']} "
                  f"mass {r['mass_fractions']} margin {r['margin']:.3f}")
    near = sorted({(r["family"], r["size"], tuple(r["mass_fractions"])) for r in rows if r["near"]})
    print("\nnear the threshold (within 3 points at a window edge; excluded):")
    for family, size, fr in near:
        found = [r["found"] for r in rows if r["family"] == family and r["size"] == size]
        truth = next(r["truth"] for r in rows if r["family"] == family and r["size"] == size)
        print(f"  {family} {size:g}: mass {list(fr)}, truth {truth}, found {found}")
    same, total, bad = invariance(rows)
    if total:
        print(f"\nsame kernel at group 4 / 40 and noise 0.5 / 2: {same}/{total} filters")
        for line in bad:
            print("  differs: " + line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
