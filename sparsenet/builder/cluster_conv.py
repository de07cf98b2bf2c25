"""Cluster connectivity on contiguous channel slices, in the fastest measured form.

A ``ClusterConv2d`` is a convolution whose output channels are split into groups, group ``j``
reading only the input slice ``[start_j, start_j + n_j)`` and writing ``m_j`` adjacent output
channels.  Because the slices are contiguous (the producer's channels were permuted so, see
:mod:`sparsenet.builder.rewrite`), no form needs a gather when the groups have equal shapes.

The weights are stored one way whatever the form: one grouped weight ``G*m x n x k x k``
(``m``, ``n`` the largest group's), group ``j`` in rows ``j*m .. j*m+m_j`` and columns
``0 .. n_j``, the rest held at zero by a constant mask (as ``MaskedConv2d``).  So a state dict
loads into any form, and every form computes the same function.  The forms are those
``sparsenet bench`` times for the hardware module (``bench/hardware.py``):

``grouped``                 one grouped convolution, NCHW (a gather only for unequal groups,
                            padding each with its own first channel at zero weight);
``grouped_channels_last``   the same on a channels-last copy of the input;
``per_cluster``             one small dense convolution per group on a view of its slice;
``per_cluster_channels_last`` the same on a channels-last copy of each slice (a channel
                            slice of one channels-last copy is strided: measured 1.3x slower).

:func:`choose_form` times them on the module's shapes (batch, map size) and keeps the fastest,
cached per shape for the process, like cuDNN's benchmark mode; with measurement off it returns
the deterministic :func:`fallback_form`.  ``ClusterLinear`` is the same for a linear layer
(one form: a product per group; linear layers are a small part of the cost).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparsenet.errors import SparsenetError

__all__ = ["FORMS", "ClusterConv2d", "ClusterLinear", "choose_form", "fallback_form", "clear_form_cache"]

FORMS = ("grouped", "grouped_channels_last", "per_cluster", "per_cluster_channels_last")
_CACHE: dict[tuple, str] = {}


def _check_groups(in_channels: int, starts, in_sizes, out_sizes) -> None:
    if not (len(starts) == len(in_sizes) == len(out_sizes)) or not in_sizes:
        raise SparsenetError("cluster connectivity needs one start, input size and output size per group; got "
                             f"{len(starts)}, {len(in_sizes)}, {len(out_sizes)}")
    if any(n < 1 for n in in_sizes) or any(m < 1 for m in out_sizes):
        raise SparsenetError(f"every group needs >= 1 input and output channel; got inputs {list(in_sizes)}, "
                             f"outputs {list(out_sizes)}")
    end = 0
    for s, n in zip(starts, in_sizes):
        if s < end or s + n > in_channels:
            raise SparsenetError(f"group input slices must be disjoint, in order and inside 0..{in_channels - 1}; "
                                 f"got starts {list(starts)} with sizes {list(in_sizes)}")
        end = s + n


class ClusterConv2d(nn.Module):
    """Conv2d with cluster connectivity on contiguous input slices (see the module docstring)."""

    def __init__(self, in_channels: int, starts, in_sizes, out_sizes, kernel_size, *, stride=1, padding=0,
                 dilation=1, bias: bool = True, form: str = "grouped"):
        super().__init__()
        starts, in_sizes, out_sizes = (tuple(int(v) for v in a) for a in (starts, in_sizes, out_sizes))
        _check_groups(in_channels, starts, in_sizes, out_sizes)
        if form not in FORMS:
            raise SparsenetError(f"unknown cluster-conv form {form!r}; accepted: {', '.join(FORMS)}")
        self.in_channels, self.starts, self.in_sizes, self.out_sizes = in_channels, starts, in_sizes, out_sizes
        self.out_channels = sum(out_sizes)
        self.kernel_size = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * 2
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.form = form
        G, m, n = len(starts), max(out_sizes), max(in_sizes)
        self.weight = nn.Parameter(torch.zeros(G * m, n, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(G * m)) if bias else None
        self.equal = len(set(in_sizes)) == 1 and len(set(out_sizes)) == 1
        mask = None
        if not self.equal:
            mask = torch.zeros_like(self.weight)
            for j, (nj, mj) in enumerate(zip(in_sizes, out_sizes)):
                mask[j * m: j * m + mj, :nj] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        # grouped forms read G*n channels: a narrow when the slices tile the front, else a padded gather
        tiled = self.equal and starts == tuple(j * n for j in range(G))
        index = None if tiled else torch.tensor(
            [s + min(i, nj - 1) for s, nj in zip(starts, in_sizes) for i in range(n)], dtype=torch.long)
        self.register_buffer("index", index, persistent=False)
        self.rows = [slice(j * m, j * m + mj) for j, mj in enumerate(out_sizes)]

    # -- weights in and out of the group layout -------------------------------------------------
    def load_dense(self, weight: torch.Tensor, bias: torch.Tensor | None, out_order) -> None:
        """Copy a dense conv's weights: group j's rows are the dense output channels
        ``out_order[sum(m_<j) ..]``, its columns the input slice; the rest is dropped."""
        m = max(self.out_sizes)
        with torch.no_grad():
            self.weight.zero_()
            pos = 0
            for j, (s, nj, mj) in enumerate(zip(self.starts, self.in_sizes, self.out_sizes)):
                rows = list(out_order[pos:pos + mj])
                self.weight[j * m: j * m + mj, :nj] = weight[rows, s:s + nj]
                if self.bias is not None:
                    self.bias[j * m: j * m + mj] = bias[rows] if bias is not None else 0.0
                pos += mj

    def _weight(self) -> torch.Tensor:
        return self.weight if self.mask is None else self.weight * self.mask

    def _grouped(self, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        G, n = len(self.starts), max(self.in_sizes)
        x = x.narrow(1, 0, G * n) if self.index is None else x.index_select(1, self.index)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, self._weight(), self.bias, self.stride, self.padding, self.dilation, groups=G)
        if len(set(self.out_sizes)) == 1:
            return y
        return torch.cat([y[:, r] for r in self.rows], 1)

    def _per_cluster(self, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        outs = []
        for s, nj, r in zip(self.starts, self.in_sizes, self.rows):
            w = self.weight[r, :nj]
            b = self.bias[r] if self.bias is not None else None
            xj = x.narrow(1, s, nj)
            if channels_last:  # each slice on its own: a channel slice of a channels-last whole is strided
                xj = xj.contiguous(memory_format=torch.channels_last)
            outs.append(F.conv2d(xj, w, b, self.stride, self.padding, self.dilation))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_form(x, self.form)

    def run_form(self, x: torch.Tensor, form: str) -> torch.Tensor:
        # N x in_channels x H x W -> N x out_channels x H' x W', groups in order
        if form.startswith("grouped"):
            return self._grouped(x, form.endswith("channels_last"))
        return self._per_cluster(x, form.endswith("channels_last"))

    def shape_key(self) -> tuple:
        return (self.in_channels, self.starts, self.in_sizes, self.out_sizes, self.kernel_size,
                str(self.stride), str(self.padding), str(self.dilation))

    def fallback_form(self) -> str:
        return fallback_form(self)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, groups={len(self.starts)}, "
                f"in_sizes={list(self.in_sizes)}, out_sizes={list(self.out_sizes)}, form={self.form}")


class ClusterLinear(nn.Module):
    """Linear layer with cluster connectivity: group j maps features ``[start_j, start_j + n_j)``
    to ``m_j`` adjacent outputs (weights stored as in ``ClusterConv2d``)."""

    def __init__(self, in_features: int, starts, in_sizes, out_sizes, *, bias: bool = True):
        super().__init__()
        starts, in_sizes, out_sizes = (tuple(int(v) for v in a) for a in (starts, in_sizes, out_sizes))
        _check_groups(in_features, starts, in_sizes, out_sizes)
        self.in_features, self.starts, self.in_sizes, self.out_sizes = in_features, starts, in_sizes, out_sizes
        self.out_features = sum(out_sizes)
        self.form = "per_cluster"
        m, n = max(out_sizes), max(in_sizes)
        self.weight = nn.Parameter(torch.zeros(len(starts) * m, n))
        self.bias = nn.Parameter(torch.zeros(len(starts) * m)) if bias else None
        self.rows = [slice(j * m, j * m + mj) for j, mj in enumerate(out_sizes)]

    load_dense = ClusterConv2d.load_dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [F.linear(x.narrow(-1, s, nj), self.weight[r, :nj], self.bias[r] if self.bias is not None else None)
                for s, nj, r in zip(self.starts, self.in_sizes, self.rows)]
        return outs[0] if len(outs) == 1 else torch.cat(outs, -1)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, in_sizes={list(self.in_sizes)}, out_sizes={list(self.out_sizes)}"


def fallback_form(module: ClusterConv2d) -> str:
    """The form used when measurement is off: one grouped convolution when the groups have
    equal shapes (no gather, no padding), else one convolution per group (no padding waste)."""
    return "grouped" if module.equal else "per_cluster"


def _key(module, input_shape) -> tuple:
    return (type(module).__name__, module.shape_key(), tuple(input_shape), torch.get_num_threads(),
            str(next(module.parameters()).device))


def clear_form_cache() -> None:
    _CACHE.clear()


def choose_form(module, input_shape, *, measure: bool = True, repeats: int = 7) -> str:
    """The fastest form for ``module`` (a ``ClusterConv2d``, or any module with ``FORMS``,
    ``run_form(x, form)``, ``shape_key()`` and ``fallback_form()``) on inputs of ``input_shape``
    (N, C, H, W), timed side by side on this machine (cached per shape and thread count), or its
    deterministic fallback when ``measure`` is False.  Sets ``module.form`` and returns it."""
    forms = getattr(module, "FORMS", FORMS)
    if not measure:
        module.form = module.fallback_form()
        return module.form
    key = _key(module, input_shape)
    if key not in _CACHE:
        from sparsenet.timing import time_side_by_side  # ground floor: timing helpers only

        x = torch.randn(*input_shape, device=next(module.parameters()).device)
        was = module.training
        module.eval()

        def timed(form):
            def call():
                with torch.no_grad():
                    return module.run_form(x, form)
            return call

        try:
            t = time_side_by_side({f: timed(f) for f in forms}, repeats=repeats, warmup=1, min_time=0.01)
        finally:
            module.train(was)
        _CACHE[key] = min(forms, key=lambda f: t[f].median)
    module.form = _CACHE[key]
    return module.form
