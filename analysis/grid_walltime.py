"""Wall time of an experiment grid run by one process against two torchrun ranks, side by side.

    python analysis/grid_walltime.py [--config experiments/smoke.toml] [--pairs 3]

Each pair runs, in turn, ``sparsenet compare --config C --out OUT --quiet`` (one process) and
``torchrun --standalone --nproc_per_node 2 -m sparsenet compare ... --parallel runs`` (two ranks),
each into a fresh output directory, and measures the whole command from outside: wall seconds
and the CPU seconds of the command and its children (``os.wait4``'s rusage). It prints every
launch, the ratio two-rank / one-process pair by pair and the median ratio, and checks that the
two results tables agree up to their timing fields (the grid's promise). Read the ratios with the
machine's load in mind: two processes on a busy 2-core machine do not get twice one's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = {"train_time_s", "latency_ms", "pipeline_time_s", "grow_time_s"}


def _launch(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` to the end; its wall seconds and the user + system CPU seconds of it and its children."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def _table(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in json.loads((out / "results.json").read_text())]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/smoke.toml")
    p.add_argument("--pairs", type=int, default=3)
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="grid-walltime-"))
    serial = [sys.executable, "-m", "sparsenet", "compare", "--config", args.config, "--quiet"]
    parallel = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "sparsenet", "compare", "--config", args.config, "--quiet", "--parallel", "runs"]
    rows = []
    try:
        for i in range(args.pairs):
            one, two = base / f"one{i}", base / f"two{i}"
            w1, c1 = _launch(serial + ["--out", str(one)])
            w2, c2 = _launch(parallel + ["--out", str(two)])
            same = _table(one) == _table(two)
            rows.append((w1, c1, w2, c2, same))
            print(f"pair {i + 1}: 1 process {w1:.1f} s wall ({c1:.1f} s cpu), 2 ranks {w2:.1f} s wall "
                  f"({c2:.1f} s cpu), ratio {w2 / w1:.3f}; tables equal up to timing: {same}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ratios = [r[2] / r[0] for r in rows]
    print(f"median wall: 1 process {statistics.median(r[0] for r in rows):.1f} s, 2 ranks "
          f"{statistics.median(r[2] for r in rows):.1f} s; ratio pair by pair {', '.join(f'{x:.3f}' for x in ratios)} "
          f"(median {statistics.median(ratios):.3f}); cpu ratio median "
          f"{statistics.median(r[3] / r[1] for r in rows):.2f}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
