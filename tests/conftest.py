"""Test-wide settings: one torch thread per worker (pytest -n 2 uses both cores), Agg plots, and the
hypothesis profiles of the fuzzing suite."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

# Fuzzing (tests/test_fuzz.py): a few examples per loader by default; the long profile runs
# 1,000 per loader: `pytest tests/test_fuzz.py --hypothesis-profile=long` or SPARSENET_FUZZ=long.
from hypothesis import HealthCheck, settings  # noqa: E402

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("fast", max_examples=15, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=1000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("SPARSENET_FUZZ", "fast"))
