"""Buckets: the branches of one kernel size that run as one grouped conv stack (``plan_buckets``),
and the realisation of one bucket in every form the chooser times (``_FusedBranches``).

How ``cluster`` connectivity is realised
----------------------------------------
A cluster branch reads only its own channels.  Running one small conv per cluster would be a
Python loop of tiny kernels; a block-diagonal mask on one dense conv would pay for all the
zeros.  Instead, branches with the same kernel size are *bucketed* and each bucket runs as
one gather and one grouped convolution stack:

1. ``x.index_select(1, index)`` gathers the bucket's input channels so that each cluster's
   channels are contiguous (one copy of the channels the bucket reads);
2. a 1x1 conv with ``groups = g`` (the number of clusters in the bucket) makes every cluster's
   reduction from its own channels only; then
3. a k x k conv with ``groups = g`` maps each cluster's reduction to its own output channels.

A grouped conv needs equal group shapes.  Clusters of equal shape (input channels, reduction,
width) share a bucket with no waste.  Clusters of nearly equal shape share one too: each is
padded to the bucket's largest shape, the padding's weights are fixed at zero by a constant mask
(``weight * mask`` in every forward, so they stay zero under training) and the padded output
channels are dropped.  A cluster joins a bucket only while the padded multiply-adds stay within
``pad_tolerance`` (default 0.25) of the exact ones; otherwise it starts a new bucket.  So a
module runs ``#distinct-shape groups`` grouped convs per kernel size, not one per cluster, and
computes at most 25 % more than its connections need.  ``plan_buckets(spec)`` shows the plan;
``pad_tolerance=0`` allows equal shapes only.

Padded input slots gather one of the cluster's own channels (with zero weight), so no branch
output ever depends on a channel outside its cluster, exactly (its gradient there is 0).
Branches that read all channels (``inputs`` null, e.g. ``full`` connectivity) are one bucket
each: a plain conv stack, as in GoogLeNet.

Speed (``sparsenet bench``, docs/performance.md).  ReLUs run in place on their conv's output.
Grouped buckets of 5x5 (or larger) kernels convert their gathered input to channels-last,
where oneDNN's grouped kernels for the few channels per cluster are 1.1-1.8x faster, layout
copies included; grouped 3x3 buckets stay NCHW (the copies cost what the kernel gains).  A
module whose output is one bucket's output skips the concatenation; the output is NCHW.
Other forms were measured and not adopted as the fallback: one small dense conv stack per
cluster (fastest single-threaded at batch 64, but G times the operations: slower at batch 1 and
with several threads on a busy machine; ``measure_at`` picks it where it is faster), a
block-masked dense conv and batched matrix products over the unfolded input (both slower).

Cluster-major activations (docs/performance.md, section 7).  A per-cluster bucket can read a
``ClusterMajor`` input (one channels-last tensor per cluster, as a per-cluster producer writes
them) without copying a channel slice, and a module built with ``cluster_major_output`` (set by
``choose_forms(..., cluster_major=True)`` or ``build_network(..., cluster_major=True)``) returns
its clusters' outputs that way instead of concatenating them; any other reader gets the input
concatenated once.  In inference (eval, no grad) the per-cluster forms fold batch norm into each
group's conv and fuse its ReLU into the same oneDNN call (``cluster_conv.conv2d_fused``).
With several torch threads a per-cluster bucket also offers ``per_cluster_threads``: its
clusters dealt to that many worker threads, each conv one-threaded (torch's process-wide thread
count is set to 1 for the bucket and restored), one hand-off per bucket instead of one OpenMP
parallel region per small conv; the chooser keeps it only where it measures faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import torch.nn.functional as F

from sparsenet.builder.cluster_conv import FORMS as CLUSTER_FORMS, ClusterMajor, as_dense, conv2d_fused, form_for_batch
from sparsenet.builder.spec import BranchSpec, ModuleSpec
from sparsenet.errors import SparsenetError

__all__ = ["Bucket", "plan_buckets", "MaskedConv2d", "DEFAULT_PAD_TOLERANCE"]


DEFAULT_PAD_TOLERANCE = 0.25
CHANNELS_LAST_MIN_KERNEL = 5  # grouped buckets with kernels this large run channels-last
# per-cluster buckets with several torch threads: the clusters split over the threads, each
# cluster's convs one-threaded (one hand-off per bucket instead of a parallel region per conv)
THREADED_FORM = "per_cluster_threads"
_POOL: dict[int, object] = {}


def _thread_pool(n: int):
    from concurrent.futures import ThreadPoolExecutor

    if n not in _POOL:
        _POOL[n] = ThreadPoolExecutor(n, thread_name_prefix="sparsenet-cluster")
    return _POOL[n]


@dataclass(frozen=True)
class Bucket:
    kernel_size: int                 # kernel size shared by the bucket's branches
    members: tuple[int, ...]         # indices into spec.branches, in group order
    group_inputs: int                # input channels per group (largest member's, after padding)
    group_reduce: int | None         # reduction channels per group (None for 1x1 branches)
    group_width: int                 # output channels per group
    reads_all: bool                  # True: one branch reading all input channels (no gather)
    exact_macs_per_pixel: int        # multiply-adds per pixel the members' connections need
    padded_macs_per_pixel: int       # multiply-adds per pixel the grouped convs perform

    @property
    def groups(self) -> int:
        return len(self.members)

    @property
    def padded(self) -> bool:
        return self.padded_macs_per_pixel != self.exact_macs_per_pixel


def _shape(b: BranchSpec, in_channels: int) -> tuple[int, int, int]:
    return b.n_inputs(in_channels), (b.reduce or 0), b.width


def _macs(k: int, s: int, r: int, w: int) -> int:
    return s * w if k == 1 else s * r + k * k * r * w


def _bucket(spec: ModuleSpec, k: int, members: list[int], reads_all: bool) -> Bucket:
    shapes = [_shape(spec.branches[i], spec.in_channels) for i in members]
    s, r, w = (max(v[j] for v in shapes) for j in range(3))
    return Bucket(k, tuple(members), s, r if k > 1 else None, w, reads_all,
                  sum(_macs(k, *v) for v in shapes), len(members) * _macs(k, s, r, w))


def plan_buckets(spec: ModuleSpec, pad_tolerance: float = DEFAULT_PAD_TOLERANCE) -> list[Bucket]:
    """How the builder groups the spec's branches into grouped convs (see the module docstring)."""
    if isinstance(pad_tolerance, bool) or not isinstance(pad_tolerance, (int, float)) or pad_tolerance < 0:
        raise SparsenetError(f"pad_tolerance must be a number >= 0 (0: equal shapes only); got {pad_tolerance!r}")
    buckets: list[Bucket] = []
    kernels = list(dict.fromkeys(b.kernel_size for b in spec.branches))
    for k in kernels:
        idx = [i for i, b in enumerate(spec.branches) if b.kernel_size == k]
        for i in idx:
            if spec.branches[i].inputs is None:
                buckets.append(_bucket(spec, k, [i], reads_all=True))
        explicit = [i for i in idx if spec.branches[i].inputs is not None]
        # largest shapes first; ties keep spec order
        explicit.sort(key=lambda i: tuple(-v for v in _shape(spec.branches[i], spec.in_channels)))
        current: list[int] = []
        for i in explicit:
            trial = _bucket(spec, k, current + [i], reads_all=False)
            if current and trial.padded_macs_per_pixel > (1 + pad_tolerance) * trial.exact_macs_per_pixel:
                buckets.append(_bucket(spec, k, current, reads_all=False))
                current = [i]
            else:
                current.append(i)
        if current:
            buckets.append(_bucket(spec, k, current, reads_all=False))
    return sorted(buckets, key=lambda b: min(b.members))


class MaskedConv2d(nn.Conv2d):
    """A (grouped) conv whose weight is multiplied by a constant 0/1 mask in every forward.

    Masked weights are zero from the start and get zero gradient, so they stay zero.  With
    ``mask=None`` it is a plain ``nn.Conv2d``.
    """

    def __init__(self, *args, mask: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", mask, persistent=False)
        if mask is not None:
            if mask.shape != self.weight.shape:
                raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
            with torch.no_grad():
                self.weight.mul_(mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.mask is None else self.weight * self.mask
        return self._conv_forward(x, weight, self.bias)


def _block_mask(out_per_group: int, in_per_group: int, k: int, valid: list[tuple[int, int]]):
    """0/1 mask of a grouped conv weight: group j keeps rows < valid[j][0], columns < valid[j][1]."""
    if all(v == (out_per_group, in_per_group) for v in valid):
        return None
    mask = torch.zeros(len(valid) * out_per_group, in_per_group, k, k)
    for j, (rows, cols) in enumerate(valid):
        mask[j * out_per_group: j * out_per_group + rows, :cols] = 1.0
    return mask


class _ConvUnit(nn.Sequential):
    """(masked, grouped) conv -> (BatchNorm) -> ReLU."""

    def __init__(self, c_in, c_out, k, groups, batch_norm, mask=None):
        layers = [MaskedConv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=not batch_norm, mask=mask)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))  # on the conv's own output: no extra tensor
        super().__init__(*layers)


def _unit_slice(unit: nn.Sequential, x: torch.Tensor, rows: slice, cols: int) -> torch.Tensor:
    """One group of a grouped ``_ConvUnit`` as a small dense conv (weight rows, first ``cols``
    columns), its batch norm on the same rows (views: running statistics update in place), ReLU."""
    conv = unit[0]
    y = F.conv2d(x, conv.weight[rows, :cols], conv.bias[rows] if conv.bias is not None else None,
                 padding=conv.padding)
    if len(unit) == 3:
        bn = unit[1]
        y = F.batch_norm(y, bn.running_mean[rows], bn.running_var[rows], bn.weight[rows], bn.bias[rows],
                         bn.training, bn.momentum if bn.momentum is not None else 0.1, bn.eps)
    return y.relu_()


def _folded(unit: nn.Sequential, rows: slice, cols: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One group of a ``_ConvUnit`` as (weight, bias) of a plain conv, batch norm (eval mode:
    running statistics) folded in: ``w * g / sqrt(v + eps)``, ``beta + (b - mean) * g / sqrt(v + eps)``."""
    conv = unit[0]
    w = conv.weight[rows, :cols].detach()
    b = conv.bias[rows].detach() if conv.bias is not None else None
    if len(unit) == 3:
        bn = unit[1]
        scale = bn.weight[rows].detach() / torch.sqrt(bn.running_var[rows] + bn.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = bn.bias[rows].detach() + ((b if b is not None else 0.0) - bn.running_mean[rows]) * scale
    return w.contiguous(), (None if b is None else b.contiguous())


class _FusedBranches(nn.Module):
    """One bucket: gather -> grouped 1x1 reduction -> grouped k x k conv (or a grouped 1x1).

    Forms (the same function and weights; ``sparsenet.builder.cluster_conv.choose_form`` times
    them when the module is built with ``measure_at``): ``grouped`` and
    ``grouped_channels_last`` (one gather, grouped convs), and, for buckets whose groups need no
    padding, ``per_cluster`` and ``per_cluster_channels_last`` (a small dense stack per group on
    a view of its channels where they are contiguous, else on its own gather)."""

    def __init__(self, spec: ModuleSpec, bucket: Bucket):
        super().__init__()
        k, g = bucket.kernel_size, bucket.groups
        s, r, w = bucket.group_inputs, bucket.group_reduce, bucket.group_width
        branches = [spec.branches[i] for i in bucket.members]
        index, window = None, None
        if not bucket.reads_all:
            gathered = []
            for b in branches:
                gathered += list(b.inputs) + [b.inputs[0]] * (s - len(b.inputs))  # pad with own channel
            if gathered == list(range(gathered[0], gathered[0] + len(gathered))):
                window = (gathered[0], len(gathered))  # contiguous (a permuted producer): a view, no gather
            else:
                index = torch.tensor(gathered, dtype=torch.long)
        self.register_buffer("index", index, persistent=False)
        self.window = None if window == (0, spec.in_channels) else window
        bn = spec.batch_norm
        n_in = [b.n_inputs(spec.in_channels) for b in branches]
        self._kernel = k
        if k == 1:
            self.reduce = None
            self.conv = _ConvUnit(g * s, g * w, 1, g, bn, _block_mask(w, s, 1, [(b.width, n) for b, n in zip(branches, n_in)]))
        else:
            self.reduce = _ConvUnit(g * s, g * r, 1, g, bn, _block_mask(r, s, 1, [(b.reduce, n) for b, n in zip(branches, n_in)]))
            self.conv = _ConvUnit(g * r, g * w, k, g, bn, _block_mask(w, r, k, [(b.width, b.reduce) for b in branches]))
        # per-group forms need the grouped output layout unpadded (every width = w)
        self._per_group = g > 1 and all(b.width == w for b in branches)
        self._groups = [(n, b.reduce, b.width) for b, n in zip(branches, n_in)]
        self._inputs = [None if b.inputs is None else list(b.inputs) for b in branches]
        self._slices = []
        for j, ins in enumerate(self._inputs):
            if ins is None or ins == list(range(ins[0], ins[0] + len(ins))):
                self._slices.append((0 if ins is None else ins[0], n_in[j]))
            else:
                self.register_buffer(f"index{j}", torch.tensor(ins, dtype=torch.long), persistent=False)
                self._slices.append(None)
        self._shape = (spec.in_channels, k, g, s, r, w, tuple(self._groups), tuple(None if x is None else tuple(x) for x in self._inputs))
        self.form = self.fallback_form()
        self.batch_forms: dict[int, str] | None = None  # batch size -> form (choose_form with batches)

    @property
    def offered_forms(self) -> tuple[str, ...]:
        """The forms ``choose_form`` times: per-cluster ones need the grouped output unpadded (every
        width equal); the threaded one is offered by the thread count when timed, as the form
        cache is keyed (a bucket built with one thread and timed with two gets it)."""
        if not self._per_group:
            return CLUSTER_FORMS[:2]
        return CLUSTER_FORMS + ((THREADED_FORM,) if torch.get_num_threads() > 1 else ())

    def fallback_form(self) -> str:
        # grouped 5x5 (and larger) convs run channels-last: there oneDNN's NHWC kernels beat
        # NCHW by 1.1-1.8x even with the two layout copies; grouped 3x3 convs do not gain
        # enough to pay for them (measured: `sparsenet bench`, docs/performance.md)
        return "grouped_channels_last" if len(self._groups) > 1 and self._kernel >= CHANNELS_LAST_MIN_KERNEL \
            else "grouped"

    def shape_key(self) -> tuple:
        return self._shape + (self.reads_cluster_major, self.writes_cluster_major)

    # the layouts the bucket runs between (set by modules.choose_forms), so that its forms are
    # timed as they will run: its input as a cluster-major producer writes it, and its groups'
    # outputs left unconcatenated for a module that emits them cluster-major
    reads_cluster_major = False
    writes_cluster_major = False

    def example_input(self, x: torch.Tensor):
        if self.reads_cluster_major and all(w is not None for w in self._slices):
            starts = [w[0] for w in self._slices]
            if starts == sorted(starts) and starts[0] == 0 and all(
                    a[0] + a[1] == b[0] for a, b in zip(self._slices, self._slices[1:])) \
                    and sum(w[1] for w in self._slices) == x.shape[1]:
                return ClusterMajor.split(x, [w[1] for w in self._slices])
        return x

    def time_form(self, x, form: str):
        return self.run_form(x, form, as_list=self.writes_cluster_major)

    @property
    def channels_last(self) -> bool:
        """Whether the current form runs channels-last (setting it keeps the grouped/per-cluster choice)."""
        return self.form.endswith("channels_last")

    @channels_last.setter
    def channels_last(self, value: bool) -> None:
        kind = self.form.removesuffix("_channels_last")
        self.form = f"{kind}_channels_last" if value else kind

    def _grouped(self, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
        if self.index is not None:
            x = x.index_select(1, self.index)  # N x g*s x H x W, clusters contiguous
        elif self.window is not None:
            x = x.narrow(1, *self.window)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.reduce is not None:
            x = self.reduce(x)  # N x g*r x H x W
        return self.conv(x)  # N x g*w x H x W

    def _group_rows(self):
        r = self.reduce[0].out_channels // len(self._groups) if self.reduce is not None else 0
        w = self.conv[0].out_channels // len(self._groups)
        return r, w

    def _inference_params(self):
        """Per group: [(weight, bias) of the 1x1 reduction (if any), (weight, bias) of the k x k
        conv], batch norm folded, contiguous; cached until a weight or statistic changes."""
        tensors = [t for t in list(self.parameters()) + list(self.buffers()) if t is not None]
        key = tuple((id(t), t._version) for t in tensors)
        if getattr(self, "_params_key", None) != key:
            r, w = self._group_rows()
            params = []
            for j, (n, rj, wj) in enumerate(self._groups):
                if self.reduce is not None:
                    params.append([_folded(self.reduce, slice(j * r, j * r + rj), n),
                                   _folded(self.conv, slice(j * w, j * w + wj), rj)])
                else:
                    params.append([_folded(self.conv, slice(j * w, j * w + wj), n)])
            self._params, self._params_key = params, key
        return self._params

    def _group_input(self, x, j: int, channels_last: bool, pieces):
        where = self._slices[j]
        if pieces is not None:  # cluster-major input: this group's channels are one piece, as stored
            return x[pieces[j]]
        xj = x.narrow(1, *where) if where is not None else x.index_select(1, getattr(self, f"index{j}"))
        if channels_last:  # each slice on its own: a channel slice of a channels-last whole is strided
            xj = xj.contiguous(memory_format=torch.channels_last)
        return xj

    def pieces_of(self, x) -> list[int] | None:
        """For a ``ClusterMajor`` input whose pieces are exactly this bucket's group slices: the
        piece each group reads; else None (the input is used dense)."""
        if not isinstance(x, ClusterMajor) or any(w is None for w in self._slices):
            return None
        table = x.slices()
        found = [table.get(tuple(w)) for w in self._slices]
        return None if any(i is None for i in found) else found

    def _per_cluster(self, x, channels_last: bool, as_list: bool = False, threads: bool = False):
        pieces = self.pieces_of(x)
        if isinstance(x, ClusterMajor) and pieces is None:
            x = x.dense()
        outs = []
        if not self.training and not torch.is_grad_enabled():
            # inference: batch norm folded into each group's conv, ReLU fused into it (one oneDNN
            # call per conv where the input is channels-last), no weight slicing per call
            pad = self.conv[0].padding
            params = self._inference_params()

            def group(j):
                y = self._group_input(x, j, channels_last, pieces)
                if len(params[j]) == 2:
                    y = conv2d_fused(y, *params[j][0], relu=True)
                return conv2d_fused(y, *params[j][-1], padding=pad, relu=True)

            n = torch.get_num_threads()
            if threads and n > 1 and len(params) > 1:
                # the groups dealt round-robin to n worker threads, every conv one-threaded
                # (torch's thread count is process-wide: restored before returning)
                def part(js):
                    return [(j, group(j)) for j in js]

                torch.set_num_threads(1)
                try:
                    futures = [_thread_pool(n).submit(part, range(i, len(params), n)) for i in range(n)]
                    done = dict(pair for f in futures for pair in f.result())
                finally:
                    torch.set_num_threads(n)
                outs = [done[j] for j in range(len(params))]
            else:
                outs = [group(j) for j in range(len(params))]
        else:
            r, w = self._group_rows()
            for j, (n, rj, wj) in enumerate(self._groups):
                xj = self._group_input(x, j, channels_last, pieces)
                if self.reduce is not None:
                    xj = _unit_slice(self.reduce, xj, slice(j * r, j * r + rj), n)
                    outs.append(_unit_slice(self.conv, xj, slice(j * w, j * w + wj), rj))
                else:
                    outs.append(_unit_slice(self.conv, xj, slice(j * w, j * w + wj), n))
        if as_list:
            return outs
        return torch.cat(outs, 1)  # N x g*w x H x W (every width w: the grouped layout)

    def run_form(self, x, form: str, as_list: bool = False):
        """The bucket's output in ``form`` (``x``: an N x C x H x W tensor or a ``ClusterMajor``);
        ``as_list``: per-cluster forms return the groups' outputs unconcatenated."""
        if form.startswith("grouped"):
            y = self._grouped(as_dense(x), form.endswith("channels_last"))
            return [y] if as_list else y
        if form == THREADED_FORM:  # per_cluster_channels_last, the groups spread over the threads
            return self._per_cluster(x, True, as_list, threads=True)
        return self._per_cluster(x, form.endswith("channels_last"), as_list)

    def forward(self, x, as_list: bool = False, form: str | None = None):
        # form: the caller's lookup of form_for_batch, done once per forward (SpecInception)
        return self.run_form(x, form or form_for_batch(self, x.shape[0]), as_list)
