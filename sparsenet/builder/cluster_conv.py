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

The fastest form depends on the batch size (at batch 1 ATen's own im2col kernel runs a
per-group NCHW conv on a channel slice that is already contiguous, no copy; at batch 64 oneDNN's
channels-last kernels win), so :func:`choose_form` can time the forms at several batch sizes
(``batches``); ``module.batch_forms`` then maps each measured batch size to its form and
``forward`` uses the form measured for the largest batch size not above its input's
(:func:`form_for_batch`).

Two helpers shared with the builder (``modules.py``): :func:`conv2d_fused` runs a convolution
with its ReLU fused into the same oneDNN call when no gradient is needed (channels-last inputs
only: those go to oneDNN anyway; the arithmetic is the same, tested equal), and
:class:`ClusterMajor` is the cluster-major activation layout: a tuple of one channels-last
tensor per cluster, so that a per-cluster consumer reads each cluster without a copy and a
per-cluster producer writes them without a concatenation (docs/performance.md, section 7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparsenet.errors import SparsenetError

__all__ = ["FORMS", "ClusterConv2d", "ClusterLinear", "ClusterMajor", "choose_form", "fallback_form",
           "clear_form_cache", "conv2d_fused", "form_for_batch", "as_dense"]

FORMS = ("grouped", "grouped_channels_last", "per_cluster", "per_cluster_channels_last")
# batch sizes the forms are also timed at, beside the input's: at batch 1 the fastest form differs
# (module docstring), and batch-1 latency is what a deployed network is judged on
ALSO_TIMED_AT = (1,)
_CACHE: dict[tuple, str] = {}
_POINTWISE = None
if torch.backends.mkldnn.is_available():
    _POINTWISE = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


def _pair(v) -> list[int]:
    return [int(a) for a in v] if isinstance(v, (tuple, list)) else [int(v)] * 2


def conv2d_fused(x: torch.Tensor, weight: torch.Tensor, bias, stride=1, padding=0, dilation=1, groups: int = 1,
                 relu: bool = False) -> torch.Tensor:
    """``F.conv2d`` then (if ``relu``) an in-place ReLU.  Where no gradient is needed and the input
    is a channels-last float32 CPU tensor (it goes to oneDNN either way), one oneDNN call with the
    ReLU as a post-op (``mkldnn._convolution_pointwise``, what inductor emits): no second pass over
    the output.  Same arithmetic (tested equal); elsewhere the plain two calls."""
    if (_POINTWISE is not None and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and not isinstance(padding, str) and x.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                  or (bias is not None and bias.requires_grad)))):
        try:
            return _POINTWISE(x, weight.contiguous(), bias, _pair(padding), _pair(stride), _pair(dilation), groups,
                              "relu" if relu else "none", [], "")
        except RuntimeError:  # an unsupported case in this build: the plain calls below
            pass
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return y.relu_() if relu else y


class ClusterMajor(tuple):
    """Activations in the cluster-major layout: a tuple of ``N x C_j x H x W`` tensors (each
    contiguous, channels-last), together the channels ``0 .. sum(C_j)`` in order.  A per-cluster
    consumer reads piece j as it is; :meth:`dense` is the usual NCHW tensor (one concatenation)."""

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(t.shape[1]) for t in self)

    @property
    def shape(self) -> torch.Size:
        n, _, h, w = self[0].shape
        return torch.Size((n, sum(self.sizes), h, w))

    def slices(self) -> dict[tuple[int, int], int]:
        """(start, size) of each piece -> its index (built once: every per-cluster reader asks)."""
        if "_slices" not in self.__dict__:
            out, pos = {}, 0
            for i, n in enumerate(self.sizes):
                out[(pos, n)] = i
                pos += n
            self._slices = out
        return self._slices

    def dense(self) -> torch.Tensor:
        """N x C x H x W, NCHW-contiguous."""
        y = self[0] if len(self) == 1 else torch.cat(tuple(self), 1)
        return y.contiguous()

    def map(self, fn) -> "ClusterMajor":
        """``fn`` (a channel-wise op: pooling, activation) applied to every piece."""
        return ClusterMajor(fn(t) for t in self)

    @staticmethod
    def split(x: torch.Tensor, sizes) -> "ClusterMajor":
        """An NCHW tensor laid out cluster-major (one channels-last copy per piece)."""
        pos, out = 0, []
        for n in sizes:
            out.append(x.narrow(1, pos, n).contiguous(memory_format=torch.channels_last))
            pos += n
        if pos != x.shape[1]:
            raise SparsenetError(f"cluster-major sizes {list(sizes)} do not add up to the {x.shape[1]} channels")
        return ClusterMajor(out)


def as_dense(x) -> torch.Tensor:
    """``x`` as one N x C x H x W tensor: a ``ClusterMajor`` concatenated, anything else as it is."""
    return x.dense() if isinstance(x, ClusterMajor) else x


def form_for_batch(module, batch: int) -> str:
    """The form ``module`` runs at ``batch``: from ``module.batch_forms`` (batch size -> form,
    as :func:`choose_form` measured it) the one for the largest measured batch size not above
    ``batch`` (the smallest measured if all are above), else ``module.form``."""
    table = getattr(module, "batch_forms", None)
    if not table or not isinstance(batch, int):  # e.g. a torch.fx proxy while tracing: the main form
        return module.form
    below = [b for b in table if b <= batch]
    return table[max(below) if below else min(table)]


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
        self.batch_forms: dict[int, str] | None = None  # batch size -> form (choose_form with batches)
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
        return self.run_form(x, form_for_batch(self, x.shape[0]))

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


def choose_form(module, input_shape, *, measure: bool = True, repeats: int = 7, batches=ALSO_TIMED_AT) -> str:
    """The fastest form for ``module`` (a ``ClusterConv2d``, or any module with ``run_form(x, form)``,
    ``shape_key()``, ``fallback_form()`` and optionally ``offered_forms``) on inputs of ``input_shape``
    (N, C, H, W), timed side by side on this machine (cached per shape and thread count), or its
    deterministic fallback when ``measure`` is False.  Sets ``module.form`` and returns it.

    ``batches``: further batch sizes to time the forms at (``ALSO_TIMED_AT`` unless given; ``()``
    for none); where that measures more than one size, ``module.batch_forms`` maps every measured
    batch size (``input_shape``'s included) to its fastest form and ``forward`` picks by its
    input's batch size (:func:`form_for_batch`).  With ``measure`` False, ``batch_forms`` is cleared."""
    forms = getattr(module, "offered_forms", FORMS)
    if not measure:
        module.form = module.fallback_form()
        module.batch_forms = None
        return module.form
    table = {}
    for n in dict.fromkeys((int(input_shape[0]),) + tuple(int(b) for b in (batches or ()))):
        shape = (n,) + tuple(input_shape[1:])
        key = _key(module, shape)
        if key not in _CACHE:
            _CACHE[key] = _fastest(module, forms, shape, repeats)
        table[n] = _CACHE[key]
    module.form = table[int(input_shape[0])]
    module.batch_forms = table if len(table) > 1 else None
    return module.form


def _fastest(module, forms, input_shape, repeats: int) -> str:
    from sparsenet.timing import time_side_by_side  # ground floor: timing helpers only

    x = torch.randn(*input_shape, device=next(module.parameters()).device)
    if hasattr(module, "example_input"):  # the layout the module reads (e.g. cluster-major)
        x = module.example_input(x)
    run = getattr(module, "time_form", module.run_form)
    was = module.training
    module.eval()

    def timed(form):
        def call():
            with torch.no_grad():
                return run(x, form)
        return call

    try:
        t = time_side_by_side({f: timed(f) for f in forms}, repeats=repeats, warmup=1, min_time=0.01)
    finally:
        module.train(was)
    return min(forms, key=lambda f: t[f].median)
