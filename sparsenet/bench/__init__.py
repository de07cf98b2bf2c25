"""sparsenet's performance benchmarks: every stage held against its limit, as ratios.

One entry point runs every measurement, prints a table and writes
``<out>/<name>.json`` (ratios, raw timings: median of repeated runs after warm-up with min and
max, the machine, the load average and torch's thread count)::

    sparsenet bench [--quick] [--out DIR] [--only stats_cost,hardware] [--figures DIR]
    python -m benchmarks [same options]          # from the repository root

Measurements (each module's docstring says exactly what is timed):

========================  ==================================================================
``stats_cost``            record a layer + accumulate its statistics, / the bare forward pass
``stats_machine``         ChannelStats' arithmetic rate / torch.mm's; peak memory at 10x data
``clustering``            analyser time for 64 ... 2,048 channels (with/without significance)
``hardware``              a ``cluster`` module: sparsenet's realisation vs dense, masked
                          dense, sparse CSR and the ideal (dense x fraction of MACs kept)
``inference``             grown network vs googlenet_small at matched MACs, per MAC
========================  ==================================================================

Why the code lives here and not in ``benchmarks/``: the installed package holds only
``sparsenet*``, and ``sparsenet bench`` must work wherever sparsenet is installed, so the
measurements are library code (importable, tested by ``tests/test_bench.py``) and the
repository's ``benchmarks/`` package is a thin shim (``python -m benchmarks``) beside the
results it keeps (``benchmarks/results/``).
"""

from __future__ import annotations

from sparsenet.bench.runner import MEASUREMENTS, run

__all__ = ["MEASUREMENTS", "run"]
