"""The comparator: discovered topologies against hand-designed GoogLeNet, same data, recipe and seeds.

``run_comparison(experiment, out_dir)`` trains every candidate of an :class:`~sparsenet.compare.experiment.Experiment`
once per seed, then times CPU inference of all trained models together, and writes::

    DIR/config.json        the validated configuration (a rerun with another one is refused)
    DIR/config.toml        the configuration file as given
    DIR/runs/<candidate>/seed<k>/   checkpoint.pt, metrics.json (written last: the run is done)
        skeleton candidates also: discovery/, module.json, swap.json, network.json (the swapped
        network); grown candidates also: grow/ (sparsenet.grow's directory)
    DIR/runs/skeleton@<width>x<modules>/seed<k>/   the trained skeleton(s) the swaps start from
        (shared by the skeleton candidates with the same skeleton; reported as its control)
    DIR/records/<candidate>/seed<k>.json   each run's result rows, small, no checkpoint (commit these;
        a rerun reuses them, see sparsenet.compare.records)
    DIR/sweep/, sweep.json the learning-rate sweep, when the configuration has [sweep]
    DIR/latency.json       the latency phase (settings and per-run medians)
    DIR/results.json       a list of runs: candidate, kind, role, model, seed, accuracy, params,
                           macs, latency_ms {"b1": ms per batch of 1, "b64": ms per batch of 64},
                           train_time_s, history (path of the run's metrics.json, per-epoch curve)
    DIR/results.csv        the same, flat
    DIR/summary.json       per-candidate statistics and the matched-MACs tests
    DIR/report.md          the summary for people, with the plots DIR/pareto.png, latency.png, curves.png

Roles: ``hand`` (googlenet_small at each width multiplier: the hand-designed curve), ``baseline``
(plaincnn), ``discovered`` (a grown network, or a discovered module swapped into the GoogLeNet
skeleton) and ``control`` (the unswapped skeleton the swaps started from: googlenet_small as a spec,
trained with the same seed; named ``skeleton@<width>x<modules>``).  Every network is trained from scratch with the same recipe,
seeds and data split; grown networks are grown with the recipe, then their final architecture
is retrained from scratch (so they get no extra epochs).

A run whose loss becomes NaN/inf does not stop the experiment: it is recorded in
``runs/<candidate>/seed<k>/diverged.json`` and in results.json (status "diverged", no accuracy),
left out of the means, named in the report, and not retried on a rerun.

Rerunning the same configuration into the same DIR reuses every finished run
(``metrics.json`` present) and resumes interrupted ones from their epoch checkpoint; the
latency phase is reused when it covers every run with the same settings.

Under torchrun without ``--parallel`` every network is trained data-parallel by all the ranks
(``DistributedDataParallel``, see :mod:`sparsenet.training.loop`): every rank walks the same runs
and holds the same metrics; rank 0 alone writes, the discoveries of skeleton candidates and the
latency phase run on rank 0, and the others wait for it (:func:`sparsenet.distributed.on_main`).
With ``--parallel runs`` each rank trains its own runs alone instead (:mod:`sparsenet.compare.grid`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from sparsenet.compare.candidates import load_data, preflight
from sparsenet.compare.experiment import Experiment
from sparsenet.compare.finish import comparison_meta, finish_comparison
from sparsenet.compare.latency import torch_threads
from sparsenet.compare.records import reusable_record, write_record
from sparsenet.compare.results import write_outputs
from sparsenet.compare.runs import claim_output_dir, config_record, run_directory, run_point
from sparsenet.compare.sweep import run_sweep, with_lr
from sparsenet.distributed import barrier, on_main, per_rank_batch, process_group, solo, writes_here
from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, atomic_write_text, entries, roll_back

__all__ = ["run_comparison", "eta_text"]


def eta_text(seconds: float) -> str:
    """Seconds as the time left: '40 s', '12 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run_comparison(experiment: Experiment, out_dir: str | Path, *, config_text: str | None = None,
                   progress: bool = True, log: Callable[[str], None] | None = None,
                   plots: bool = True, command: str | None = None, device=None,
                   trusted=(), parallel: str | None = None) -> dict[str, Any]:
    """Train and measure every candidate at every seed; write the outputs (see the module docstring).

    Everything that can be checked is checked before the first network is trained: the
    directory's stored configuration, the dataset, every candidate's network on its input.
    Returns the summary, with ``trained`` (networks trained in this call) and ``reused``.
    ``device`` (``auto``/None: CUDA when available) trains the networks and times them;
    ``trusted``: the import paths of model candidates the user named (``--trust-model``).
    ``parallel="runs"``: this process is one of several workers sharing the runs (torchrun ranks, or
    processes on machines that share ``out_dir``; see :mod:`sparsenet.compare.grid`); the worker
    that finishes last writes the outputs, and an error leaves the other workers' files in place.
    """
    from sparsenet.device import resolve_device

    if parallel not in (None, "runs"):
        raise SparsenetError(f"parallel={parallel!r}: expected 'runs' (the runs shared out among workers) or None")
    device = resolve_device(device)
    if parallel is not None:
        with solo():   # each worker trains its own runs alone
            return _compare(experiment, out_dir, config_text, progress, log, plots, command, device, trusted,
                            parallel)
    with process_group(device):   # several torchrun ranks: every training data-parallel
        return _compare(experiment, out_dir, config_text, progress, log, plots, command, device, trusted, parallel)


def _compare(experiment, out_dir, config_text, progress, log, plots, command, device, trusted, parallel):
    from sparsenet.distributed import data_parallel

    here = data_parallel()
    progress = progress and writes_here()
    if log is None and not writes_here():
        log = lambda msg: None   # noqa: E731  (rank 0 tells)
    log = log or (lambda msg: print(msg, flush=True))
    out = Path(out_dir)
    if here is not None:   # refused before anything loads
        per_rank_batch(experiment.train_config(experiment.seeds[0]).batch_size, here)
    resuming = claim_output_dir(out, experiment)
    barrier()   # every rank has read --out before rank 0 writes into it
    dataset = load_data(experiment)
    preflight(experiment, dataset, trusted)
    if parallel is not None:
        from sparsenet.compare.grid import run_grid

        return run_grid(experiment, out, dataset, config_text=config_text, progress=progress, log=log, plots=plots,
                        command=command, device=device)
    before = entries(out)
    try:
        summary = _run(experiment, out, dataset, resuming, config_text, progress, log, plots, command, device)
    except SparsenetError:
        if writes_here():
            roll_back(out, before)  # a refused comparison leaves --out as it was; an interrupted one stays to resume
        raise
    if summary is None:   # a rank other than 0 of a data-parallel comparison: rank 0 wrote the outputs
        return {"finished": False, "data_parallel": True, "rank": here.rank, "world_size": here.world_size}
    if here is not None:
        summary["data_parallel"] = {"world_size": here.world_size}
    return summary


def _run(experiment: Experiment, out: Path, dataset, resuming: bool, config_text, progress, log, plots,
         command, device) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        on_main(_write_config, experiment, out, config_text)
    meta = comparison_meta(experiment, out, dataset, command)
    rows: list[dict[str, Any]] = []
    trained = reused = 0
    total = len(experiment.seeds) * len(experiment.points)
    t_start = time.perf_counter()
    recorded: dict[tuple[str, int], list[tuple[str, int]]] = {}   # (point, seed) -> its rows' keys
    with torch_threads(experiment.threads):
        lrs = run_sweep(experiment, dataset, out, progress, log, device) if experiment.sweep else {}
        if lrs:
            meta["sweep"] = lrs
        step, busy_s, runs_timed = 0, 0.0, 0
        logging.getLogger(__name__).info("compare %s into %s: %d runs, config %s", experiment.source, out, total,
                                         experiment.normalized)
        for seed in experiment.seeds:   # seed-major: complete seeds appear first
            for point in experiment.points:
                step += 1
                record = reusable_record(out, point.name, seed)
                done = record is not None or (run_directory(out, point.name, seed) / "metrics.json").exists()
                eta = f" (ETA {eta_text(busy_s / runs_timed * (total - step + 1))})" if runs_timed and not done else ""
                log(f"[{step}/{total}] {point.name} seed {seed}: " + ("done earlier, reusing" if done else "training")
                    + eta)
                t_run = time.perf_counter()
                if record is not None:
                    new_rows, n = record, 0
                else:
                    family = experiment.family(point)
                    setting = with_lr(experiment, lrs[family]) if family in lrs else experiment
                    target = next((r["macs"] for r in rows if r["candidate"] == point.options.get("match")
                                   and r["seed"] == seed and r.get("macs") is not None), None)
                    new_rows, n = run_point(point, seed, dataset, setting, out, progress, log, device,
                                            target_macs=target)
                    on_main(write_record, out, point.name, seed, new_rows)
                if n:
                    busy_s, runs_timed = busy_s + time.perf_counter() - t_run, runs_timed + 1
                recorded[(point.name, seed)] = [(r["candidate"], r["seed"]) for r in new_rows]
                trained += n
                reused += int(n == 0)
                have = {(r["candidate"], r["seed"]) for r in rows}
                rows.extend(r for r in new_rows if (r["candidate"], r["seed"]) not in have)  # shared skeletons once
                if n and new_rows[0]["accuracy"] is not None:
                    log(f"    accuracy {new_rows[0]['accuracy']:.4f}, {new_rows[0]['macs']:,} mult-adds, "
                        f"{new_rows[0]['train_time_s']:.0f} s")
                if n:
                    on_main(write_outputs, out, rows, {**meta, "complete": False, "runs_missing": total - step},
                            plots=False)  # partial, no latency yet, nothing decided
    return on_main(finish_comparison, experiment, out, dataset, rows, recorded, meta, log, plots, device,
                   trained=trained, reused=reused, t_start=t_start)


def _write_config(experiment: Experiment, out: Path, config_text: str | None) -> None:
    atomic_write_json(out / "config.json", config_record(experiment))
    if config_text is not None:
        atomic_write_text(out / "config.toml", config_text)
