"""The training recipe: one frozen dataclass, validated before anything is loaded or trained.

Kept apart from the loop (and free of torch) so that the command line can read its defaults
without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sparsenet.errors import SparsenetError
from sparsenet.limits import MAX_SEED

__all__ = ["TrainConfig", "DEFAULT_MODEL", "DEFAULT_DATA"]

# what `train` trains when none is named, and the embedded default `discover` trains and caches
DEFAULT_MODEL = "plaincnn"
DEFAULT_DATA = "mnist5k"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3              # passes over the training split
    batch_size: int = 64         # samples per SGD step
    lr: float = 0.05             # peak learning rate (cosine decay to 0 over the run)
    momentum: float = 0.9        # SGD momentum (Nesterov)
    weight_decay: float = 5e-4   # L2 penalty on all weights
    seed: int = 0                # model init, shuffling, dropout and augmentation
    augment: bool = False        # random crop (padding 2) and, where the data allows, horizontal flip
    eval_batch_size: int = 500   # samples per forward pass during evaluation
    warmup_steps: int = 0        # linear learning-rate warm-up over the first SGD steps (0: none)
    clip_grad_norm: float = 0.0  # clip the gradients' global L2 norm to this (0: no clipping)

    def validate(self) -> "TrainConfig":
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SparsenetError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SparsenetError(f"seed must be an integer in 0..{MAX_SEED}, got {self.seed!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SparsenetError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise SparsenetError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise SparsenetError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise SparsenetError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (self.clip_grad_norm >= 0 and math.isfinite(self.clip_grad_norm)):
            raise SparsenetError(f"clip_grad_norm must be a number >= 0 (0: off), got {self.clip_grad_norm!r}")
        return self
