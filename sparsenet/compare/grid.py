"""``compare --parallel runs``: the runs of an experiment shared out among workers through claim files.

Every worker (a torchrun rank, or a ``sparsenet compare --parallel runs`` started by hand on any
machine that sees the same ``--out``) walks the same list of tasks and takes the first one that is
ready and unclaimed, by an atomic claim file in ``DIR/claims/`` (:mod:`sparsenet.claims`); a task
is done when its record exists (``records/...``, written atomically when the run finishes).  The
tasks, in the order they are taken:

* ``sweep.<family>.lr<v>.seed<k>``: one run of the learning-rate sweep (when the experiment has
  ``[sweep]``); a matched representative waits for every sweep run of its target's family;
* ``run.<candidate>.seed<k>``: one candidate at one seed, seed-major like the serial loop.  It waits
  for every sweep run of its family (the chosen rate), for its ``match`` target at the same seed
  (the multiply-adds), and a skeleton candidate that shares its trained skeleton with an earlier
  one waits until that skeleton is trained (by the earlier candidate's task), so no skeleton is
  trained twice.

A worker with nothing ready waits (polling) while some unclaimed task is blocked, and leaves when
every remaining task is held by a live worker.  The worker that finds every record present writes
``sweep.json``, times the trained models and writes the results, summary and report (under the
``finish`` claim), so the last worker to finish writes them.  The results equal the serial
``compare``'s (up to timing fields): every run is trained from its own seeds, whichever process
runs it.  A killed worker leaves at most an interrupted run (its epoch checkpoint) and a claim
whose owner is gone; the next ``compare --parallel runs`` takes the claim over and resumes the run.
An error in a run releases its claim and stops that worker; the other workers' files stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sparsenet.claims import Claims
from sparsenet.compare.candidates import skeleton_name
from sparsenet.compare.experiment import Experiment, Point
from sparsenet.compare.records import read_record, read_records, write_record
from sparsenet.compare.runs import claim_output_dir, config_record, run_directory, run_point
from sparsenet.compare.sweep import family_choice, representatives, run_sweep, sweep_directory, sweep_run, with_lr
from sparsenet.distributed import World, threads_per_process, world
from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_create_json, atomic_create_text

__all__ = ["Task", "grid_tasks", "run_grid", "POLL_S"]

POLL_S = 1.0   # how often a worker with nothing ready looks again


@dataclass(frozen=True)
class Task:
    key: str                  # the claim's name
    kind: str                 # "sweep" | "run"
    point: Point
    seed: int
    family: str
    lr: float | None = None   # sweep tasks: the learning rate tried


def grid_tasks(experiment: Experiment) -> list[Task]:
    """Every task of the experiment, in the order workers take them (sweep first, then seed-major)."""
    tasks = []
    if experiment.sweep:
        for family, point in representatives(experiment).items():
            for lr in experiment.sweep["lrs"]:
                for seed in experiment.sweep["seeds"]:
                    tasks.append(Task(f"sweep.{family}.lr{lr:g}.seed{seed}", "sweep", point, seed, family, lr))
    for seed in experiment.seeds:
        for point in experiment.points:
            tasks.append(Task(f"run.{point.name}.seed{seed}", "run", point, seed, experiment.family(point)))
    return tasks


class _Grid:
    """The tasks of one experiment in one directory: done, ready, and doing one."""

    def __init__(self, experiment: Experiment, out: Path, dataset, progress: bool, log, device):
        self.experiment, self.out, self.dataset = experiment, out, dataset
        self.progress, self.log, self.device = progress, log, device
        self.tasks = grid_tasks(experiment)
        self.sweep_tasks = {}
        for t in self.tasks:
            if t.kind == "sweep":
                self.sweep_tasks.setdefault(t.family, []).append(t)
        self.first_with_skeleton: dict[str, Point] = {}
        for p in experiment.points:
            if p.kind == "skeleton":
                self.first_with_skeleton.setdefault(skeleton_name(p), p)

    def done(self, t: Task) -> bool:
        if t.kind == "sweep":
            return read_record(sweep_directory(self.out, t.family, t.lr), t.point.name, t.seed) is not None
        return read_record(self.out, t.point.name, t.seed) is not None

    def _family_swept(self, family: str) -> bool:
        return all(self.done(t) for t in self.sweep_tasks.get(family, ()))

    def ready(self, t: Task) -> bool:
        match = t.point.options.get("match")
        if t.kind == "sweep":
            return match is None or self._family_swept(self.experiment.family(self.experiment.point(match)))
        if not self._family_swept(t.family):
            return False
        if match is not None and read_record(self.out, match, t.seed) is None:
            return False
        if t.point.kind == "skeleton":
            first = self.first_with_skeleton[skeleton_name(t.point)]
            if first.name != t.point.name and read_record(self.out, first.name, t.seed) is None:
                skel = run_directory(self.out, skeleton_name(t.point), t.seed)
                return (skel / "metrics.json").exists() or (skel / "diverged.json").exists()
        return True

    def execute(self, t: Task) -> None:
        e = self.experiment
        if t.kind == "sweep":
            sweep_run(e, t.family, t.lr, t.seed, self.dataset, self.out, self.progress, self.log, self.device)
            return
        setting = with_lr(e, family_choice(e, self.out, t.family)["lr"]) if e.sweep else e
        target = None
        match = t.point.options.get("match")
        if match is not None:
            target = next((r["macs"] for r in read_record(self.out, match, t.seed) or []
                           if r["candidate"] == match and r.get("macs") is not None), None)
        rows, n = run_point(t.point, t.seed, self.dataset, setting, self.out, self.progress, self.log, self.device,
                            target_macs=target)
        write_record(self.out, t.point.name, t.seed, rows)
        if n and rows[0]["accuracy"] is not None:
            self.log(f"    {t.key}: accuracy {rows[0]['accuracy']:.4f}, {rows[0]['macs']:,} mult-adds, "
                     f"{rows[0]['train_time_s']:.0f} s")


def _work(grid: _Grid, claims: Claims, log) -> int:
    """Do tasks until every one is done or held by another live worker; returns the tasks done here."""
    done_here = 0
    waiting_since = None
    while True:
        pending = [t for t in grid.tasks if not grid.done(t)]
        if not pending:
            return done_here
        took = None
        for t in pending:
            if grid.ready(t) and claims.try_claim(t.key):
                took = t
                break
        if took is not None:
            waiting_since = None
            try:
                if not grid.done(took):   # another worker may have finished it since we looked
                    log(f"{took.key}: {'resuming' if _started(grid, took) else 'training'}")
                    grid.execute(took)
                    done_here += 1
            finally:
                claims.release(took.key)
            continue
        if all(claims.holder(t.key) is not None for t in pending):
            log(f"the {len(pending)} remaining task(s) are held by other workers: "
                + ", ".join(t.key for t in pending[:4]) + (" ..." if len(pending) > 4 else ""))
            return done_here
        if waiting_since is None:
            waiting_since = time.monotonic()
            log("waiting: the ready tasks are held by other workers, the others wait for them")
        time.sleep(POLL_S)


def _started(grid: _Grid, t: Task) -> bool:
    base = sweep_directory(grid.out, t.family, t.lr) if t.kind == "sweep" else grid.out
    return run_directory(base, t.point.name, t.seed).exists()


def _write_config(experiment: Experiment, out: Path, config_text: str | None) -> None:
    """config.json (and config.toml) written once, by the first worker; the others check it is theirs."""
    out.mkdir(parents=True, exist_ok=True)
    created = atomic_create_json(out / "config.json", config_record(experiment))
    if not created:
        claim_output_dir(out, experiment)   # another worker's: refused if it is another configuration
    if config_text is not None:
        atomic_create_text(out / "config.toml", config_text)


def run_grid(experiment: Experiment, out: Path, dataset, *, config_text: str | None, progress: bool,
             log: Callable[[str], None], plots: bool, command: str | None, device,
             here: World | None = None) -> dict[str, Any]:
    """One worker of ``compare --parallel runs`` (see the module docstring).

    Returns the summary when this worker wrote the outputs; otherwise ``{"finished": False, ...}``
    with the tasks it did (``trained``).
    """
    from sparsenet.compare.latency import torch_threads
    from sparsenet.compare.finish import comparison_meta, finish_comparison

    here = here or world()
    tag = f"[{here.label}] " if here.world_size > 1 else ""
    say = (lambda msg: log(tag + msg)) if tag else log
    _write_config(experiment, out, config_text)
    t_start = time.perf_counter()
    grid = _Grid(experiment, out, dataset, progress and here.main, say, device)
    with Claims(out / "claims", {"rank": here.rank, "world_size": here.world_size}) as claims, \
            torch_threads(threads_per_process(experiment.threads, here)):
        did = _work(grid, claims, say)
        if any(not grid.done(t) for t in grid.tasks) or not claims.try_claim("finish"):
            return {"finished": False, "trained": did, "reused": 0, "rank": here.rank,
                    "world_size": here.world_size}
        say("every run is recorded: writing the summary")
        meta = comparison_meta(experiment, out, dataset, command)
        meta["parallel"] = {"mode": "runs", "world_size": here.world_size, "finished_by_rank": here.rank}
        if experiment.sweep:
            meta["sweep"] = run_sweep(experiment, dataset, out, False, say, device)   # trains nothing now
        rows, missing = read_records(out, experiment)
        if missing:
            raise SparsenetError(f"{out}: runs without a record after every task was done: {missing}")
        recorded = {(p.name, s): [(r["candidate"], r["seed"]) for r in read_record(out, p.name, s)]
                    for s in experiment.seeds for p in experiment.points}
        summary = finish_comparison(experiment, out, dataset, rows, recorded, meta, say, plots, device,
                                    trained=did, reused=len(recorded) - did, t_start=t_start)
    return {**summary, "finished": True}
