"""The learning-rate sweep: one learning rate per architecture family, chosen on validation before the main runs.

For each family (a candidate's ``family``, by default its kind) in order of first appearance, its
first candidate (the representative) is trained at every learning rate of ``[sweep].lrs`` and
every seed of ``[sweep].seeds`` under ``DIR/sweep/<family>/lr<value>/`` (a run directory of its own,
with its records).  The chosen rate is the one with the highest mean validation accuracy of the
selected epoch over the sweep seeds; a run that diverged counts as 0; ties go to the first rate
listed.  Test accuracy is recorded but never read here.  Every candidate of the family then
trains all main seeds at that rate.  A matched representative is fitted, per sweep seed, to its
target's sweep run at the target family's chosen rate (so the target must be a representative
of an earlier family).  ``DIR/sweep.json`` keeps the whole table and the choice.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from sparsenet.compare.experiment import Experiment, Point
from sparsenet.compare.records import read_record, reusable_record, write_record
from sparsenet.compare.runs import run_point
from sparsenet.errors import SparsenetError
from sparsenet.distributed import on_main
from sparsenet.io import atomic_write_json

__all__ = ["with_lr", "representatives", "run_sweep", "sweep_run", "family_choice", "sweep_directory"]


def with_lr(experiment: Experiment, lr: float) -> Experiment:
    """The experiment with every run's peak learning rate set to ``lr``."""
    return replace(experiment, train={**experiment.train, "lr": float(lr)})


def sweep_directory(out: Path, family: str, lr: float) -> Path:
    return Path(out) / "sweep" / family / f"lr{lr:g}"


def representatives(experiment: Experiment) -> dict[str, Point]:
    """family -> its first candidate, in order of first appearance; checks that matched ones can be swept."""
    reps: dict[str, Point] = {}
    for p in experiment.points:
        reps.setdefault(experiment.family(p), p)
    names = {p.name for p in reps.values()}
    for family, p in reps.items():
        target = p.options.get("match")
        if target is not None and target not in names:
            raise SparsenetError(f"{experiment.source}: the sweep of family {family!r} trains {p.name}, matched to "
                                 f"{target!r}, which is not the first candidate of its family; put {target!r} first "
                                 "in its family (or give it a family of its own)")
    return reps


def sweep_run(experiment: Experiment, family: str, lr: float, seed: int, dataset, out: Path, progress: bool,
              log: Callable[[str], None], device=None) -> list[dict[str, Any]]:
    """Train (or reuse) the representative of ``family`` at ``lr`` and sweep seed ``seed``; its rows.

    A matched representative needs its target family's choice (every run of that family recorded).
    """
    point = representatives(experiment)[family]
    sub = sweep_directory(out, family, lr)
    rows = reusable_record(sub, point.name, seed)
    if rows is None:
        log(f"sweep {family}: {point.name} lr {lr:g} seed {seed}: training")
        target = None
        if point.options.get("match"):
            target_family = experiment.family(experiment.point(point.options["match"]))
            target = family_choice(experiment, out, target_family)["macs"].get(seed)
        rows, _ = run_point(point, seed, dataset, with_lr(experiment, lr), sub, progress, log, device,
                            target_macs=target)
        on_main(write_record, sub, point.name, seed, rows)   # then every rank reads it
    return rows


def family_choice(experiment: Experiment, out: Path, family: str) -> dict[str, Any]:
    """The sweep table of one family from its recorded runs (all of them must be recorded): the scores per
    learning rate, the chosen rate ``lr`` and the representative's multiply-adds per seed at that rate."""
    sweep, point = experiment.sweep, representatives(experiment)[family]
    scores: dict[str, Any] = {}
    for lr in sweep["lrs"]:
        per_seed = {}
        for seed in sweep["seeds"]:
            rows = read_record(sweep_directory(out, family, lr), point.name, seed)
            if rows is None:
                raise SparsenetError(f"the sweep of family {family!r} has no record of lr {lr:g} seed {seed} yet")
            per_seed[seed] = rows[0]
        vals = [r.get("val_accuracy") or 0.0 for r in per_seed.values()]
        scores[f"{lr:g}"] = {"lr": lr, "val_accuracy_mean": sum(vals) / len(vals),
                             "val_accuracy": {str(s): r.get("val_accuracy") for s, r in per_seed.items()},
                             "best_epoch": {str(s): r.get("best_epoch") for s, r in per_seed.items()},
                             "status": {str(s): r["status"] for s, r in per_seed.items()},
                             "macs": {str(s): r.get("macs") for s, r in per_seed.items()}}
    best = max(scores.values(), key=lambda v: v["val_accuracy_mean"])   # first of ties (dicts keep order)
    return {"representative": point.name, "lrs": scores, "chosen_lr": best["lr"], "lr": best["lr"],
            "val_accuracy_mean": best["val_accuracy_mean"],
            "macs": {int(s): m for s, m in best["macs"].items() if m is not None}}


def run_sweep(experiment: Experiment, dataset, out: Path, progress: bool,
              log: Callable[[str], None], device=None) -> dict[str, float]:
    """Run (or reuse) the sweep on ``device``; returns family -> chosen learning rate and writes
    DIR/sweep.json."""
    sweep = experiment.sweep
    chosen: dict[str, float] = {}
    table: dict[str, Any] = {}
    for family in representatives(experiment):
        for lr in sweep["lrs"]:
            for seed in sweep["seeds"]:
                sweep_run(experiment, family, lr, seed, dataset, out, progress, log, device)
        choice = family_choice(experiment, out, family)
        chosen[family] = choice["lr"]
        table[family] = {k: choice[k] for k in ("representative", "lrs", "chosen_lr")}
        log(f"sweep {family}: chose lr {choice['lr']:g} (mean validation accuracy {choice['val_accuracy_mean']:.4f})")
    on_main(atomic_write_json, out / "sweep.json",
            {"rule": "highest mean validation accuracy over the sweep seeds (diverged = 0; ties: first listed)",
             "lrs": sweep["lrs"], "seeds": sweep["seeds"], "families": table, "chosen": chosen})
    return chosen
