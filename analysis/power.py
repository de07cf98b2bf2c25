"""Calibration and power of the analyser's significance test, automatic K against K given.

False-positive rate: the fraction of structureless data sets whose p is at or below alpha
(0.05, 0.01), the K selection included (under ``auto`` the null re-chooses K on every copy).
Structureless families, each channel independent of every other:

``independent``   flat, 500 samples x 32 Gaussian channels after a ReLU.
``smooth maps``   20 images x 32 channels of 12 x 12, each channel its own white map blurred by
                  a 5 x 5 box (spatially smooth, no co-firing), after a ReLU.
``heavy-tailed``  flat, 1,000 samples x 32 sparse channels: active w.p. 0.1 with a log-normal
                  (sigma 1.5) value, else 0.

Detection rate: the fraction of data sets with planted groups whose p is at or below alpha.
Planted: 12 x 12 maps, channel = sqrt(rho) * (its group's latent map, a white map blurred by a
3 x 3 box, unit variance) + sqrt(1 - rho) * (its own noise, unit variance), so the within-group
correlation at offset 0 is rho; 20 or 200 images.  ``4 x 8, white noise``: 4 groups of 8, white
noise.  ``8 x 4, smooth noise``: 8 groups of 4, the noise blurred by a 5 x 5 box (about 25 times
fewer independent samples per image, and smaller groups: much harder).

Every fit: ``CorrelationAnalyzer(n_permutations=99, n_resamples=0)`` (the default null),
``n_clusters="auto"`` or the planted number of groups (K given).  Usage:

    python analysis/power.py --null-sets 200 --power-sets 40 --out docs/power.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.ndimage import uniform_filter

ALPHAS = (0.05, 0.01)


def independent(rng):
    return np.maximum(rng.standard_normal((500, 32)), 0.0)


def smooth_maps(rng):
    X = uniform_filter(rng.standard_normal((20, 32, 12, 12)), size=(1, 1, 5, 5), mode="wrap")
    return np.maximum(X, 0.0)


def heavy_tailed(rng):
    return (rng.random((1000, 32)) < 0.1) * rng.lognormal(0.0, 1.5, (1000, 32))


def planted(rng, rho, images, groups=4, size=8, noise_box=1):
    latent = uniform_filter(rng.standard_normal((images, groups, 12, 12)), size=(1, 1, 3, 3), mode="wrap")
    latent /= latent.std()
    labels = np.repeat(np.arange(groups), size)
    noise = uniform_filter(rng.standard_normal((images, groups * size, 12, 12)),
                           size=(1, 1, noise_box, noise_box), mode="wrap")
    noise /= noise.std()
    return np.sqrt(rho) * latent[:, labels] + np.sqrt(1 - rho) * noise


# planted families: (groups, size, noise box)
PLANTED = {"4 x 8, white noise": (4, 8, 1), "8 x 4, smooth noise": (8, 4, 5)}


NULLS = {"independent": independent, "smooth maps": smooth_maps, "heavy-tailed": heavy_tailed}


def p_value(X, k, seed, permutations):
    from sparsenet.analyser import CorrelationAnalyzer

    est = CorrelationAnalyzer(n_clusters=k, n_permutations=permutations, n_resamples=0,
                              random_state=seed).fit(X)
    return est.significance_["p"], est.n_clusters_


def _modes(which: str, given: int) -> tuple:
    return {"both": ("auto", given), "auto": ("auto",), "given": (given,)}[which]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--null-sets", type=int, default=200, help="structureless data sets per family and mode")
    p.add_argument("--power-sets", type=int, default=40, help="planted data sets per cell and mode")
    p.add_argument("--permutations", type=int, default=99)
    p.add_argument("--part", choices=("all", "null", "power"), default="all",
                   help="only the false-positive or the detection table (to run the two side by side)")
    p.add_argument("--planted", action="append", choices=list(PLANTED), help="only these planted families")
    p.add_argument("--modes", choices=("both", "auto", "given"), default="both",
                   help="only automatic K or only K given (the other mode's rows are left out)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    t0 = time.time()
    lines = ["False-positive rate (structureless data; K selection included under auto):", "",
             "| family | K | p <= 0.05 | p <= 0.01 | mean p | K > 1 chosen |", "|---|---|---|---|---|---|"]
    for name, make in NULLS.items() if args.part != "power" else ():
        for k in _modes(args.modes, 4):
            ps, ks = [], []
            for i in range(args.null_sets):
                pv, kk = p_value(make(np.random.default_rng(10_000 + i)), k, i, args.permutations)
                ps.append(pv)
                ks.append(kk)
            ps = np.array(ps)
            chosen = f"{np.mean(np.array(ks) > 1):.1%}" if k == "auto" else "(given)"
            lines.append(f"| {name} | {k} | {np.mean(ps <= 0.05):.3f} | {np.mean(ps <= 0.01):.3f} | "
                         f"{ps.mean():.2f} | {chosen} |")
            print(lines[-1], flush=True)
    lines += ["", "Detection rate (planted groups, within-group correlation rho at offset 0):", "",
              "| planted | rho | images | K | p <= 0.05 | p <= 0.01 | true K found |",
              "|---|---|---|---|---|---|---|"]
    for family in (args.planted or list(PLANTED)) if args.part != "null" else ():
        groups, size, box = PLANTED[family]
        for rho in (0.05, 0.1, 0.2):
            for images in (20, 200):
                for k in _modes(args.modes, groups):
                    ps, ks = [], []
                    for i in range(args.power_sets):
                        X = planted(np.random.default_rng(20_000 + i), rho, images, groups, size, box)
                        pv, kk = p_value(X, k, i, args.permutations)
                        ps.append(pv)
                        ks.append(kk)
                    ps = np.array(ps)
                    found = f"{np.mean(np.array(ks) == groups):.0%}" if k == "auto" else "(given)"
                    lines.append(f"| {family} | {rho} | {images} | {k} | {np.mean(ps <= 0.05):.2f} | "
                                 f"{np.mean(ps <= 0.01):.2f} | {found} |")
                    print(lines[-1], flush=True)
    lines += ["", f"({args.null_sets} structureless and {args.power_sets} planted data sets per row, "
                  f"{args.permutations} permutations, {time.time() - t0:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
