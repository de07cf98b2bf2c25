"""Training every candidate at one seed in its run directory, resumable, with failed runs kept as such.

:func:`claim_output_dir` refuses a directory that holds another configuration's results;
:func:`run_point` trains (or reuses) one candidate at one seed under DIR/runs/<candidate>/seed<k>
and returns its result rows: a registered model directly, a skeleton candidate as its shared
skeleton (the control row) then the discovered swap, a grown candidate as its growth then its
final architecture retrained from scratch.  A finished run (metrics.json) is reused, an
interrupted one resumes from its epoch checkpoint, a diverged one (diverged.json) is recorded
as a failed row and not retried.

With a validation split the row's ``accuracy`` is the test accuracy of the epoch selected on
validation (``best_epoch``), and the row carries every epoch's validation and test accuracy
(``epochs``); ``[selection].patience`` stops a run early.  A candidate with ``match`` is built at
the width :func:`~sparsenet.compare.candidates.match_width` fits to ``target_macs`` (the matched
candidate's measured multiply-adds at the same seed).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from sparsenet.builder.spec import load_spec, spec_to_dict
from sparsenet.compare.candidates import (analysis_settings, growth_config, match_width, registered_model,
                                          skeleton_name, skeleton_spec)
from sparsenet.compare.experiment import Experiment, Point, diff_configs, parse_experiment
from sparsenet.compare.skeleton import discover_and_swap
from sparsenet.errors import SparsenetError, TrainingDiverged
from sparsenet.grow import grow
from sparsenet.distributed import on_main
from sparsenet.io import atomic_write_json
from sparsenet.models.accounting import measure
from sparsenet.models.external import parse_model_spec
from sparsenet.training.checkpoint import model_from_checkpoint
from sparsenet.training.loop import build_model, train

__all__ = ["claim_output_dir", "config_from_stored", "run_directory", "run_point", "Diverged"]


def _without_none(obj: Any) -> Any:
    """A normalized configuration back as TOML-like input (unset options are stored as null)."""
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_none(v) for v in obj]
    return obj


def config_from_stored(config: Any) -> Any:
    """A stored (normalized) configuration as parse_experiment input again."""
    out = _without_none(config)
    if isinstance(out, dict) and isinstance(out.get("experiment"), dict) and out["experiment"].get("description") == "":
        del out["experiment"]["description"]   # stored at its default, ""
    return out


def config_record(experiment: Experiment) -> dict[str, Any]:
    """What config.json holds: the normalised configuration an output directory belongs to."""
    from sparsenet.compare.results import utc_now

    return {"format": "sparsenet.compare.config", "version": 1, "source": experiment.source,
            "started_at": utc_now(), "config": experiment.normalized}


def claim_output_dir(out: Path, experiment: Experiment) -> bool:
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


def run_directory(out: Path, name: str, seed: int) -> Path:
    """DIR/runs/<candidate>/seed<k>: one candidate's run at one seed (done when metrics.json is there)."""
    return out / "runs" / name / f"seed{seed}"


class Diverged(SparsenetError):
    """A training run whose loss became NaN/inf: recorded (diverged.json) as a failed run, not retried."""

    def __init__(self, message: str, record: dict[str, Any], fresh: bool):
        super().__init__(message)
        self.record, self.fresh = record, fresh


def _train(model_name: str, kwargs: dict[str, Any], dataset, experiment: Experiment, seed: int, run_dir: Path,
           progress: bool, extra: dict[str, Any], device=None) -> tuple[dict[str, Any], bool]:
    """Train (or reuse) one network in run_dir; returns (metrics, trained_now).

    A run that diverges is recorded in ``run_dir/diverged.json`` and raises :class:`Diverged`,
    now and on every rerun (the same seed and recipe diverge again; it is not retried).
    """
    done, failed = run_dir / "metrics.json", run_dir / "diverged.json"
    if done.exists():
        return json.loads(done.read_text()), False
    if failed.exists():
        record = json.loads(failed.read_text())
        raise Diverged(record["error"], record, fresh=False)
    model, kw = build_model(model_name, dataset, seed, kwargs)
    t0 = time.perf_counter()
    patience = experiment.selection["patience"] if experiment.selection else 0
    try:
        metrics = train(model, dataset, experiment.train_config(seed), model_name=parse_model_spec(model_name).key,
                        model_kwargs=kw,
                        out_dir=run_dir, resume=(run_dir / "checkpoint.pt").exists(), progress=progress, extra=extra,
                        device=device, patience=patience)
    except TrainingDiverged as exc:
        elapsed = time.perf_counter() - t0
        cost = measure(model, dataset.input_shape)  # the architecture's; the NaN weights do not matter
        record = {"status": "diverged", "error": str(exc), "model": model_name, "params": cost.params,
                  "macs": cost.macs, "time_s": elapsed, **extra}
        on_main(atomic_write_json, failed, record)
        raise Diverged(str(exc), record, fresh=True) from None
    return metrics, True


def _selected(metrics: dict[str, Any]) -> dict[str, Any]:
    """The model-selection fields of a row: the epoch chosen on validation, and the per-epoch curves."""
    chosen = metrics.get("selection")
    if not chosen:
        return {}
    return {"accuracy": float(chosen["test_accuracy"]), "val_accuracy": float(chosen["val_accuracy"]),
            "best_epoch": int(chosen["epoch"]), "epochs_run": int(chosen["epochs_run"]),
            "last_test_accuracy": float(metrics["final_test_accuracy"]), "lr": float(metrics["config"]["lr"]),
            "epochs": [{k: e[k] for k in ("epoch", "train_loss", "val_accuracy", "test_accuracy")}
                       for e in metrics["epochs"]]}


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
    row.update(_selected(metrics))
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


def run_point(point: Point, seed: int, dataset, experiment: Experiment, out: Path, progress: bool,
               log: Callable[[str], None], device=None, target_macs: int | None = None
               ) -> tuple[list[dict[str, Any]], int]:
    """Train (or reuse) one candidate at one seed on ``device`` (training, and the recording of
    skeleton and grown candidates); returns (result rows, networks trained now).

    ``target_macs``: for a candidate with ``match``, the matched candidate's multiply-adds at this seed.
    """
    run_dir = run_directory(out, point.name, seed)
    extra = {"candidate": point.name, "seed": seed, "experiment": experiment.name}
    if point.kind in ("googlenet_small", "plaincnn", "model"):
        width, details = None, {}
        if point.options.get("match") is not None:
            if target_macs is None:
                raise SparsenetError(f"{point.name} seed {seed}: its match {point.options['match']!r} has no "
                                     "trained run at this seed to fit the multiply-adds to")
            width, macs = match_width(point, dataset, target_macs)
            details = {"match": point.options["match"], "target_macs": int(target_macs), "matched_width": width,
                       "width_mult": width if point.kind == "googlenet_small" else None,
                       "match_error": macs / target_macs - 1}
        name, kwargs = registered_model(point, width)
        try:
            metrics, trained = _train(name, kwargs, dataset, experiment, seed, run_dir, progress, extra, device)
        except Diverged as exc:
            log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
            return [_failed_row(point, seed, exc.record, **details)], int(exc.fresh)
        return [_row(point, seed, metrics, run_dir, out, **details)], int(trained)
    if point.kind == "skeleton":
        return _run_skeleton(point, seed, dataset, experiment, out, run_dir, progress, log, extra, device)
    if point.kind == "grown":
        return _run_grown(point, seed, dataset, experiment, out, run_dir, progress, log, extra, device)
    raise AssertionError(point.kind)


def _run_skeleton(point, seed, dataset, experiment, out, run_dir, progress, log, extra, device=None):
    o = point.options
    skeleton = skeleton_spec(point, dataset)
    control_name = skeleton_name(point)
    skel_dir = run_directory(out, control_name, seed)
    control = Point(control_name, point.kind, "control", point.options, point.source, control_name)
    try:
        skel_metrics, t1 = _train("specnet", {"spec": spec_to_dict(skeleton)}, dataset, experiment, seed, skel_dir,
                                  progress, {**extra, "candidate": control_name, "part": "skeleton"}, device)
    except Diverged as exc:
        log(f"    FAILED: the skeleton {control_name} diverged ({exc}); nothing to discover from at this seed")
        note = {"status": "skeleton diverged", "error": f"the skeleton {control_name} diverged: {exc}"}
        return [_failed_row(point, seed, note, stage=o["stage"], control=control_name),
                _failed_row(control, seed, exc.record)], int(exc.fresh)
    if not (run_dir / "network.json").exists():
        log(f"  discovering the input of stage {o['stage']} in the trained skeleton {control_name}")
        model, _ = model_from_checkpoint(skel_dir / "checkpoint.pt")
        # rank 0 discovers and writes; in a data-parallel comparison the other ranks then read its files
        on_main(discover_and_swap, model, skeleton, o["stage"], dataset, analysis_settings(point, seed), run_dir,
                connectivity=o["connectivity"], tolerance=o["tolerance"], device=device)
    swap = json.loads((run_dir / "swap.json").read_text())
    swapped = load_spec(run_dir / "network.json", kind="network")
    details = {"stage": o["stage"], "connectivity": o["connectivity"], "control": control_name,
               "hand_module_macs": swap["hand_module_macs"], "module_macs": swap["module_macs"],
               "clusters": swap["clusters"], "kernel_sizes": swap["kernel_sizes"],
               "discovery": str((run_dir / "discovery").relative_to(out)),
               "pipeline_time_s": float(swap.get("time_s", 0.0))}   # discovery; the skeleton is the control row
    try:
        metrics, t2 = _train("specnet", {"spec": spec_to_dict(swapped)}, dataset, experiment, seed, run_dir,
                             progress, {**extra, "part": "swapped"}, device)
    except Diverged as exc:
        log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
        return [_failed_row(point, seed, exc.record, **details),
                _row(control, seed, skel_metrics, skel_dir, out)], int(t1) + int(exc.fresh)
    rows = [_row(point, seed, metrics, run_dir, out, **details),
            _row(control, seed, skel_metrics, skel_dir, out)]
    return rows, int(t1) + int(t2)


def _run_grown(point, seed, dataset, experiment, out, run_dir, progress, log, extra, device=None):
    grow_dir = run_dir / "grow"
    grown_now = 0
    if not (grow_dir / "metrics.json").exists():
        failed = run_dir / "diverged.json"
        if failed.exists():   # growth diverged earlier: not retried
            return [_failed_row(point, seed, json.loads(failed.read_text()))], 0
        log(f"  growing {point.options['modules']} module(s)")
        t0 = time.perf_counter()
        try:
            step_recipe = experiment.train_config(seed)
            if point.options.get("grow_epochs") is not None:   # growth steps only need to train enough to discover
                step_recipe = replace(step_recipe, epochs=point.options["grow_epochs"])
            grow(dataset, growth_config(point), step_recipe, analysis_settings(point, seed),
                 grow_dir, progress=progress, device=device, ablation=point.options.get("ablation"))
        except TrainingDiverged as exc:
            record = {"status": "diverged", "error": f"while growing: {exc}", "model": "specnet",
                      "time_s": time.perf_counter() - t0, **extra}
            on_main(atomic_write_json, failed, record)
            log(f"    FAILED: {record['error']} (recorded in {failed}; not retried)")
            return [_failed_row(point, seed, record)], 1
        grown_now = 1
    summary = json.loads((grow_dir / "metrics.json").read_text())
    network = load_spec(grow_dir / "network.json", kind="network")
    grow_time = float(sum(s["wall_time_s"] for s in summary["steps"]))
    details = {"grow_accuracy": float(summary["final_test_accuracy"]), "modules": summary["modules"],
               "grow_time_s": grow_time, "budget_macs_per_module": summary.get("budget_macs_per_module"),
               "pipeline_time_s": grow_time, "ablation": point.options.get("ablation", "none"),
               "grown_kernel_sizes": [s.get("built_kernel_sizes", s.get("kernel_sizes")) for s in summary["steps"][1:]]}
    try:
        metrics, trained = _train("specnet", {"spec": spec_to_dict(network)}, dataset, experiment, seed, run_dir,
                                  progress, {**extra, "part": "retrained from scratch"}, device)
    except Diverged as exc:
        log(f"    FAILED: {exc} (recorded in {run_dir / 'diverged.json'}; not retried)")
        return [_failed_row(point, seed, exc.record, **details)], grown_now + int(exc.fresh)
    return [_row(point, seed, metrics, run_dir, out, **details)], grown_now + int(trained)
