"""The result files of a comparison directory: results.json and .csv, summary.json, report.md, figures.

``write_outputs`` writes them all from the result rows (after every newly trained run, and at the
end with latency and figures); ``read_results`` reads a finished directory back, for
analysis/make_results.py; ``training_histories`` reads each run's per-epoch curve (from its record or metrics.json).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sparsenet.compare.plots import plot_all
from sparsenet.compare.report import render_report
from sparsenet.compare.summary import matched_comparisons, paired_controls, preregistered, summarise
from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, atomic_write_text, jsonable

__all__ = ["write_outputs", "read_results", "training_histories", "utc_now", "CSV_FIELDS"]

CSV_FIELDS = ["candidate", "group", "kind", "role", "model", "seed", "status", "accuracy", "params", "macs",
              "latency_b1_ms", "latency_b64_ms", "train_time_s", "width_mult", "compare_to", "history"]


def utc_now() -> str:
    """The time stamp of config.json's started_at and summary.json's written_at (UTC, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        lat = r.get("latency_ms") or {}
        writer.writerow({**r, "latency_b1_ms": lat.get("b1", ""), "latency_b64_ms": lat.get("b64", ""),
                         "width_mult": "" if r.get("width_mult") is None else r["width_mult"],
                         "compare_to": r.get("compare_to") or ""})
    return buf.getvalue()


def write_outputs(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any], *, plots: bool = True) -> dict[str, Any]:
    """results.json, results.csv, summary.json, report.md and (with ``plots``) the figures."""
    summary = {**meta, "written_at": utc_now(), "candidates": summarise(rows), "matched": matched_comparisons(rows),
               "controls": paired_controls(rows)}
    if meta.get("preregistration"):   # the declared comparisons, paired by seed
        summary["preregistered"] = preregistered(rows, meta["preregistration"], missing=meta.get("runs_missing", 0))
    summary = jsonable(summary)
    atomic_write_json(out / "results.json", jsonable(rows))
    atomic_write_text(out / "results.csv", _csv(rows))
    figures = plot_all(rows, summary, out, curves=training_histories(out, rows)) if plots else {}
    summary["figures"] = {k: Path(v).name for k, v in figures.items()}
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", render_report(summary, rows))
    return summary


def training_histories(out: Path, rows) -> tuple[dict[str, list[list[float]]], str]:
    """(per candidate the accuracy-per-epoch list of each seed, the metric's key), from the row's own
    ``epochs`` (the committed records carry them) or else its metrics.json.  Validation accuracy
    when every run has it (the curve model selection looked at), test accuracy otherwise."""
    per_run: dict[str, list[list[dict]]] = {}
    for r in rows:
        epochs = r.get("epochs")
        if not epochs and r.get("history") and (out / r["history"]).exists():
            epochs = json.loads((out / r["history"]).read_text()).get("epochs", [])
        if epochs:
            per_run.setdefault(r["candidate"], []).append(epochs)
    key = curve_metric(per_run)
    return {name: [[e[key] for e in run] for run in runs] for name, runs in per_run.items()}, key


def curve_metric(per_run: dict[str, list[list[dict]]]) -> str:
    """'val_accuracy' when every epoch of every run has one, else 'test_accuracy'."""
    every = [e for runs in per_run.values() for run in runs for e in run]
    return "val_accuracy" if every and all(e.get("val_accuracy") is not None for e in every) else "test_accuracy"


def read_results(out_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, summary) of a comparison directory."""
    out = Path(out_dir)
    for name in ("results.json", "summary.json"):
        if not (out / name).is_file():
            raise SparsenetError(f"{out} holds no {name}; run `sparsenet compare --out {out}` first")
    return json.loads((out / "results.json").read_text()), json.loads((out / "summary.json").read_text())
