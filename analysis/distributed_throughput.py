"""Throughput of one process against two torchrun ranks on the same total work, side by side.

    python analysis/distributed_throughput.py statistics [--images 1500] [--pairs 3]
    python analysis/distributed_throughput.py training [--images 2000] [--pairs 3]

statistics: record a random 2-conv network's 128-channel 16x16 layer and accumulate ChannelStats
(R = 2) over --images images, the ranks each a contiguous shard, merged exactly on rank 0 (what
`sparsenet discover` does under torchrun, without the analysis).
training: one epoch of plaincnn (width 8) on the first --images mnist5k training images, batch 64
(data-parallel with two ranks: 32 each), the test split evaluated once (sharded and reduced).

The two settings alternate --pairs times (1 process, then 2 ranks, ...), each a fresh launch;
the time measured is the work itself (after a barrier), not the start-up.  One process uses torch's
default threads; each torchrun rank OMP_NUM_THREADS=1 (torchrun's default), so both use the
machine's cores.  Prints each launch's images/s and the median ratio (2 ranks / 1 process).
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


def _launch(what: str, n: int, ranks: int) -> float:
    script = [os.path.abspath(__file__), what, "--images", str(n), "--worker"]
    cmd = [sys.executable, *script] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *script]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return n / float(found.group(3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["statistics", "training"])
    p.add_argument("--images", type=int, default=None, help="total images (default 1500 statistics, 2000 training)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    n = a.images or (1500 if a.what == "statistics" else 2000)
    if a.worker:
        return worker(a.what, n)
    ratios = []
    for i in range(a.pairs):
        one, two = _launch(a.what, n, 1), _launch(a.what, n, 2)
        ratios.append(two / one)
        print(f"pair {i + 1}: 1 process {one:.0f} images/s, 2 ranks {two:.0f} images/s, ratio {two / one:.2f}",
              flush=True)
    print(f"{a.what}, {n} images, {a.pairs} pairs: median ratio (2 ranks / 1 process) {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f} .. {max(ratios):.2f})")


if __name__ == "__main__":
    main()
