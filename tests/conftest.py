"""Test-wide settings: one torch thread per worker (pytest -n 2 uses both cores), Agg plots."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
