"""The benchmark entry point: run the measurements, print the table, write the JSON."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

from sparsenet.errors import SparsenetError
from sparsenet.limits import MAX_THREADS
from sparsenet.numbers import measured

MEASUREMENTS = ("stats_cost", "stats_machine", "clustering", "hardware", "inference")
USER_MEASUREMENTS = ("model",)  # run when the user names a model (bench.model)


def _measure(key: str, sizes, grown, user=None) -> tuple[dict, Callable[[dict], list[dict]]]:
    import torch

    if key == "model":
        from sparsenet.bench import model as m

        return m.run(**user, batches=sizes.inference_batches, repeats=sizes.repeats), m.summary_rows

    if key == "stats_cost":
        from sparsenet.bench import stats_cost as m

        return m.run(list(sizes.cost_cases), sizes.repeats), m.summary_rows
    if key == "stats_machine":
        from sparsenet.bench import stats_machine as m

        return m.run(channels=sizes.machine_channels, size=sizes.machine_size,
                     batch=sizes.machine_batch, samples=sizes.machine_samples,
                     rate_configs=list(sizes.machine_rate_configs),
                     memory_config=sizes.machine_memory_config,
                     default_threads=torch.get_num_threads()), m.summary_rows
    if key == "clustering":
        from sparsenet.bench import clustering as m

        return m.run(channels=sizes.cluster_channels,
                     significance_channels=sizes.cluster_significance_channels,
                     images=sizes.cluster_images, size=sizes.cluster_size,
                     n_permutations=sizes.cluster_permutations,
                     n_resamples=sizes.cluster_resamples,
                     repeats=sizes.repeats), m.summary_rows
    if key == "hardware":
        from sparsenet.bench import hardware as m

        return m.run(channels=sizes.hw_channels, clusters=sizes.hw_clusters, size=sizes.hw_size,
                     batch=sizes.hw_batch, repeats=sizes.repeats,
                     sweep=sizes.hw_layout_sweep), m.summary_rows
    if key == "inference":
        from sparsenet.bench import inference as m

        return m.run(grown=grown, batches=sizes.inference_batches, repeats=sizes.inference_repeats,
                     planted_modules=sizes.planted_modules), m.summary_rows
    raise SparsenetError(f"unknown measurement {key!r}; accepted: {', '.join(MEASUREMENTS)}")

def table(rows: list[dict]) -> str:
    head = ("measurement", "case", "value", "target", "ok")
    cells = [[r["measurement"], r["case"], measured(r["value"]), r["target"],
              "" if r["ok"] is None else ("yes" if r["ok"] else "MISSED")] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join(lines)


def run(*, mode: str = "full", only: list[str] | None = None, out: str | Path = "benchmarks/results",
        name: str | None = None, threads: int | None = None, figures: str | Path | None = None,
        grown: str | Path | None = None, command: str | None = None,
        progress: bool = True, user: dict | None = None) -> dict:
    """Run the measurements of ``mode`` (full, quick or tiny); write ``<out>/<name>.json``.

    ``user`` (model, model_args, weights, input_size, device: see :mod:`sparsenet.bench.model`)
    measures the user's model; then only that runs unless ``only`` names more."""
    import torch

    from sparsenet.bench.sizes import MODES
    from sparsenet.timing import load_average, machine_info
    from sparsenet.io import atomic_write_json, jsonable

    from sparsenet.io import check_out_dir

    if mode not in MODES:
        raise SparsenetError(f"unknown mode {mode!r}; accepted: {', '.join(MODES)}")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SparsenetError(f"--name {name!r} is not a file name; expected letters, digits, '_', '-' or '.', "
                             "without a folder (the file is written into --out)")
    check_out_dir(out)
    if figures is not None:
        check_out_dir(figures, "--figures")
    keys = list(only) if only else ([] if user else list(MEASUREMENTS))
    keys = (["model"] if user else []) + [k for k in keys if k != "model"]
    bad = [k for k in keys if k not in MEASUREMENTS + (USER_MEASUREMENTS if user else ())]
    if bad:
        raise SparsenetError(f"unknown measurement {bad[0]!r}; accepted: "
                             f"{', '.join(MEASUREMENTS + (USER_MEASUREMENTS if user else ()))}")
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise SparsenetError(f"--threads must be from 1 to {MAX_THREADS:,}; got {threads}")
        torch.set_num_threads(threads)
    sizes = MODES[mode]
    if grown is None and mode != "tiny":
        from sparsenet.bench.inference import DEFAULT_GROWN

        grown = DEFAULT_GROWN if DEFAULT_GROWN.is_file() else None
    name = name or mode
    result: dict[str, Any] = {
        "format": "sparsenet.bench", "version": 1, "name": name, "mode": mode,
        "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(), "measurements": {}, "summary": [], "wall_s": {},
    }
    t_all = time.perf_counter()
    for key in keys:
        if progress:
            print(f"[bench] {key} ({mode}) ...", flush=True)
        t0 = time.perf_counter()
        data, summarise = _measure(key, sizes, grown, user)
        result["wall_s"][key] = round(time.perf_counter() - t0, 2)
        result["measurements"][key] = data
        rows = summarise(data)
        for r in rows:
            r["key"] = key
        result["summary"] += rows
        if progress:
            print(table(rows), flush=True)
            print(f"[bench] {key}: {result['wall_s'][key]:.1f} s, load {load_average()}", flush=True)
    result["wall_s"]["total"] = round(time.perf_counter() - t_all, 2)
    result["load_average_end"] = load_average()
    result["torch_threads"] = torch.get_num_threads()
    path = Path(out) / f"{name}.json"
    atomic_write_json(path, jsonable(result))
    result["path"] = str(path)
    if figures is not None:
        from sparsenet.bench.plots import plot_all

        result["figures"] = [str(p) for p in plot_all(result, figures)]
    if progress:
        print()
        print(table(result["summary"]))
        print(f"\nmachine: {result['machine']['nproc']} CPUs ({result['machine']['cpu_model']}), torch "
              f"{result['machine']['torch']} with {result['torch_threads']} thread(s); load average "
              f"{result['machine']['load_average_1_5_15']} at the start, {result['load_average_end']} "
              f"at the end; {result['wall_s']['total']:.0f} s")
        print(f"wrote {path}" + (f" and {len(result['figures'])} figure(s) in {figures}"
                                 if figures is not None else ""))
    return result


def read_results(path: str | Path) -> dict:
    """A results file written by ``run``."""
    from sparsenet.io import read_json

    if not Path(path).is_file():
        raise SparsenetError(f"no benchmark results file at {path}; accepted: a JSON file `sparsenet bench` wrote")
    data = read_json(path, "a benchmark results file")
    if not isinstance(data, dict) or data.get("format") != "sparsenet.bench" \
            or not isinstance(data.get("measurements"), dict):
        raise SparsenetError(f"{path} is not a benchmark results file: expected a JSON object with "
                             "format 'sparsenet.bench' and its measurements, as `sparsenet bench` writes")
    known = [k for k in data["measurements"] if k in MEASUREMENTS]
    if not known:
        raise SparsenetError(f"{path} holds no measurement to plot; expected some of {', '.join(MEASUREMENTS)}")
    return data


def replot(results: str | Path, figures: str | Path, before: str | Path | None = None) -> list[Path]:
    """Draw the plots of an existing results file (and, faded beside it, an earlier one)."""
    from sparsenet.bench.plots import plot_all
    from sparsenet.io import check_out_dir

    result = read_results(results)
    earlier = read_results(before) if before else None
    check_out_dir(figures, "--figures")
    return plot_all(result, figures, before=earlier)
