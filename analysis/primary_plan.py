"""The compute plan of a pre-registered experiment, from the measured seconds per epoch of its arms.

    sparsenet compare --config experiments/primary-timing.toml --out runs/compare-primary-timing --quiet
    python analysis/primary_plan.py --timing runs/compare-primary-timing --config experiments/primary.toml

The timing directory holds one run per arm at one epoch (and one epoch per growth step).  From its
records: seconds per training epoch of each arm (``train_time_s / epochs_run``) and, for grown
arms, the growth's seconds per epoch of every step together (``grow_time_s / grow_epochs``).  The
plan counts, without early stopping (an upper bound):

    main:  seeds x per arm (grow_epochs x growth s + epochs x s/epoch)
    sweep: lrs x sweep seeds x per family's representative (the same)
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from sparsenet.compare.experiment import load_experiment
    from sparsenet.compare.records import read_records
    from sparsenet.compare.sweep import representatives

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timing", required=True, help="output directory of the timing configuration")
    p.add_argument("--config", required=True, help="the experiment to plan")
    args = p.parse_args(argv)
    plan = load_experiment(args.config)
    timing_exp = load_experiment_from_dir(args.timing)
    rows, missing = read_records(args.timing, timing_exp)
    if missing:
        print(f"timing runs missing: {missing}", file=sys.stderr)
        return 2
    timing = {r["candidate"]: r for r in rows}
    epochs = plan.train["epochs"]
    per_run = {}
    print(f"| arm | s/epoch | growth s per grow epoch (all steps) | runs | s per run (upper bound) |\n|---|---|---|---|---|")
    for point in plan.points:
        r = timing[point.name]
        s_epoch = r["train_time_s"] / r["epochs_run"]
        growth = 0.0
        if point.kind == "grown":
            t_grow = timing_exp.point(point.name).options["grow_epochs"] or timing_exp.train["epochs"]
            growth = r["grow_time_s"] / t_grow
        g_epochs = (point.options.get("grow_epochs") or epochs) if point.kind == "grown" else 0
        per_run[point.name] = g_epochs * growth + epochs * s_epoch
        print(f"| {point.name} | {s_epoch:.1f} | {growth:.1f} | {len(plan.seeds)} | {per_run[point.name]:.0f} |")
    main_s = len(plan.seeds) * sum(per_run.values())
    sweep_s = 0.0
    if plan.sweep:
        n = len(plan.sweep["lrs"]) * len(plan.sweep["seeds"])
        sweep_s = n * sum(per_run[p.name] for p in representatives(plan).values())
    print(f"\nmain runs: {main_s:.0f} s ({main_s / 3600:.1f} h); sweep: {sweep_s:.0f} s ({sweep_s / 3600:.1f} h); "
          f"total {main_s + sweep_s:.0f} s ({(main_s + sweep_s) / 3600:.1f} h) in one process, one thread")
    return 0


def load_experiment_from_dir(directory):
    import json
    from pathlib import Path

    from sparsenet.compare.experiment import parse_experiment
    from sparsenet.compare.runs import config_from_stored

    stored = json.loads((Path(directory) / "config.json").read_text())
    return parse_experiment(config_from_stored(stored["config"]), source=stored.get("source", str(directory)))


if __name__ == "__main__":
    sys.exit(main())
