"""sparsenet's benchmarks, run from the repository root: ``python -m benchmarks [--quick]``.

The measurements live in the installed library (``sparsenet.bench``), so that
``sparsenet bench`` works wherever sparsenet is installed; this package is the shim that runs
them from a checkout, and ``benchmarks/results/`` keeps the results files.
"""
