"""CPU inference latency, measured after all training with every trained model in the same process.

``latency_phase`` loads each trained run's checkpoint and times them all together, interleaved
(:func:`measure_latency`), into DIR/latency.json; the result rows get ``latency_ms`` from it.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch

from sparsenet.compare.experiment import Experiment
from sparsenet.io import atomic_write_json
from sparsenet.training.checkpoint import model_from_checkpoint

__all__ = ["measure_latency", "latency_phase", "latency_key", "torch_threads", "LATENCY_NOTE"]

LATENCY_NOTE = ("latency_ms.b1: milliseconds per forward pass of a batch of 1 image; latency_ms.b64: "
                "milliseconds per forward pass of a batch of 64 images (divide by 64 for per image); "
                "median over repeats, eval mode, torch.inference_mode, CPU")


@contextmanager
def torch_threads(n: int | None):
    """torch's thread count set to ``n`` for the block (unchanged when None), restored after it."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_latency(models: dict[str, torch.nn.Module], input_shape, *, threads: int = 1, warmup: int = 3,
                    repeats: int = 10, batch_sizes=(1, 64), device=None) -> dict[str, dict[str, float]]:
    """Median forward time (ms) per batch of each size, for every model, timed interleaved.

    All models are warmed up first; then each repeat times every model once per batch size, in
    an order rotated by one model per repeat (so drift in the machine's speed spreads over all
    models instead of favouring the first).  Same thread count and inputs for all.  On a
    ``device`` other than the CPU each forward pass is timed to its end (``synchronize``).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if not models:
        return {}
    gen = torch.Generator().manual_seed(0)
    inputs = {f"b{b}": torch.randn(b, *input_shape, generator=gen).to(device) for b in batch_sizes}
    keys = list(models)
    samples = {k: {b: [] for b in inputs} for k in keys}
    with torch_threads(threads), torch.inference_mode():
        for m in models.values():
            m.to(device).eval()
        for _ in range(warmup):
            for k in keys:
                for x in inputs.values():
                    models[k](x)
        for r in range(repeats):
            shift = r % len(keys)
            for k in keys[shift:] + keys[:shift]:
                for b, x in inputs.items():
                    sync()
                    t0 = time.perf_counter()
                    models[k](x)
                    sync()
                    samples[k][b].append((time.perf_counter() - t0) * 1000.0)
    return {k: {b: float(statistics.median(v)) for b, v in s.items()} for k, s in samples.items()}


def latency_key(row: dict[str, Any]) -> str:
    """A run's key in latency.json: '<candidate>/seed<k>'."""
    return f"{row['candidate']}/seed{row['seed']}"


def latency_phase(rows: list[dict[str, Any]], experiment: Experiment, dataset, out: Path,
                  log: Callable[[str], None], device=None) -> dict[str, Any]:
    """Time every trained run's checkpoint together (or reuse latency.json when it covers them all with
    the same settings); returns latency.json's content, medians per run under ``runs``."""
    settings = {**experiment.latency, "batch_sizes": [1, 64], "input_shape": list(dataset.input_shape),
                "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor()}
    if device is not None and torch.device(device).type != "cpu":  # CPU runs keep their earlier settings
        settings["device"] = str(device)
    path = out / "latency.json"
    keys = [latency_key(r) for r in rows]
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings and all(k in saved.get("runs", {}) for k in keys):
            log("latency: measured earlier for every run, reusing latency.json")
            return saved
    log(f"latency: timing {len(rows)} models together ({experiment.latency['threads']} thread(s), "
        f"{experiment.latency['warmup']} warm-up, {experiment.latency['repeats']} repeats, batch 1 and 64)")
    models = {}
    named = {p.name: p.options["model"] for p in experiment.points if p.kind == "model"}  # trusted in preflight
    for row in rows:
        model, _ = model_from_checkpoint(out / row["checkpoint"], model=named.get(row["candidate"]))
        models[latency_key(row)] = model
    t0 = time.perf_counter()
    runs = measure_latency(models, tuple(dataset.input_shape), threads=experiment.latency["threads"],
                           warmup=experiment.latency["warmup"], repeats=experiment.latency["repeats"], device=device)
    result = {"settings": settings, "note": LATENCY_NOTE, "time_s": time.perf_counter() - t0, "runs": runs}
    atomic_write_json(path, result)
    return result
