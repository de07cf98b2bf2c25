"""The comparator: discovered networks against hand-designed GoogLeNet at equal compute.

One concept per module, from the values up to the run (``sparsenet compare`` calls :func:`run_comparison`):

* ``experiment``  the TOML schema: an :class:`Experiment` of candidate Points, validated before anything runs
* ``skeleton``    googlenet_small written as a spec, and swapping a discovered module into it
* ``candidates``  from a Point to what trains: the dataset, model kwargs, skeleton, growth settings, preflight
* ``runs``        training each candidate at each seed in DIR/runs/, resumable, diverged runs kept as failed
* ``latency``     CPU inference timing of every trained model together, after all training (latency.json)
* ``statistics``  the pure tests: mean and CI, Welch's t-test, log-MACs interpolation
* ``summary``     per-candidate statistics and the matched-MACs and swapped-vs-skeleton tests of the rows
* ``results``     the files: results.json/.csv and summary.json written and read back, per-epoch histories
* ``report``      report.md: tables, method notes and number formats
* ``plots``       the figures: accuracy against mult-adds and latency, accuracy per epoch
* ``run``         :func:`run_comparison`, the orchestrator over all of the above

The public entry points are re-exported here, loaded on first use so that importing one module of
the package (e.g. the torch-free ``experiment``) does not load all the others.
"""

from __future__ import annotations

from importlib import import_module

# name -> the module that defines it
_EXPORTS = {
    "Experiment": "experiment", "load_experiment": "experiment", "parse_experiment": "experiment",
    "ConfigError": "experiment",
    "load_data": "candidates", "preflight": "candidates",
    "measure_latency": "latency", "LATENCY_NOTE": "latency",
    "summarise": "summary", "matched_comparisons": "summary", "paired_controls": "summary",
    "write_outputs": "results", "read_results": "results", "CSV_FIELDS": "results",
    "render_report": "report",
    "run_comparison": "run",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"sparsenet.compare.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'sparsenet.compare' has no attribute {name!r}")
