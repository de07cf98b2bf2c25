"""How much slower one process runs when a second, identical one runs beside it on this machine.

    python analysis/core_contention.py [--rounds 3] [--steps 300]

Each round times ``--steps`` SGD steps of googlenet_small (width 0.125, 2 modules, 16 x 16 input,
batch 32, one torch thread) in one process alone, then in two processes started together.  The
slowdown (pair wall / alone wall) bounds what two workers can gain on work that splits perfectly:
two processes finish in ``slowdown / 2`` of one's time at best.  An experiment grid's ratio
(analysis/grid_walltime.py) cannot go below that plus its fixed costs' share.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

WORK = """
import sys, time, torch
torch.set_num_threads(1)
from sparsenet.models import get_model
torch.manual_seed(0)
m = get_model("googlenet_small", num_classes=10, in_channels=1, width_mult=0.125, num_modules=2)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
for _ in range(5):
    step()
t = time.perf_counter()
for _ in range(int(sys.argv[1])):
    step()
print(time.perf_counter() - t)
"""


def _run(copies: int, steps: int) -> list[float]:
    procs = [subprocess.Popen([sys.executable, "-c", WORK, str(steps)], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    slowdowns = []
    for r in range(args.rounds):
        alone = _run(1, args.steps)[0]
        pair = _run(2, args.steps)
        slowdowns += [w / alone for w in pair]
        print(f"round {r + 1}: alone {alone:.2f} s; two at once {pair[0]:.2f} s and {pair[1]:.2f} s "
              f"(slowdown {pair[0] / alone:.2f}, {pair[1] / alone:.2f})", flush=True)
    s = statistics.median(slowdowns)
    print(f"median slowdown {s:.2f}: two workers take at least {s / 2:.3f} of one's time on perfectly split work")


if __name__ == "__main__":
    main()
