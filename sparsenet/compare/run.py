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
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from sparsenet import __version__
from sparsenet.errors import SparsenetError, TrainingDiverged
from sparsenet.compare.candidates import (analysis_settings, growth_config, load_data, preflight, registered_model,
                                          skeleton_name, skeleton_spec)
from sparsenet.compare.experiment import Experiment, Point, diff_configs, parse_experiment
from sparsenet.compare.latency import LATENCY_NOTE, latency_key, latency_phase, torch_threads
from sparsenet.compare.results import utc_now, write_outputs
from sparsenet.io import atomic_write_json, atomic_write_text

__all__ = ["run_comparison"]



# ----------------------------------------------------------------------------- setup

def _without_none(obj: Any) -> Any:
    """A normalized configuration back as TOML-like input (unset options are stored as null)."""
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_none(v) for v in obj]
    return obj


def _claim(out: Path, experiment: Experiment) -> bool:
    """Refuse a DIR that holds another configuration's results; True if DIR holds this one's."""
    path = out / "config.json"
    if not path.exists():
        if out.exists() and (out / "results.json").exists():
            raise SparsenetError(f"{out} holds results but no config.json; choose another --out")
        return False
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SparsenetError(f"{path} is not readable JSON ({exc}); choose another --out") from None
    now = json.loads(json.dumps(experiment.normalized))
    old = saved.get("config")
    try:  # fill in keys added to the schema since (at their defaults, which the old run used)
        old = json.loads(json.dumps(parse_experiment(_without_none(old)).normalized))
    except SparsenetError:
        pass  # not a valid configuration now: every difference is reported below
    diff = [d for d in diff_configs(old, now) if d != "experiment.description"]  # free text
    if diff:
        raise SparsenetError(f"{out} holds the results of another configuration ({saved.get('source')}); "
                             f"these keys differ: {', '.join(diff[:8])}{' ...' if len(diff) > 8 else ''}. "
                             "Rerun that configuration to resume it, or choose another --out")
    return True


# ----------------------------------------------------------------------------- training

def _run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / name / f"seed{seed}"


class Diverged(SparsenetError):
    """A training run whose loss became NaN/inf: recorded (diverged.json) as a failed run, not retried."""

    def __init__(self, message: str, record: dict[str, Any], fresh: bool):
        super().__init__(message)
        self.record, self.fresh = record, fresh


def _train(model_name: str, kwargs: dict[str, Any], dataset, experiment: Experiment, seed: int, run_dir: Path,
           progress: bool, extra: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Train (or reuse) one network in run_dir; returns (metrics, trained_now).

    A run that diverges is recorded in ``run_dir/diverged.json`` and raises :class:`Diverged`,
    now and on every rerun (the same seed and recipe diverge again; it is not retried).
    """
    from sparsenet.models.accounting import measure
    from sparsenet.training.loop import build_model, train

    done, failed = run_dir / "metrics.json", run_dir / "diverged.json"
    if done.exists():
        return json.loads(done.read_text()), False
    if failed.exists():
        record = json.loads(failed.read_text())
        raise Diverged(record["error"], record, fresh=False)
    model, kw = build_model(model_name, dataset, seed, kwargs)
    t0 = time.perf_counter()
    try:
        metrics = train(model, dataset, experiment.train_config(seed), model_name=model_name, model_kwargs=kw,
                        out_dir=run_dir, resume=(run_dir / "checkpoint.pt").exists(), progress=progress, extra=extra)
    except TrainingDiverged as exc:
        elapsed = time.perf_counter() - t0
        cost = measure(model, dataset.input_shape)  # the architecture's; the NaN weights do not matter
        record = {"status": "diverged", "error": str(exc), "model": model_name, "params": cost.params,
                  "macs": cost.macs, "time_s": elapsed, **extra}
        atomic_write_json(failed, record)
        raise Diverged(str(exc), record, fresh=True) from None
    return metrics, True


def _row(point: Point, seed: int, metrics: dict[str, Any], run_dir: Path, out: Path, **fields) -> dict[str, Any]:
    row = {
        "candidate": point.name, "group": point.group, "kind": point.kind, "role": point.role,
        "model": metrics["model"], "seed": seed, "accuracy": float(metrics["final_test_accuracy"]),
        "params": int(metrics["params"]), "macs": int(metrics["macs"]), "latency_ms": None,
        "train_time_s": float(metrics["wall_time_s"]),
        "width_mult": point.options.get("width_mult"), "compare_to": point.compare_to,
        "history": str((run_dir / "metrics.json").relative_to(out)),
        "checkpoint": str((run_dir / "checkpoint.pt").relative_to(out)),
        "status": "ok",
    }
    row.update(fields)
    return row


def _failed_row(point: Point, seed: int, record: dict[str, Any], **fields) -> dict[str, Any]:
    """A run that produced no trained network (diverged): no accuracy, no latency, kept in the results."""
    row = {
        "candidate": point.name, "group": point.group, "kind": point.kind, "role": point.role,
        "model": record.get("model"), "seed": seed, "accuracy": None, "params": record.get("params"),
        "macs": record.get("macs"), "latency_ms": None, "train_time_s": float(record.get("time_s", 0.0)),
        "width_mult": point.options.get("width_mult"), "compare_to": point.compare_to,
        "history": None, "checkpoint": None, "status": record.get("status", "diverged"), "error": record.get("error"),
    }
    row.update(fields)
    return row


def _run_point(point: Point, seed: int, dataset, experiment: Experiment, out: Path, progress: bool,
               log: Callable[[str], None]) -> tuple[list[dict[str, Any]], int]:
    """Train (or reuse) one candidate at one seed; returns (result rows, networks trained now)."""
    run_dir = _run_dir(out, point.name, seed)
    extra = {"candidate": point.name, "seed": seed, "experiment": experiment.name}
    if point.kind in ("googlenet_small", "plaincnn"):
        name, kwargs = registered_model(point)
        try:
            metrics, trained = _train(name, kwargs, dataset, experiment, seed, run_dir, progress, extra)
        except Diverged as exc:
            log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
            return [_failed_row(point, seed, exc.record)], int(exc.fresh)
        return [_row(point, seed, metrics, run_dir, out)], int(trained)
    if point.kind == "skeleton":
        return _run_skeleton(point, seed, dataset, experiment, out, run_dir, progress, log, extra)
    if point.kind == "grown":
        return _run_grown(point, seed, dataset, experiment, out, run_dir, progress, log, extra)
    raise AssertionError(point.kind)


def _run_skeleton(point, seed, dataset, experiment, out, run_dir, progress, log, extra):
    from sparsenet.training.checkpoint import model_from_checkpoint
    from sparsenet.compare.skeleton import discover_and_swap
    from sparsenet.builder.spec import load_spec, spec_to_dict

    o = point.options
    skeleton = skeleton_spec(point, dataset)
    control_name = skeleton_name(point)
    skel_dir = _run_dir(out, control_name, seed)
    control = Point(control_name, point.kind, "control", point.options, point.source, control_name)
    try:
        skel_metrics, t1 = _train("specnet", {"spec": spec_to_dict(skeleton)}, dataset, experiment, seed, skel_dir,
                                  progress, {**extra, "candidate": control_name, "part": "skeleton"})
    except Diverged as exc:
        log(f"    FAILED: the skeleton {control_name} diverged ({exc}); nothing to discover from at this seed")
        note = {"status": "skeleton diverged", "error": f"the skeleton {control_name} diverged: {exc}"}
        return [_failed_row(point, seed, note, stage=o["stage"], control=control_name),
                _failed_row(control, seed, exc.record)], int(exc.fresh)
    if not (run_dir / "network.json").exists():
        log(f"  discovering the input of stage {o['stage']} in the trained skeleton {control_name}")
        model, _ = model_from_checkpoint(skel_dir / "checkpoint.pt")
        swap = discover_and_swap(model, skeleton, o["stage"], dataset, analysis_settings(point, seed), run_dir,
                                 connectivity=o["connectivity"], tolerance=o["tolerance"])
    else:
        swap = json.loads((run_dir / "swap.json").read_text())
    swapped = load_spec(run_dir / "network.json", kind="network")
    details = {"stage": o["stage"], "connectivity": o["connectivity"], "control": control_name,
               "hand_module_macs": swap["hand_module_macs"], "module_macs": swap["module_macs"],
               "clusters": swap["clusters"], "kernel_sizes": swap["kernel_sizes"],
               "discovery": str((run_dir / "discovery").relative_to(out)),
               "pipeline_time_s": float(swap.get("time_s", 0.0))}   # discovery; the skeleton is the control row
    try:
        metrics, t2 = _train("specnet", {"spec": spec_to_dict(swapped)}, dataset, experiment, seed, run_dir,
                             progress, {**extra, "part": "swapped"})
    except Diverged as exc:
        log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
        return [_failed_row(point, seed, exc.record, **details),
                _row(control, seed, skel_metrics, skel_dir, out)], int(t1) + int(exc.fresh)
    rows = [_row(point, seed, metrics, run_dir, out, **details),
            _row(control, seed, skel_metrics, skel_dir, out)]
    return rows, int(t1) + int(t2)


def _run_grown(point, seed, dataset, experiment, out, run_dir, progress, log, extra):
    from sparsenet.grow import grow
    from sparsenet.builder.spec import load_spec, spec_to_dict

    grow_dir = run_dir / "grow"
    grown_now = 0
    if not (grow_dir / "metrics.json").exists():
        failed = run_dir / "diverged.json"
        if failed.exists():   # growth diverged earlier: not retried
            return [_failed_row(point, seed, json.loads(failed.read_text()))], 0
        log(f"  growing {point.options['modules']} module(s)")
        t0 = time.perf_counter()
        try:
            grow(dataset, growth_config(point), experiment.train_config(seed), analysis_settings(point, seed),
                 grow_dir, progress=progress)
        except TrainingDiverged as exc:
            record = {"status": "diverged", "error": f"while growing: {exc}", "model": "specnet",
                      "time_s": time.perf_counter() - t0, **extra}
            atomic_write_json(failed, record)
            log(f"    FAILED: {record['error']} (recorded in {failed}; not retried)")
            return [_failed_row(point, seed, record)], 1
        grown_now = 1
    summary = json.loads((grow_dir / "metrics.json").read_text())
    network = load_spec(grow_dir / "network.json", kind="network")
    grow_time = float(sum(s["wall_time_s"] for s in summary["steps"]))
    details = {"grow_accuracy": float(summary["final_test_accuracy"]), "modules": summary["modules"],
               "grow_time_s": grow_time, "budget_macs_per_module": summary.get("budget_macs_per_module"),
               "pipeline_time_s": grow_time}
    try:
        metrics, trained = _train("specnet", {"spec": spec_to_dict(network)}, dataset, experiment, seed, run_dir,
                                  progress, {**extra, "part": "retrained from scratch"})
    except Diverged as exc:
        log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
        return [_failed_row(point, seed, exc.record, **details)], grown_now + int(exc.fresh)
    return [_row(point, seed, metrics, run_dir, out, **details)], grown_now + int(trained)


# ----------------------------------------------------------------------------- the run

def run_comparison(experiment: Experiment, out_dir: str | Path, *, config_text: str | None = None,
                   progress: bool = True, log: Callable[[str], None] | None = None,
                   plots: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train and measure every candidate at every seed; write the outputs (see the module docstring).

    Everything that can be checked is checked before the first network is trained: the
    directory's stored configuration, the dataset, every candidate's network on its input.
    Returns the summary, with ``trained`` (networks trained in this call) and ``reused``.
    """
    log = log or (lambda msg: print(msg, flush=True))
    out = Path(out_dir)
    resuming = _claim(out, experiment)
    dataset = load_data(experiment)
    preflight(experiment, dataset)
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        atomic_write_json(out / "config.json", {"format": "sparsenet.compare.config", "version": 1,
                                                "source": experiment.source, "started_at": utc_now(),
                                                "config": experiment.normalized})
        if config_text is not None:
            atomic_write_text(out / "config.toml", config_text)
    meta = {"experiment": experiment.name, "description": experiment.description, "source": experiment.source,
            "dataset": {"name": dataset.name, "source": dataset.source, "input_shape": list(dataset.input_shape),
                        "train": len(dataset.x_train), "test": len(dataset.x_test),
                        "split_seed": experiment.data["split_seed"]},
            "train": experiment.train, "seeds": list(experiment.seeds),
            "threads": experiment.threads or torch.get_num_threads(), "latency_note": LATENCY_NOTE,
            "sparsenet_version": __version__, "torch": torch.__version__,
            "command": command or f"sparsenet compare --config {experiment.source} --out {out}",
            "started_at": json.loads((out / "config.json").read_text()).get("started_at")}
    rows: list[dict[str, Any]] = []
    trained = reused = 0
    total = len(experiment.seeds) * len(experiment.points)
    t_start = time.perf_counter()
    with torch_threads(experiment.threads):
        step = 0
        for seed in experiment.seeds:   # seed-major: complete seeds appear first
            for point in experiment.points:
                step += 1
                done = (_run_dir(out, point.name, seed) / "metrics.json").exists()
                log(f"[{step}/{total}] {point.name} seed {seed}: " + ("done earlier, reusing" if done else "training"))
                new_rows, n = _run_point(point, seed, dataset, experiment, out, progress, log)
                trained += n
                reused += int(n == 0)
                have = {(r["candidate"], r["seed"]) for r in rows}
                rows.extend(r for r in new_rows if (r["candidate"], r["seed"]) not in have)  # shared skeletons once
                if n and new_rows[0]["accuracy"] is not None:
                    log(f"    accuracy {new_rows[0]['accuracy']:.4f}, {new_rows[0]['macs']:,} mult-adds, "
                        f"{new_rows[0]['train_time_s']:.0f} s")
                if n:
                    write_outputs(out, rows, {**meta, "complete": False}, plots=False)  # partial, no latency yet
    trained_rows = [r for r in rows if r["status"] == "ok"]   # failed runs have no network to time
    latency = latency_phase(trained_rows, experiment, dataset, out, log)
    for r in trained_rows:
        r["latency_ms"] = latency["runs"][latency_key(r)]
    # training of every network (controls = shared skeletons, once each) + discovery and growth
    cost = sum(r["train_time_s"] + (r.get("pipeline_time_s") or 0.0) for r in rows)
    meta = {**meta, "complete": True, "latency": {k: v for k, v in latency.items() if k != "runs"},
            "train_cost_s": cost, "trained": trained, "reused": reused,
            "this_call_wall_s": time.perf_counter() - t_start}
    summary = write_outputs(out, rows, meta, plots=plots)
    log(f"wrote {out}/results.json, results.csv, summary.json, report.md"
        + (", " + ", ".join(summary["figures"].values()) if summary.get("figures") else ""))
    return summary
