"""The documented Python entry points, old paths included: a refactor must not break a user's imports."""

import importlib
import subprocess
import sys

import pytest

ENTRY_POINTS = [  # (module, names) as the README and docs/ show them, before and after the layout of issue 10
    ("sparsenet", ["CorrelationAnalyzer"]),
    ("sparsenet.synthetic", ["planted_groups", "arora_network"]),
    ("sparsenet.spec", ["save_spec", "load_spec", "module_macs"]),
    ("sparsenet.rules", ["module_from_discovery", "fit_budget", "reference_module", "module_from_inception"]),
    ("sparsenet.drawing", ["draw_comparison"]),
    ("sparsenet.discovery", ["load_discovery", "from_labels", "Discovery"]),
    ("sparsenet.builder", ["build_module", "build_network", "plan_buckets"]),
    ("sparsenet.stats", ["ChannelStats"]),
    ("sparsenet.data.synthetic", ["planted_groups"]),
]


@pytest.mark.parametrize("module, names", ENTRY_POINTS, ids=[m for m, _ in ENTRY_POINTS])
def test_documented_imports_work(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert callable(getattr(mod, name)), f"{module}.{name}"


def test_command_line_starts_without_torch():
    """Building every sub-command's parser (what `sparsenet --help` does) must not load torch,
    numpy's linear algebra users or scipy: the choice lists and defaults are plain values."""
    code = ("import sys, sparsenet.cli as c; c.build_parser(); "
            "print(','.join(m for m in ('torch', 'scipy', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
