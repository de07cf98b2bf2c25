"""Specs to runnable modules: ``build_module(spec)`` and ``build_network(spec)``.

A module's branches follow torchvision's Inception: ``_forward`` returns the branch outputs in
spec order and ``forward`` concatenates the same outputs (adjacent slices of one bucket merged).  Every conv is followed by (BatchNorm and) ReLU.

The branches of one kernel size run as one *bucket* (``sparsenet.builder.buckets``: the plan,
the grouped realisation of cluster connectivity and its forms); this file puts buckets and the
pool branch together into modules and networks, chooses the forms, and summarises.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsenet.builder.cluster_conv import ClusterMajor, form_for_batch
from sparsenet.builder.buckets import (  # noqa: F401  (Bucket and MaskedConv2d: re-exported)
    DEFAULT_PAD_TOLERANCE,
    Bucket,
    MaskedConv2d,
    _ConvUnit,
    _FusedBranches,
    plan_buckets,
)
from sparsenet.errors import SparsenetError
from sparsenet.models.googlenet import init_weights
from sparsenet.builder.spec import (
    ModuleSpec,
    NetworkSpec,
    PoolSpec,
    check_fits,
    check_placement,
)
from sparsenet.numbers import grouped

__all__ = ["Bucket", "plan_buckets", "MaskedConv2d", "SpecInception", "SpecNetwork",
           "build_module", "build_network", "DEFAULT_PAD_TOLERANCE", "module_summary", "network_summary"]

class _PoolBranch(nn.Module):
    """(gather) -> k x k/1 max pool -> 1x1 projection."""

    def __init__(self, spec: ModuleSpec, pool: PoolSpec):
        super().__init__()
        index, self.window = None, None
        if pool.inputs is not None and list(pool.inputs) != list(range(spec.in_channels)):
            ins = list(pool.inputs)
            if ins == list(range(ins[0], ins[0] + len(ins))):
                self.window = (ins[0], len(ins))  # contiguous (a laid-out producer): a view
            else:
                index = torch.tensor(ins, dtype=torch.long)
        self.register_buffer("index", index, persistent=False)
        self.pool = nn.MaxPool2d(pool.kernel_size, stride=1, padding=pool.kernel_size // 2)
        self.proj = _ConvUnit(pool.n_inputs(spec.in_channels), pool.projection, 1, 1, spec.batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            x = x.index_select(1, self.index)
        elif self.window is not None:
            x = x.narrow(1, *self.window)
        return self.proj(self.pool(x))


class SpecInception(nn.Module):
    """An Inception-like module built from a ModuleSpec; output has ``spec.out_channels`` channels."""

    def __init__(self, spec: ModuleSpec, pad_tolerance: float = DEFAULT_PAD_TOLERANCE, measure_at=None,
                 cluster_major: bool = False, reads_cluster_major: bool | None = None):
        super().__init__()
        if not isinstance(spec, ModuleSpec):
            raise SparsenetError(f"build_module needs a ModuleSpec; got {type(spec).__name__}")
        self.in_channels = spec.in_channels
        self.out_channels = spec.out_channels
        self.widths = tuple(b.width for b in spec.branches) + ((spec.pool.projection,) if spec.pool else ())
        self.plan = plan_buckets(spec, pad_tolerance)
        self.buckets = nn.ModuleList(_FusedBranches(spec, b) for b in self.plan)
        self.pool = _PoolBranch(spec, spec.pool) if spec.pool is not None else None
        where: dict[int, tuple[int, int, int]] = {}
        for bi, bucket in enumerate(self.plan):
            for j, i in enumerate(bucket.members):
                where[i] = (bi, j * bucket.group_width, spec.branches[i].width)
        self._where = [where[i] for i in range(len(spec.branches))]  # (bucket, start, width) per branch
        # the same, with consecutive slices of one bucket output merged: (bucket, start, width)
        # -- forward concatenates these fewer, larger pieces (a whole bucket's narrow is a view)
        runs: list[list] = []
        for b, start, width in self._where:
            if runs and runs[-1][0] == b and runs[-1][1] + runs[-1][2] == start:
                runs[-1][2] += width
            else:
                runs.append([b, start, width])
        self._runs = [tuple(r) for r in runs]
        # spec.output_order: each run (and the pool) is copied straight to its permuted output
        # positions -- the copies the concatenation makes anyway (builder/layout.py)
        self._dest = None
        if spec.output_order is not None and list(spec.output_order) != list(range(spec.out_channels)):
            inverse = [0] * spec.out_channels
            for new, old in enumerate(spec.output_order):
                inverse[old] = new
            sizes = [w for _, _, w in self._runs] + ([spec.pool.projection] if spec.pool is not None else [])
            starts = [sum(sizes[:j]) for j in range(len(sizes))]
            for j, (a, n) in enumerate(zip(starts, sizes)):
                self.register_buffer(f"dest{j}", torch.tensor(inverse[a:a + n], dtype=torch.long), persistent=False)
            self._dest = len(sizes)
        # whether the output can be one bucket's per-cluster outputs as they are: decided here,
        # once, for forward (emits_cluster_major) and for timing the forms (choose_forms)
        self.can_emit_cluster_major = (len(self.buckets) == 1 and self.pool is None and self._dest is None
                                       and self._runs == [(0, 0, self.out_channels)]
                                       and "per_cluster" in self.buckets[0].offered_forms)
        # True: forward returns a ClusterMajor (one tensor per cluster) where emits_cluster_major
        # says it can, for a consumer that reads those clusters (cluster_conv.ClusterMajor)
        self.cluster_major_output = bool(cluster_major)
        init_masked_weights(self)
        if measure_at is not None:  # timed as it will run: cluster-major in and out if asked for
            choose_forms(self, measure_at, cluster_major=self.cluster_major_output,
                         reads_cluster_major=reads_cluster_major)

    def forms(self) -> list[str]:
        return [b.form for b in self.buckets]

    def _pieces(self, x, slices, forms) -> list[torch.Tensor]:
        # N x in_channels x H x W (or a ClusterMajor) -> the (bucket, start, width) slices of the
        # buckets' outputs (each bucket run in forms[i]), then the pool
        dense: list = []  # x concatenated, once, for the readers that need it dense
        # called as modules (not run_form), so that hooks on a bucket see its output
        fused = [bucket(self._input_for(bucket, form, x, dense), form=form)  # N x groups*group_width x H x W
                 for bucket, form in zip(self.buckets, forms)]
        pieces = [fused[b].narrow(1, start, width) for b, start, width in slices]
        if self.pool is not None:
            pieces.append(self.pool(self._input_for(None, None, x, dense)))  # N x projection x H x W
        return pieces

    @staticmethod
    def _input_for(bucket, form, x, dense: list):
        """``x`` as ``bucket`` reads it in ``form``: a ``ClusterMajor`` input stays so for a
        per-cluster form whose groups are its pieces, every other reader gets it dense
        (concatenated once per forward: ``dense`` holds it after the first)."""
        if not isinstance(x, ClusterMajor):
            return x
        if bucket is not None and form.startswith("per_cluster") and bucket.pieces_of(x) is not None:
            return x
        if not dense:
            dense.append(x.dense())
        return dense[0]

    def _forms(self, batch) -> list[str]:
        return [form_for_batch(b, batch) for b in self.buckets]  # each bucket's form, once per forward

    def emits_cluster_major(self, batch: int) -> bool:
        """Whether ``forward`` returns a ``ClusterMajor`` at this batch size: asked for
        (``cluster_major_output``), possible (``can_emit_cluster_major``: one bucket, no pool, no
        output order) and the bucket runs a per-cluster form at this batch size."""
        return self._emits(self._forms(batch))

    def _emits(self, forms) -> bool:
        return self.cluster_major_output and self.can_emit_cluster_major and forms[0].startswith("per_cluster")

    def _forward(self, x) -> list[torch.Tensor]:
        return self._pieces(x, self._where, self._forms(x.shape[0]))  # one per branch, in spec order, then the pool

    def forward(self, x):
        forms = self._forms(x.shape[0])
        if self._emits(forms):
            # cluster-major output: each cluster's output as its conv wrote it, no concatenation
            bucket = self.buckets[0]
            return ClusterMajor(bucket(self._input_for(bucket, forms[0], x, []), as_list=True, form=forms[0]))
        pieces = self._pieces(x, self._runs, forms)
        if self._dest is not None:
            n, _, h, w = pieces[0].shape
            out = pieces[0].new_empty(n, self.out_channels, h, w)
            for j, piece in enumerate(pieces):
                out.index_copy_(1, getattr(self, f"dest{j}"), piece)
            return out  # N x out_channels x H x W, in spec.output_order
        # a single piece (one bucket, no pool) needs no concatenation copy
        y = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)
        return y.contiguous()  # N x out_channels x H x W, NCHW (channels-last buckets too)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, buckets={len(self.plan)}"


class SpecNetwork(nn.Module):
    """stem -> modules (with stride-2 max pools after ``pool_after``) -> global avg pool -> dropout -> fc."""

    def __init__(self, spec: NetworkSpec, pad_tolerance: float = DEFAULT_PAD_TOLERANCE, measure_at=None,
                 cluster_major: bool = False):
        super().__init__()
        from sparsenet.models.inception import BasicConv2d
        from sparsenet.builder.spec import module_input_sizes

        if not isinstance(spec, NetworkSpec):
            raise SparsenetError(f"build_network needs a NetworkSpec; got {type(spec).__name__}")
        check_placement(spec)
        stem, c = [], spec.stem.in_channels
        for width, k, stride in zip(spec.stem.widths, spec.stem.kernel_sizes, spec.stem.strides):
            stem.append(BasicConv2d(c, width, k, stride=stride, padding=k // 2, batch_norm=spec.stem.batch_norm))
            c = width
        if spec.stem.pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        # measure_at = (batch, H, W) of the network's input: each module times its forms at its own input size
        sizes = [None] * len(spec.modules) if measure_at is None else \
            [(_measure_at(measure_at)[0], *hw) for hw in module_input_sizes(spec, _measure_at(measure_at)[1:])]
        # cluster-major activations between modules (opt-in: a block's output is then a ClusterMajor
        # where it can emit one, which hooks on that block see): every block but the last may emit
        # (a block is timed reading cluster-major when the block before it, timed first, emits so
        # at the measured batch size)
        last, blocks = len(spec.modules) - 1, []
        for i, (m, at) in enumerate(zip(spec.modules, sizes)):
            reads = cluster_major and i > 0 and at is not None and blocks[-1].emits_cluster_major(at[0])
            blocks.append(SpecInception(m, pad_tolerance, at, cluster_major and i < last, reads_cluster_major=reads))
        self.blocks = nn.ModuleList(blocks)
        self.pool_after = tuple(spec.pool_after)
        self.downsample = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(spec.head.dropout)
        self.fc = nn.Linear(spec.features, spec.head.num_classes)
        self.in_channels, self.num_classes = spec.stem.in_channels, spec.head.num_classes
        init_masked_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # N x stem.out_channels x H' x W'
        for i, block in enumerate(self.blocks):
            x = block(x)  # N x modules[i].out_channels x h x w (a ClusterMajor where block emits one)
            if i in self.pool_after:
                # h, w halved (rounded up); channel-wise, so a ClusterMajor is pooled piece by piece
                x = x.map(self.downsample) if isinstance(x, ClusterMajor) else self.downsample(x)
        x = torch.flatten(self.avgpool(x), 1)  # N x features (the last block never emits a ClusterMajor)
        return self.fc(self.dropout(x))  # N x num_classes


def _measure_at(value) -> tuple[int, int, int]:
    ok = isinstance(value, (tuple, list)) and len(value) == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise SparsenetError(f"measure_at must be (batch, H, W) of positive integers (None: no measurement); got {value!r}")
    return tuple(value)


def choose_forms(module: SpecInception, measure_at, *, cluster_major: bool = False,
                 reads_cluster_major: bool | None = None) -> list[str]:
    """Time every bucket's forms at ``measure_at`` = (batch, H, W), and at batch 1, and keep the
    fastest (cached per shape; ``sparsenet.builder.cluster_conv.choose_form``).  ``cluster_major``:
    the module writes the cluster-major layout where it can (``cluster_major_output`` is set; its
    bucket is timed with outputs unconcatenated) and reads it (forms timed on a ``ClusterMajor``
    input of each bucket's group slices) unless ``reads_cluster_major`` says otherwise (a network's
    first block reads the stem's dense output)."""
    from sparsenet.builder.cluster_conv import choose_form

    if cluster_major:
        module.cluster_major_output = True
    reads = cluster_major if reads_cluster_major is None else bool(reads_cluster_major)
    for bucket in module.buckets:
        bucket.reads_cluster_major = reads
        bucket.writes_cluster_major = module.cluster_major_output and module.can_emit_cluster_major
    n, h, w = _measure_at(measure_at)
    return [choose_form(b, (n, module.in_channels, h, w)) for b in module.buckets]


def init_masked_weights(model: nn.Module) -> None:
    # As googlenet_small (``init_weights``); then masked weights are re-zeroed so that a fresh
    # module starts with exactly the spec's connections (masking draws nothing from the RNG)
    init_weights(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MaskedConv2d) and m.mask is not None:
                m.weight.mul_(m.mask)


def build_module(spec: ModuleSpec, *, in_channels: int | None = None,
                 pad_tolerance: float = DEFAULT_PAD_TOLERANCE, measure_at=None) -> SpecInception:
    """A runnable module for ``spec``; ``in_channels`` checks it fits the layer it follows.
    ``measure_at`` = (batch, H, W): time each bucket's realisation forms on this machine at that
    input size and use the fastest (None: the deterministic fallback, see ``_FusedBranches``)."""
    if in_channels is not None:
        check_fits(spec, in_channels)
    return SpecInception(spec, pad_tolerance, measure_at)


def build_network(spec: NetworkSpec, *, pad_tolerance: float = DEFAULT_PAD_TOLERANCE,
                  measure_at=None, cluster_major: bool = False) -> SpecNetwork:
    """A runnable network for ``spec`` (each module's in_channels checked against its predecessor).
    ``measure_at`` = (batch, H, W) of the network's input: every module times its realisation forms
    at its own input size (``build_module``); None: the deterministic fallback.  ``cluster_major``:
    modules whose output is one per-cluster bucket pass it on cluster-major (``ClusterMajor``, no
    concatenation; the next module reads its clusters without a copy where they are those pieces)."""
    return SpecNetwork(spec, pad_tolerance, measure_at, cluster_major)


# ---------------------------------------------------------------------------------- summary
def module_summary(spec: ModuleSpec, input_size=None, *, pad_tolerance: float = DEFAULT_PAD_TOLERANCE,
                   title: str = "module") -> str:
    """A text summary: branches, parameters and multiply-adds (as specified and as built)."""
    from sparsenet.models.accounting import count_macs, count_params
    from sparsenet.builder.spec import module_macs, module_params

    model = build_module(spec, pad_tolerance=pad_tolerance)
    lines = [f"{title}: {spec.in_channels} -> {spec.out_channels} channels, connectivity {spec.connectivity}, "
             f"batch_norm {spec.batch_norm}",
             f"  {'#':>3}  {'branch':<6}  {'kernel':<6}  {'width':>6}  {'reduce':>6}  {'reads':>6}"]
    for i, b in enumerate(spec.branches):
        lines.append(f"  {i:>3}  {'conv':<6}  {f'{b.kernel_size}x{b.kernel_size}':<6}  {b.width:>6}  "
                     f"{b.reduce if b.reduce is not None else '-':>6}  {b.n_inputs(spec.in_channels):>6}")
    if spec.pool is not None:
        p = spec.pool
        lines.append(f"  {len(spec.branches):>3}  {'pool':<6}  {f'{p.kernel_size}x{p.kernel_size}':<6}  "
                     f"{p.projection:>6}  {'-':>6}  {p.n_inputs(spec.in_channels):>6}")
    built_params = count_params(model)
    params = module_params(spec)
    extra = "" if built_params == params else f"; built: {grouped(built_params)} incl. zero-weight padding"
    lines.append(f"parameters: {grouped(params)}{extra}")
    if input_size is not None:
        h, w = input_size
        macs, built = module_macs(spec, (h, w)), count_macs(model, (spec.in_channels, h, w))
        extra = "" if built == macs else f"; built: {grouped(built)} incl. zero-weight padding"
        lines.append(f"multiply-adds at {h}x{w}: {grouped(macs)} ({macs / 1e6:.2f}M){extra}")
    else:
        lines.append("multiply-adds: give --input-size H,W")
    kinds = ", ".join(f"{b.kernel_size}x{b.kernel_size}: {b.groups} group{'s' if b.groups > 1 else ''}"
                      + (" padded" if b.padded else "") for b in model.plan)
    lines.append(f"realisation: {len(model.plan)} fused conv stack(s) ({kinds})")
    return "\n".join(lines)


def network_summary(spec: NetworkSpec, input_size=None, *, pad_tolerance: float = DEFAULT_PAD_TOLERANCE) -> str:
    from sparsenet.models.accounting import count_macs, count_params
    from sparsenet.builder.spec import module_input_sizes, network_macs, network_params

    model = build_network(spec, pad_tolerance=pad_tolerance)
    s = spec.stem
    lines = [f"network: stem {s.in_channels} ch -> {list(s.widths)} (kernels {list(s.kernel_sizes)}, strides "
             f"{list(s.strides)}{', max pool' if s.pool else ''}); {len(spec.modules)} modules; pool after "
             f"{list(spec.pool_after)}; head {spec.features} -> {spec.head.num_classes}"]
    sizes = module_input_sizes(spec, input_size) if input_size is not None else [None] * len(spec.modules)
    for i, (m, size) in enumerate(zip(spec.modules, sizes)):
        lines.append(module_summary(m, size, pad_tolerance=pad_tolerance, title=f"module {i}"))
    params, built_params = network_params(spec), count_params(model)
    lines.append(f"network parameters: {grouped(params)}"
                 + ("" if params == built_params else f"; built: {grouped(built_params)}"))
    if input_size is not None:
        h, w = input_size
        macs, built = network_macs(spec, (h, w)), count_macs(model, (s.in_channels, h, w))
        lines.append(f"network multiply-adds at {h}x{w}: {grouped(macs)} ({macs / 1e6:.2f}M)"
                     + ("" if macs == built else f"; built: {grouped(built)}"))
    return "\n".join(lines)
