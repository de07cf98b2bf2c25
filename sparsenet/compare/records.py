"""Per-run result records: one small JSON file per candidate and seed, without checkpoints.

``DIR/records/<candidate>/seed<k>.json`` holds the result rows of one run (a skeleton candidate's
also its control's): candidate, seed, accuracy (the epoch selected on validation when there is a
validation split), every epoch's validation and test accuracy, parameters, multiply-adds,
latency, wall time.  They are written when the run finishes and again after the latency phase,
and they are what to commit (``config.json`` and ``config.toml`` beside them): a rerun of the
same configuration into a directory that holds them (and not the run directories) reuses them
and trains nothing, on any machine, and :func:`recompute` turns them back into the pre-registered verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, jsonable

__all__ = ["record_path", "read_record", "reusable_record", "write_record", "read_records", "load_recorded", "recompute", "FORMAT"]

FORMAT = "sparsenet.compare.record"


def record_path(out: Path, name: str, seed: int) -> Path:
    return Path(out) / "records" / name / f"seed{seed}.json"


def write_record(out: Path, name: str, seed: int, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_json(record_path(out, name, seed), {"format": FORMAT, "version": 1, "candidate": name,
                                                           "seed": seed, "rows": jsonable(rows)})


def read_record(out: Path, name: str, seed: int) -> list[dict[str, Any]] | None:
    """The rows of a recorded run, or None when it has no record."""
    path = record_path(out, name, seed)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SparsenetError(f"{path} is not readable JSON ({exc}); delete it to rerun that run") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("candidate") != name \
            or data.get("seed") != seed or not isinstance(data.get("rows"), list) or not data["rows"]:
        raise SparsenetError(f"{path} is not the record of {name} seed {seed} (format {FORMAT!r}); "
                             "delete it to rerun that run")
    return data["rows"]


def reusable_record(out: Path, name: str, seed: int) -> list[dict[str, Any]] | None:
    """The recorded rows of a run whose run directory is absent (e.g. results copied to a new machine).

    Where the run directory exists it holds the full state (checkpoints, an interrupted epoch) and
    the run is resumed or reused from there instead.
    """
    if (Path(out) / "runs" / name / f"seed{seed}").exists():
        return None
    return read_record(out, name, seed)


def read_records(out: Path, experiment) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows of every recorded run in configuration order, shared rows once; the runs without a record)."""
    rows, have, missing = [], set(), []
    for seed in experiment.seeds:
        for point in experiment.points:
            got = read_record(out, point.name, seed)
            if got is None:
                missing.append(f"{point.name}/seed{seed}")
                continue
            for r in got:
                if (r["candidate"], r["seed"]) not in have:
                    have.add((r["candidate"], r["seed"]))
                    rows.append(r)
    return rows, missing


def load_recorded(out_dir: str | Path):
    """(experiment, stored config.json, rows, missing runs) of a compare directory, from its
    config.json and records alone."""
    from sparsenet.compare.experiment import parse_experiment
    from sparsenet.io import read_json
    from sparsenet.compare.runs import config_from_stored

    out = Path(out_dir)
    path = out / "config.json"
    if not path.is_file():
        raise SparsenetError(f"{out} holds no config.json; expected a `sparsenet compare --out` directory")
    stored = read_json(path, "a comparison's config.json")
    experiment = parse_experiment(config_from_stored(stored.get("config")), source=str(path))
    rows, missing = read_records(out, experiment)
    if not rows:
        raise SparsenetError(f"{out} holds no run records (records/<candidate>/seed<k>.json); nothing to summarise")
    return experiment, stored, rows, missing


def recompute(out_dir: str | Path, loaded=None) -> dict[str, Any]:
    """The pre-registered verdict (and the per-candidate table) from DIR's config.json and records
    alone (``loaded``: what :func:`load_recorded` already returned for DIR)."""
    from sparsenet.compare.summary import preregistered, summarise

    out = Path(out_dir)
    experiment, stored, rows, missing = loaded or load_recorded(out)
    sweep = out / "sweep.json"
    result = {"experiment": experiment.name, "source": stored.get("source"), "runs": len(rows), "missing": missing,
              "candidates": summarise(rows),
              "sweep": json.loads(sweep.read_text()).get("chosen") if sweep.exists() else None,
              "preregistered": preregistered(rows, experiment.preregistration, missing=len(missing))
              if experiment.preregistration else None}
    return jsonable(result)
