"""Why several threads can be slower on a shared machine: the cost of one parallel region.

Times small torch operations (each one OpenMP parallel region when run with several threads)
with 1 thread and with torch's default, side by side, and prints the medians and the load
average.  On a machine whose other jobs keep every core busy, a region waits for its second
thread to get a time slice: milliseconds per region, whatever the work in it.

    python benchmarks/thread_probe.py
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def main() -> int:
    default = torch.get_num_threads()
    a = torch.randn(1_000_000)
    x = torch.randn(1, 46, 14, 14)
    w = torch.randn(12, 46, 1, 1)
    sym = np.random.default_rng(0).random((1024, 1024))
    sym = (sym + sym.T) / 2
    ops = {"add of 1M floats": lambda: a + a, "1x1 conv, batch 1": lambda: F.conv2d(x, w)}
    print(f"load average {[round(v, 2) for v in os.getloadavg()]}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}")
    for name, op in ops.items():
        res = {}
        for t in (1, default):
            torch.set_num_threads(t)
            runs = []
            for _ in range(30):
                t0 = time.perf_counter()
                op()
                runs.append(time.perf_counter() - t0)
            res[t] = statistics.median(runs)
        torch.set_num_threads(default)
        print(f"{name:22s} 1 thread {res[1] * 1e6:9.1f} us   {default} threads {res[default] * 1e6:9.1f} us")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return 0
    res = {}
    for t in (1, None):
        runs = []
        for _ in range(3):
            with threadpool_limits(limits=t, user_api="blas"):
                t0 = time.perf_counter()
                np.linalg.eigvalsh(sym)
                runs.append(time.perf_counter() - t0)
        res[t] = statistics.median(runs)
    print(f"{'numpy eigvalsh 1024':22s} 1 BLAS thread {res[1] * 1e3:7.1f} ms   default {res[None] * 1e3:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
