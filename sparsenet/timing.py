"""Side-by-side timing on a shared, noisy machine, and a description of the machine.

Absolute times do not hold from run to run on a machine shared with other jobs, so every figure
of the benchmarks is a *ratio* of two (or more) candidates timed in the same process, in
interleaved rounds: round ``i`` runs every candidate once, in a rotating order, so that a burst
of load from another job hits all of them alike.  Each candidate's time is the median of its
rounds after warm-up (with min and max), and a ratio ``a / b`` is reported both as the ratio of
the medians and as the median of the per-round ratios (paired; robust to slow drifts).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

__all__ = ["Timing", "time_side_by_side", "paired_ratio", "machine_info", "load_average"]


@dataclass
class Timing:
    """Seconds per call of one candidate over the timed rounds."""

    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def to_dict(self) -> dict:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max,
                "repeats": len(self.runs), "runs_s": [round(r, 7) for r in self.runs]}


def time_side_by_side(candidates: Mapping[str, Callable[[], object]], *, repeats: int = 5,
                      warmup: int = 1, min_time: float = 0.0) -> dict[str, Timing]:
    """Time every candidate ``repeats`` times in interleaved, rotating rounds after ``warmup``
    untimed rounds.  A call shorter than ``min_time`` seconds is repeated inside one timing
    (``number`` calls, the time divided by ``number``) so that timer resolution and per-call
    jitter do not dominate tiny candidates; ``number`` is fixed per candidate at warm-up."""
    names = list(candidates)
    if not names:
        return {}
    number = {n: 1 for n in names}
    for _ in range(max(1, warmup)):
        for n in names:
            t0 = time.perf_counter()
            candidates[n]()
            dt = time.perf_counter() - t0
            if min_time > 0 and dt > 0:
                number[n] = max(number[n], min(1000, int(min_time / dt) + 1))
    out = {n: Timing() for n in names}
    for i in range(repeats):
        shift = i % len(names)
        for n in names[shift:] + names[:shift]:
            fn, k = candidates[n], number[n]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            out[n].runs.append((time.perf_counter() - t0) / k)
    return out


def paired_ratio(a: Timing, b: Timing) -> float:
    """Median over rounds of ``a_i / b_i`` (the rounds of ``time_side_by_side`` are paired)."""
    return statistics.median(x / y for x, y in zip(a.runs, b.runs))


def summary_row(measurement: str, case: str, value: float, *, at_most: float | None = None,
                at_least: float | None = None, unit: str = "") -> dict:
    """One line of the benchmark table: the value, its target where it has one, and whether it is met."""
    if at_most is not None:
        target, ok = f"<= {at_most:g}{unit}", value <= at_most
    elif at_least is not None:
        target, ok = f">= {at_least:g}{unit}", value >= at_least
    else:
        target, ok = "", None
    return {"measurement": measurement, "case": case, "value": value, "target": target, "ok": ok}


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the numbers were measured on: CPUs, CPU model, torch and its threads, load."""
    import numpy as np
    import torch

    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "load_average_1_5_15": load_average(),
    }
