"""Wall time of an experiment grid run by one process against two workers, side by side.

    python analysis/grid_walltime.py [--config experiments/smoke.toml] [--pairs 3] [--launch torchrun hand]

Each round runs, in turn, ``sparsenet compare --config C --out OUT --quiet`` (one process) and, for
each ``--launch``, the same grid shared by two workers, each into a fresh output directory:

* ``torchrun``: ``torchrun --standalone --nproc_per_node 2 -m sparsenet compare ... --parallel runs``
  (two ranks under torchrun's agent);
* ``hand``: two ``sparsenet compare ... --parallel runs`` processes started together on the same
  ``--out`` (what several machines sharing a filesystem do; no agent, no process group).

It measures every command from outside: wall seconds (for ``hand``, until both have exited) and
the CPU seconds of the command and its children (``os.wait4``'s rusage). It prints every launch,
the ratio two workers / one process round by round and the medians, and checks that the results
tables agree up to their timing fields (the grid's promise). Read the ratios with the machine's
load in mind: two processes on a busy 2-core machine do not get twice one's CPU.
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


def _launch(*argvs: list[str]) -> tuple[float, float]:
    """Start every ``argv`` together and wait for all; the wall seconds until the last exits and
    the user + system CPU seconds of them and their children."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for argv in argvs]
    cpu = 0.0
    for argv, proc in zip(argvs, procs):
        _, status, usage = os.wait4(proc.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - t0, cpu


def _table(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in json.loads((out / "results.json").read_text())]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/smoke.toml")
    p.add_argument("--pairs", type=int, default=3, help="rounds (one process, then each launch)")
    p.add_argument("--launch", nargs="+", choices=["torchrun", "hand"], default=["torchrun"])
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="grid-walltime-"))
    compare = [sys.executable, "-m", "sparsenet", "compare", "--config", args.config, "--quiet"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "sparsenet", "compare", "--config", args.config, "--quiet", "--parallel", "runs"]
    rows = {launch: [] for launch in args.launch}   # (wall 1, cpu 1, wall 2, cpu 2) per round
    try:
        for i in range(args.pairs):
            one = base / f"one{i}"
            w1, c1 = _launch(compare + ["--out", str(one)])
            print(f"round {i + 1}: 1 process {w1:.1f} s wall ({c1:.1f} s cpu)", flush=True)
            for launch in args.launch:
                two = base / f"{launch}{i}"
                out = ["--out", str(two)]
                if launch == "torchrun":
                    w2, c2 = _launch(torchrun + out)
                else:
                    w2, c2 = _launch(*[compare + out + ["--parallel", "runs"]] * 2)
                same = _table(one) == _table(two)
                rows[launch].append((w1, c1, w2, c2))
                print(f"round {i + 1}: 2 workers ({launch}) {w2:.1f} s wall ({c2:.1f} s cpu), ratio {w2 / w1:.3f}; "
                      f"tables equal up to timing: {same}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for launch, got in rows.items():
        ratios = [r[2] / r[0] for r in got]
        print(f"{launch}: median wall 1 process {statistics.median(r[0] for r in got):.1f} s, 2 workers "
              f"{statistics.median(r[2] for r in got):.1f} s; ratio round by round {', '.join(f'{x:.3f}' for x in ratios)} "
              f"(median {statistics.median(ratios):.3f}); cpu ratio median "
              f"{statistics.median(r[3] / r[1] for r in got):.2f}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
