"""Statistics against the machine's limit: the arithmetic rate of ``ChannelStats`` streaming
next to a plain matrix multiply of the same shape and precision, and its peak memory as the
number of samples grows.

Folded in from ``benchmarks/stats_memory.py``.  Every configuration runs in a fresh subprocess
(``sparsenet.bench.stats_machine.child_main`` with ``--child``) so that its peak resident memory is
its own.  The child streams ``samples`` maps of C channels at H x W through
``ChannelStats.partial_fit`` in batches (a few random ReLU batches generated once and cycled,
so generation is not timed) and after every batch times ``torch.mm(M.T, M)`` of one batch's
positions (the shape of one product, the same dtype), so both see the same machine load:

* rate: ``(2 + R) * 2 * n * C^2`` flops per batch of n positions (offset 0, co-firing and one
  product per ring r = 1..R) divided by the time of ``partial_fit``; the fraction of the mm
  rate is reported as the median of the per-batch ratios (paired) and as the ratio of totals.
  Target >= 0.7.
* memory: peak resident memory of the streaming (``VmHWM``, reset after the setup so that
  generating the data does not mask it) of a run with 10x the samples divided by that of the
  smaller run.  Target <= 1.1 (the running state is O(C^2 (R + 1)), independent of N).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

RATE_TARGET = 0.7
MEMORY_TARGET = 1.1


def _rss_peak_mb() -> float:
    """Peak resident memory since the start (or since ``_reset_peak``), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _reset_peak() -> bool:
    """Reset the peak resident memory to the current one (Linux >= 4.0: clear_refs 5), so the
    peak measured afterwards is that of the streaming alone, not of the setup."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:  # pragma: no cover - not Linux, or not permitted
        return False


def _rss_now_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def child(cfg: dict) -> dict:
    import torch

    from sparsenet.stats import ChannelStats, kernels

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if cfg.get("chunk_bytes"):
        kernels.CHUNK_BYTES = int(cfg["chunk_bytes"])
    dtype = getattr(torch, cfg["dtype"])
    C, S, B, R = cfg["channels"], cfg["size"], cfg["batch"], cfg["max_radius"]
    gen = torch.Generator().manual_seed(0)
    pool = [torch.randn(B, C, S, S, generator=gen).relu_().to(dtype) for _ in range(3)]
    n_batches = max(2, cfg["samples"] // B)
    stats = ChannelStats(max_radius=R, dtype=cfg["dtype"])
    stats.partial_fit(pool[0])  # warm-up (thread pools, buffers); counted in the statistics
    n_pos = B * S * S
    n_products = 2 + R
    M = pool[0].permute(0, 2, 3, 1).reshape(-1, C).contiguous()
    torch.mm(M.t(), M)
    rss_setup_peak = _rss_peak_mb()
    reset = _reset_peak()  # from here on the peak is the streaming's own
    rss_before = _rss_now_mb() or _rss_peak_mb()
    fit_times, mm_times, trace = [], [], []
    every = max(1, (n_batches - 1) // 10)
    for i in range(n_batches - 1):
        t0 = time.perf_counter()
        stats.partial_fit(pool[i % len(pool)])
        fit_times.append(time.perf_counter() - t0)
        if i % every == 0 or i == n_batches - 2:
            trace.append([(i + 2) * B, round(_rss_now_mb() or float("nan"), 1)])
        t0 = time.perf_counter()
        torch.mm(M.t(), M)
        mm_times.append(time.perf_counter() - t0)
    flops_batch = n_products * 2.0 * n_pos * C * C
    eff = flops_batch * len(fit_times) / sum(fit_times) / 1e9
    mm = 2.0 * n_pos * C * C * len(mm_times) / sum(mm_times) / 1e9
    return {
        **cfg, "samples_seen": stats.n_images_, "torch_threads": torch.get_num_threads(),
        "maps_per_s": len(fit_times) * B / sum(fit_times),
        "fit_s_per_batch": {"median": statistics.median(fit_times), "min": min(fit_times),
                            "max": max(fit_times)},
        "mm_s": {"median": statistics.median(mm_times), "min": min(mm_times), "max": max(mm_times)},
        "effective_gflops": eff, "mm_gflops": mm, "fraction_of_mm_totals": eff / mm,
        "fraction_of_mm": statistics.median(n_products * m / f for m, f in zip(mm_times, fit_times)),
        "rss_setup_peak_mb": rss_setup_peak, "rss_before_mb": rss_before,
        "rss_peak_mb": _rss_peak_mb(), "peak_reset": reset, "rss_now_trace_mb": trace,  # [maps seen, MB]
        "state_mb": stats.state_nbytes() / 2**20,
        "chunk_bytes": kernels.CHUNK_BYTES,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }


def run_child(cfg: dict) -> dict:
    # the child imports the same sparsenet as this process (installed, editable or a checkout)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            "from sparsenet.bench.stats_machine import child_main; sys.exit(child_main())")
    cmd = [sys.executable, "-c", code, "--child", json.dumps(cfg)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"stats_machine child failed ({cfg}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(*, channels: int, size: int, batch: int, samples: int, rate_configs: list[tuple],
        memory_config: tuple, default_threads: int) -> dict:
    """``rate_configs``: (threads, dtype, max_radius) run with ``samples`` maps each;
    ``memory_config``: (threads, dtype, max_radius) run with ``samples`` and ``10 * samples``."""
    base = {"channels": channels, "size": size, "batch": batch}
    runs: dict[str, dict] = {}

    def once(threads, dtype, R, n):
        cfg = {**base, "threads": threads or default_threads, "dtype": dtype, "max_radius": R,
               "samples": n}
        key = json.dumps(cfg, sort_keys=True)
        if key not in runs:  # a rate configuration equal to the memory one runs once
            runs[key] = run_child(cfg)
        return runs[key]

    rows = []
    for t, d, R in rate_configs:
        row = once(t, d, R, samples)
        if not any(r is row for r in rows):  # --threads 1 makes "default" and 1 the same run
            rows.append(row)
    mem = [once(*memory_config, n) for n in (samples, 10 * samples)]
    growth = mem[1]["rss_peak_mb"] / mem[0]["rss_peak_mb"]
    return {
        "rate_target_min": RATE_TARGET, "memory_target_max": MEMORY_TARGET,
        "rate_rows": rows, "memory_rows": mem, "memory_growth_10x": growth,
        "what": "fraction of torch.mm's rate (paired per batch, median); peak RSS at 10x samples / 1x",
    }


def summary_rows(result: dict) -> list[dict]:
    from sparsenet.timing import summary_row

    rows = []
    for r in result["rate_rows"]:
        use = {("float64", 0): ", analyser", ("float32", 0): ", null"}.get(
            (r["dtype"], r["max_radius"]), "")
        rows.append(summary_row("stats rate / mm rate",
                                f"C={r['channels']} {r['size']}x{r['size']} {r['dtype']} R={r['max_radius']} "
                                f"{r['torch_threads']} thread(s){use}", r["fraction_of_mm"], at_least=RATE_TARGET))
    m = result["memory_rows"]
    rows.append(summary_row("peak memory, 10x samples",
                            f"{m[0]['samples_seen']} -> {m[1]['samples_seen']} maps, C={m[0]['channels']} "
                            f"{m[0]['dtype']} R={m[0]['max_radius']}", result["memory_growth_10x"],
                            at_most=MEMORY_TARGET))
    return rows


def child_main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="child process of the stats/machine benchmark")
    ap.add_argument("--child", required=True, help="JSON configuration")
    args = ap.parse_args(argv)
    print(json.dumps(child(json.loads(args.child))))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
