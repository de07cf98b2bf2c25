"""`sparsenet bench`: run the performance benchmarks (every stage against its limit, as ratios)."""

from __future__ import annotations

import shlex
import sys


def add_parser(sub) -> None:
    from sparsenet.bench.runner import add_arguments

    p = sub.add_parser(
        "bench", help="performance benchmarks: statistics, clustering, realisation, inference",
        description="Run every performance measurement side by side, print a table of ratios "
                    "against their targets and write OUT/NAME.json (see docs/performance.md).")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.bench.runner import main_args

    return main_args(args, command="sparsenet " + shlex.join(sys.argv[1:]))
