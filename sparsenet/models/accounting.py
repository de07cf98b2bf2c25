"""Compute accounting: parameters and multiply-adds of a model at one input size.

What is counted
---------------
* Parameters: every element of ``model.parameters()`` (weights *and* biases, batch-norm scale and
  shift; shared tensors once).  Buffers such as batch-norm running statistics are not parameters.
* Multiply-adds (MACs): those of convolutions and matrix products (``nn.Conv*``, ``nn.Linear``,
  ``matmul``/``bmm``/attention), as counted by ``torch.utils.flop_counter.FlopCounterMode`` for
  one forward pass at batch 1 in eval mode.  A k x k convolution from C_in to C_out channels
  producing an H x W map costs k*k*C_in*C_out*H*W multiply-adds.  Pooling, ReLU, batch norm,
  dropout, concatenation and bias additions are not multiply-adds and are not counted (the same
  convention as Table 1 of Szegedy et al. 2014).  FLOPs = 2 x MACs.
* Eval mode means branches active only in training are not counted (e.g. GoogLeNet's auxiliary
  classifiers), while their parameters are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sparsenet.errors import SparsenetError
from sparsenet.models.registry import run_on_zeros

__all__ = ["Cost", "count_params", "count_macs", "measure"]


@dataclass(frozen=True)
class Cost:
    params: int  # number of parameters (weights and biases)
    macs: int  # multiply-adds of one forward pass at batch 1 (eval mode)

    @property
    def flops(self) -> int:
        """Floating-point operations, counting a multiply-add as two."""
        return 2 * self.macs


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise SparsenetError(f"expected a torch nn.Module; got {type(model).__name__}")
    return model


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    ok = (
        isinstance(input_shape, (tuple, list, torch.Size))
        and 1 <= len(input_shape) <= 3
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in input_shape)
    )
    if not ok:
        raise SparsenetError(
            "input_shape must be the shape of one example without the batch axis, "
            f"(C, H, W) or (C,) of positive integers; got {input_shape!r}"
        )
    return tuple(input_shape)


def count_params(model: nn.Module) -> int:
    """Number of parameters (weights and biases), each shared tensor counted once."""
    return sum(p.numel() for p in _check_model(model).parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of one example of shape ``input_shape`` (no batch axis).

    Runs the model at batch 1 in eval mode under ``torch.no_grad()``; the training flag of every
    submodule is restored afterwards.  See the module docstring for what is counted.
    """
    model = _check_model(model)
    shape = _check_shape(input_shape)
    counter = FlopCounterMode(display=False)
    run_on_zeros(model, shape, lambda why: f"cannot count multiply-adds of {type(model).__name__} at input shape "
                                           f"{shape}: {why}", within=counter)
    return counter.get_total_flops() // 2


def measure(model: nn.Module, input_shape: tuple[int, ...]) -> Cost:
    """Parameters and multiply-adds of ``model`` at ``input_shape`` (C, H, W)."""
    return Cost(params=count_params(model), macs=count_macs(model, input_shape))
