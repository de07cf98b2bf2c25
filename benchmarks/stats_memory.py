"""Throughput and peak memory of ChannelStats streaming, for a GoogLeNet-sized layer.

For each number of samples (maps of C channels at H x W fed in batches) a fresh subprocess
streams the data through ``ChannelStats.partial_fit`` and reports:

* samples/s (maps per second) and positions/s;
* the effective GFLOP/s of the per-batch products (offset 0, co-firing and one product per
  spatial ring: ``(2 + R) * 2 * n * C^2`` flops per batch of ``n`` positions) next to a plain
  ``torch.mm`` of one product's shape and dtype, timed after every batch in the same process
  -- the ratio is the fraction of matmul speed the streaming reaches (also given as the median
  of the per-batch ratios, which is robust to a machine shared with other jobs);
* peak resident memory (``ru_maxrss``) before the first batch and at the end, the current
  resident memory at every tenth of the run, and the bytes of the running state
  (``state_nbytes``): none of them may grow with the number of samples.

The batches are a few random ReLU maps generated once and cycled, so generation is not timed.

    python benchmarks/stats_memory.py --quick      # 400 and 4,000 maps, float32
    python benchmarks/stats_memory.py              # 2,000 and 20,000 maps, float32 and float64
    python benchmarks/stats_memory.py --threads 1  # single-threaded (robust on a busy machine)

Writes ``benchmarks/results/stats_memory.json`` (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_now_mb() -> float | None:
    """Current resident memory (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def child(args) -> dict:
    import torch

    from sparsenet.stats import ChannelStats

    if args.threads[0]:
        torch.set_num_threads(args.threads[0])
    dtype = getattr(torch, args.dtype)
    C, S, B = args.channels, args.size, args.batch
    gen = torch.Generator().manual_seed(0)
    pool = [torch.relu(torch.randn(B, C, S, S, generator=gen)).to(dtype) for _ in range(3)]
    n_batches = args.samples // B
    stats = ChannelStats(max_radius=args.max_radius, dtype=args.dtype)
    stats.partial_fit(pool[0])  # warm-up (thread pools, buffers); counted in the statistics
    rss_before = _rss_mb()
    n_pos = B * S * S
    n_products = 2 + args.max_radius  # offset 0, co-firing, one per ring
    flops_batch = n_products * 2.0 * n_pos * C * C
    # a plain matmul of one product's shape and dtype, timed right after each batch so both
    # see the same machine load (the ratio is the robust number on a shared machine)
    M = pool[0].permute(0, 2, 3, 1).reshape(-1, C).contiguous()
    torch.mm(M.t(), M)
    fit_times, mm_times, rss_trace = [], [], []
    every = max(1, (n_batches - 1) // 10)
    for i in range(n_batches - 1):
        t0 = time.perf_counter()
        stats.partial_fit(pool[i % len(pool)])
        fit_times.append(time.perf_counter() - t0)
        if i % every == 0 or i == n_batches - 2:
            rss_trace.append(round(_rss_now_mb() or float("nan"), 1))
        t0 = time.perf_counter()
        torch.mm(M.t(), M)
        mm_times.append(time.perf_counter() - t0)
    elapsed, timed = sum(fit_times), len(fit_times)
    mm_time = sum(mm_times) / len(mm_times)
    mm_gflops = 2.0 * n_pos * C * C / mm_time / 1e9
    eff_gflops = flops_batch * timed / elapsed / 1e9
    paired = [n_products * m / f for m, f in zip(mm_times, fit_times)]
    return {
        "samples": stats.n_images_, "dtype": args.dtype, "channels": C, "size": S, "batch": B,
        "max_radius": args.max_radius,
        "maps_per_s": timed * B / elapsed, "positions_per_s": timed * n_pos / elapsed,
        "s_per_batch": elapsed / timed,
        "effective_gflops": eff_gflops, "mm_gflops": mm_gflops,
        "fraction_of_mm": eff_gflops / mm_gflops,
        "fraction_of_mm_paired_median": statistics.median(paired),
        "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb(),
        "rss_now_trace_mb": rss_trace,  # current RSS at every tenth of the run
        "state_mb": stats.state_nbytes() / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="400 and 4,000 maps, float32 only")
    ap.add_argument("--samples", type=int, nargs="+", help="numbers of maps (default 2000 20000)")
    ap.add_argument("--dtypes", nargs="+", choices=["float32", "float64"])
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=14)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--max-radius", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch threads, one run per value (0: torch's default); on a machine "
                         "shared with other jobs 1 thread avoids oversubscription stalls")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stats_memory.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        args.samples = args.samples[0]
        print(json.dumps(child(args)))
        return 0

    samples = args.samples or ([400, 4000] if args.quick else [2000, 20000])
    dtypes = args.dtypes or (["float32"] if args.quick else ["float32", "float64"])
    rows = []
    runs = [(t, d, n) for t in args.threads for d in dtypes for n in samples]
    for threads, dtype, n in runs:
        cmd = [sys.executable, __file__, "--child", "--samples", str(n), "--dtype", dtype,
               "--channels", str(args.channels), "--size", str(args.size),
               "--batch", str(args.batch), "--max-radius", str(args.max_radius),
               "--threads", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{dtype:8s} {r['torch_threads']} thr {r['samples']:>7d} maps  "
              f"{r['maps_per_s']:8.1f} maps/s  {r['effective_gflops']:6.1f} GFLOP/s vs mm "
              f"{r['mm_gflops']:6.1f} ({r['fraction_of_mm']:.2f}; paired "
              f"{r['fraction_of_mm_paired_median']:.2f})  RSS {r['rss_before_mb']:.0f} -> "
              f"{r['rss_peak_mb']:.0f} MB  state {r['state_mb']:.2f} MB", flush=True)

    print(f"\nC={args.channels}, {args.size}x{args.size}, batch {args.batch}, "
          f"max_radius {args.max_radius}")
    print(f"{'dtype':8s} {'thr':>3s} {'maps':>7s} {'maps/s':>8s} {'GFLOP/s':>8s} "
          f"{'mm GFLOP/s':>10s} {'frac':>5s} {'paired':>6s} {'RSS MB':>7s} {'state MB':>8s}")
    for r in rows:
        print(f"{r['dtype']:8s} {r['torch_threads']:>3d} {r['samples']:>7d} "
              f"{r['maps_per_s']:8.1f} {r['effective_gflops']:8.1f} {r['mm_gflops']:10.1f} "
              f"{r['fraction_of_mm']:5.2f} "
              f"{r['fraction_of_mm_paired_median']:6.2f} "
              f"{r['rss_peak_mb']:7.0f} {r['state_mb']:8.2f}")
    from sparsenet.io import atomic_write_json

    result = {
        "command": " ".join(["python benchmarks/stats_memory.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_1_5_15min_at_end": list(os.getloadavg())},
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
