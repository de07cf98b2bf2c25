"""Throughput and peak memory of ChannelStats streaming: now part of the benchmark entry point.

The measurement (a subprocess per configuration; rate against ``torch.mm`` of the same shape
and dtype, paired per batch; peak RSS at 1x and 10x the samples) lives in
``sparsenet/bench/stats_machine.py``.  This script is kept so that the old command still
works; it runs only that measurement::

    python benchmarks/stats_memory.py [--quick] [--out DIR] [--threads N]
    # the same as: python -m benchmarks --only stats_machine [--quick] ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparsenet.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--only", "stats_machine", "--name", "stats_memory"] + sys.argv[1:],
                  prog="python benchmarks/stats_memory.py"))
