"""Throughput of one process against two torchrun ranks on the same total work, side by side.

    python analysis/distributed_throughput.py statistics [--images 1500] [--rounds 3]
    python analysis/distributed_throughput.py training [--images 2000] [--rounds 3]

statistics: record a random 2-conv network's 128-channel 16x16 layer and accumulate ChannelStats
(R = 2) over --images images, the ranks each a contiguous shard, merged exactly on rank 0 (what
`sparsenet discover` does under torchrun, without the analysis).
training: one epoch of plaincnn (width 8) on the first --images mnist5k training images, batch 64
(data-parallel with two ranks: 32 each), the test split evaluated once (sharded and reduced).

Three settings alternate --rounds times, each a fresh launch: one process with torch's default
threads (one per core), one process with one thread, two ranks with one thread each (torchrun's
default OMP_NUM_THREADS=1).  The time measured is the work itself (after a barrier), not the
start-up.  Prints each launch's images/s and the median ratios of the two ranks to each
one-process setting.  On a machine whose cores are busy with other work, a process with two
threads can be far slower than with one (each parallel region waits for a descheduled thread), and
two processes get twice one process's share of the CPU: read the ratios with the load in mind.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

RESULT = re.compile(r"^THROUGHPUT world (\d+): (\d+) images in ([0-9.]+) s$", re.M)


def _statistics(n: int, here) -> float:
    import torch
    from torch import nn

    from sparsenet.distributed import merge_stats_to_main, shard_batches, shard_bounds
    from sparsenet.recording import input_batches, record
    from sparsenet.stats import ChannelStats

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    if here.world_size > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    stats = ChannelStats(max_radius=2)
    record(model, "3", shard_batches(input_batches(x, batch_size=64, max_samples=n), *shard_bounds(n, here)),
           consume=stats.partial_fit)
    if here.world_size > 1:
        merge_stats_to_main(stats, here)
    return time.perf_counter() - t0


def _training(n: int, here) -> float:
    import dataclasses

    import torch

    from sparsenet.data import load_dataset
    from sparsenet.training.config import TrainConfig
    from sparsenet.training.loop import train_named

    data = load_dataset("mnist5k", seed=0)
    data = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    if here.world_size > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    train_named("plaincnn", data, TrainConfig(epochs=1, batch_size=64, seed=0), {"width": 8}, progress=False)
    return time.perf_counter() - t0


def worker(what: str, n: int) -> None:
    from sparsenet.distributed import process_group

    with process_group() as here:
        seconds = (_statistics if what == "statistics" else _training)(n, here)
        if here.main:
            print(f"THROUGHPUT world {here.world_size}: {n} images in {seconds:.3f} s", flush=True)


def _launch(what: str, n: int, ranks: int, threads: int | None) -> float:
    script = [os.path.abspath(__file__), what, "--images", str(n), "--worker"]
    cmd = [sys.executable, *script] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *script]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return n / float(found.group(3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["statistics", "training"])
    p.add_argument("--images", type=int, default=None, help="total images (default 1500 statistics, 2000 training)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    n = a.images or (1500 if a.what == "statistics" else 2000)
    if a.worker:
        return worker(a.what, n)
    settings = {"1 process, default threads": (1, None), "1 process, 1 thread": (1, 1), "2 ranks": (2, 1)}
    rates = {k: [] for k in settings}
    for i in range(a.rounds):
        for name, (ranks, threads) in settings.items():
            rates[name].append(_launch(a.what, n, ranks, threads))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.0f} images/s" for k, v in rates.items()), flush=True)
    for name in list(settings)[:2]:
        ratios = [two / one for two, one in zip(rates["2 ranks"], rates[name])]
        print(f"{a.what}, {n} images, {a.rounds} rounds: 2 ranks / {name}: median {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f} .. {max(ratios):.2f}); medians {statistics.median(rates['2 ranks']):.0f} "
              f"vs {statistics.median(rates[name]):.0f} images/s")


if __name__ == "__main__":
    main()
