"""The end of a comparison, shared by the serial loop (compare.run) and the workers (compare.grid):
the metadata summary.json carries, then, once every run has its rows, the latency phase, the
records again with latency, and the outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from sparsenet.compare.experiment import Experiment
from sparsenet.compare.latency import LATENCY_NOTE, latency_key, latency_phase
from sparsenet.compare.records import write_record
from sparsenet.compare.results import write_outputs
from sparsenet.version import __version__

__all__ = ["comparison_meta", "finish_comparison"]


def comparison_meta(experiment: Experiment, out: Path, dataset, command: str | None) -> dict[str, Any]:
    """The description of the comparison that summary.json carries (data, recipe, versions, command)."""
    return {"experiment": experiment.name, "description": experiment.description, "source": experiment.source,
            "dataset": {"name": dataset.name, "source": dataset.source, "input_shape": list(dataset.input_shape),
                        "train": len(dataset.x_train), "test": len(dataset.x_test),
                        **({"validation": len(dataset.x_val)} if dataset.x_val is not None else {}),
                        "split_seed": experiment.data["split_seed"]},
            "train": experiment.train, "seeds": list(experiment.seeds),
            "threads": experiment.threads or torch.get_num_threads(), "latency_note": LATENCY_NOTE,
            "sparsenet_version": __version__, "torch": torch.__version__,
            "command": command or f"sparsenet compare --config {experiment.source} --out {out}",
            "started_at": json.loads((out / "config.json").read_text()).get("started_at"),
            **({"preregistration": experiment.preregistration} if experiment.preregistration else {})}


def finish_comparison(experiment: Experiment, out: Path, dataset, rows: list[dict[str, Any]],
                      recorded: dict[tuple[str, int], list[tuple[str, int]]], meta: dict[str, Any],
                      log: Callable[[str], None], plots: bool, device, *, trained: int, reused: int,
                      t_start: float) -> dict[str, Any]:
    """Once every run has its rows: the latency phase, the records again with latency, and the outputs.

    ``recorded``: (candidate, seed) of each run -> the (candidate, seed) keys of the rows it recorded.
    """
    # failed runs have no network to time; recorded runs timed earlier (maybe elsewhere) keep their latency
    trained_rows = [r for r in rows if r["status"] == "ok" and not r.get("latency_ms")
                    and r.get("checkpoint") and (out / r["checkpoint"]).exists()]
    latency = latency_phase(trained_rows, experiment, dataset, out, log, device=device)
    for r in trained_rows:
        r["latency_ms"] = latency["runs"][latency_key(r)]
    by_key = {(r["candidate"], r["seed"]): r for r in rows}
    for (name, seed), keys in recorded.items():   # the records again, now with latency
        write_record(out, name, seed, [by_key[k] for k in keys])
    # training of every network (controls = shared skeletons, once each) + discovery and growth
    cost = sum(r["train_time_s"] + (r.get("pipeline_time_s") or 0.0) for r in rows)
    meta = {**meta, "complete": True, "latency": {k: v for k, v in latency.items() if k != "runs"},
            "train_cost_s": cost, "trained": trained, "reused": reused,
            "this_call_wall_s": time.perf_counter() - t_start}
    summary = write_outputs(out, rows, meta, plots=plots)
    log(f"wrote {out}/results.json, results.csv, summary.json, report.md"
        + (", " + ", ".join(summary["figures"].values()) if summary.get("figures") else ""))
    return summary
