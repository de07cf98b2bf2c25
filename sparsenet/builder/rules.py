"""From a discovery to a module spec, and scaling a spec to a multiply-add budget.

The rules (docs/builder.md explains them with a worked example)
---------------------------------------------------------------
* Kernel size: a cluster's branch uses the cluster's measured spatial extent
  (``Cluster.kernel_size``: 1, 3, 5, ...).
* Widths follow cluster sizes: at width scale ``f`` a cluster of ``s`` channels gets
  ``width = max(1, round_half_up(f * s))`` output channels.  At ``f = 1`` (no budget) a module
  outputs as many conv-branch channels as the layer has active channels.
* Reductions: a k x k branch (k > 1) gets a 1x1 reduction in front of it of
  ``reduce = max(1, round_half_up(f * s * REDUCE_RATIO[k]))``, with the ratio GoogLeNet uses on
  average (Table 1, nine modules): 3x3 reduce / 3x3 = 0.542, 5x5 reduce / 5x5 = 0.366; kernels
  of 7 and more use the 5x5 ratio.
* Pool branch: kept, a 3x3/1 max pool and a 1x1 projection of
  ``max(1, round_half_up(f * S * POOL_SHARE / (1 - POOL_SHARE)))`` channels, S the total
  (unrounded) conv-branch width, so the projection is the share of the module's output
  GoogLeNet gives it on average (pool proj / output = 0.133).
* Inactive channels (label -1) add no width; in ``cluster`` mode no branch reads them.
* ``full`` connectivity (GoogLeNet style): clusters of one kernel size merge into one branch
  per kernel size (width from the summed sizes); every branch and the pool read all channels.
  Branches in increasing kernel size, then the pool, as in GoogLeNet.
* ``cluster`` connectivity (Arora style): one branch per cluster reading exactly the cluster's
  channels; branches ordered by (kernel size, cluster id); the pool reads all active channels
  (the one place where clusters mix inside the module, as GoogLeNet's pool projection mixes).
* Budget: one scale factor ``f`` on every width (widths above, so integer rounding is built in)
  found by bisection so that ``module_macs`` at the layer's input size is closest to the
  target, then single-width +-1 steps while they bring the MACs closer, until within the
  tolerance (2 %).  A target below the cheapest module (every width 1) is refused, naming the
  cheapest achievable multiply-adds.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from sparsenet.discovery.value import Discovery
from sparsenet.errors import SparsenetError
from sparsenet.models import get_model, model_info
from sparsenet.models.accounting import count_macs, count_params
from sparsenet.models.inception import GOOGLENET_INCEPTION, INCEPTION_ORDER, Inception
from sparsenet.recording import record
from sparsenet.builder.spec import CONNECTIVITIES, DEFAULT_CONNECTIVITY, BranchSpec, ModuleSpec, PoolSpec, module_macs

__all__ = [
    "REDUCE_RATIO_3X3", "REDUCE_RATIO_5X5", "POOL_SHARE", "RULES_VERSION", "CONNECTIVITIES", "DEFAULT_REFERENCE",
    "round_half_up", "reduce_ratio", "module_from_discovery", "module_from_inception", "scale_module",
    "fit_budget", "parse_budget_like", "Reference", "reference_module", "reference_like", "discovery_input_size",
]

RULES_VERSION = 1
DEFAULT_REFERENCE = "googlenet_small:3a"  # the hand-designed module shown beside a built one when none is named
DEFAULT_TOLERANCE = 0.02


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


_TABLE = [GOOGLENET_INCEPTION[k] for k in INCEPTION_ORDER]
# GoogLeNet Table 1 averages over its nine Inception modules.
REDUCE_RATIO_3X3 = _mean(red / out for _, _, red, out, _, _, _ in _TABLE)   # ~0.542
REDUCE_RATIO_5X5 = _mean(red / out for _, _, _, _, red, out, _ in _TABLE)   # ~0.366
POOL_SHARE = _mean(p / (a + c + e + p) for _, a, _, c, _, e, p in _TABLE)    # ~0.133


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _width(x: float) -> int:
    return max(1, round_half_up(x))


def reduce_ratio(kernel_size: int) -> float:
    """The 1x1 reduction width as a fraction of the branch width, for a k x k branch (k > 1)."""
    return REDUCE_RATIO_3X3 if kernel_size <= 3 else REDUCE_RATIO_5X5


def _check_connectivity(connectivity: str) -> None:
    if connectivity not in CONNECTIVITIES:
        raise SparsenetError(f"connectivity must be one of {list(CONNECTIVITIES)}; got {connectivity!r}")


def _check_scale(width_scale: float) -> float:
    if isinstance(width_scale, bool) or not isinstance(width_scale, (int, float)) \
            or not math.isfinite(width_scale) or width_scale <= 0:
        raise SparsenetError(f"width_scale must be a positive number; got {width_scale!r}")
    return float(width_scale)


def module_from_discovery(discovery: Discovery, *, connectivity: str = DEFAULT_CONNECTIVITY,
                          batch_norm: bool = False, width_scale: float = 1.0,
                          pool: bool = True) -> ModuleSpec:
    """The module spec the rules make from a discovery (see the module docstring)."""
    if not isinstance(discovery, Discovery):
        raise SparsenetError(f"expected a Discovery (sparsenet.discovery.value.load_discovery); got {type(discovery).__name__}")
    _check_connectivity(connectivity)
    f = _check_scale(width_scale)
    if connectivity == "full":
        sizes: dict[int, int] = {}
        for c in discovery.clusters:
            sizes[c.kernel_size] = sizes.get(c.kernel_size, 0) + c.size
        groups = [(k, sizes[k], None) for k in sorted(sizes)]
    else:
        ordered = sorted(discovery.clusters, key=lambda c: (c.kernel_size, c.id))
        groups = [(c.kernel_size, c.size, tuple(sorted(c.channels))) for c in ordered]
    branches = [
        BranchSpec(kernel_size=k, width=_width(f * s),
                   reduce=None if k == 1 else _width(f * s * reduce_ratio(k)), inputs=inputs)
        for k, s, inputs in groups
    ]
    pool_spec = None
    if pool:
        total = f * sum(s for _, s, _ in groups)
        active = tuple(i for i, label in enumerate(discovery.labels) if label >= 0)
        reads = None if connectivity == "full" or len(active) == discovery.channels else active
        pool_spec = PoolSpec(projection=_width(total * POOL_SHARE / (1 - POOL_SHARE)), inputs=reads)
    provenance = {
        "made_by": f"sparsenet.rules v{RULES_VERSION}", "connectivity": connectivity,
        "width_scale": f, "clusters": discovery.n_clusters, "inactive": len(discovery.inactive),
    }
    for key in ("model", "layer", "layer_shape"):
        if key in discovery.provenance:
            provenance[key] = discovery.provenance[key]
    return ModuleSpec(in_channels=discovery.channels, branches=tuple(branches), pool=pool_spec,
                      connectivity=connectivity, batch_norm=batch_norm, provenance=provenance)


def module_from_inception(in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                          ch5x5: int, pool_proj: int, *, batch_norm: bool = False) -> ModuleSpec:
    """A hand-designed GoogLeNet Inception module (Table 1 widths) as a spec."""
    return ModuleSpec(
        in_channels=in_channels,
        branches=(BranchSpec(1, ch1x1), BranchSpec(3, ch3x3, ch3x3red), BranchSpec(5, ch5x5, ch5x5red)),
        pool=PoolSpec(projection=pool_proj), connectivity="full", batch_norm=batch_norm,
        provenance={"made_by": "module_from_inception"},
    )


def scale_module(spec: ModuleSpec, factor: float) -> ModuleSpec:
    """Every width of ``spec`` (branch, reduction, projection) times ``factor``, rounded half up, >= 1."""
    f = _check_scale(factor)
    branches = tuple(replace(b, width=_width(f * b.width),
                             reduce=None if b.reduce is None else _width(f * b.reduce)) for b in spec.branches)
    pool = None if spec.pool is None else replace(spec.pool, projection=_width(f * spec.pool.projection))
    return replace(spec, branches=branches, pool=pool)


# ---------------------------------------------------------------------------------- budget

def _fields(spec: ModuleSpec) -> list[tuple[int | None, str]]:
    out: list[tuple[int | None, str]] = []
    for i, b in enumerate(spec.branches):
        out.append((i, "width"))
        if b.reduce is not None:
            out.append((i, "reduce"))
    if spec.pool is not None:
        out.append((None, "projection"))
    return out


def _step(spec: ModuleSpec, where: int | None, name: str, delta: int) -> ModuleSpec | None:
    if where is None:
        value = spec.pool.projection + delta
        return None if value < 1 else replace(spec, pool=replace(spec.pool, projection=value))
    b = spec.branches[where]
    value = getattr(b, name) + delta
    if value < 1:
        return None
    branches = list(spec.branches)
    branches[where] = replace(b, **{name: value})
    return replace(spec, branches=tuple(branches))


def fit_budget(make: Callable[[float], ModuleSpec] | ModuleSpec, target_macs: int,
               input_size: Sequence[int], *, tolerance: float = DEFAULT_TOLERANCE,
               max_steps: int = 500) -> ModuleSpec:
    """The spec whose multiply-adds at ``input_size`` are within ``tolerance`` of ``target_macs``.

    ``make(f)`` gives the spec at width scale ``f`` (e.g. ``lambda f: module_from_discovery(d,
    width_scale=f)``); a ModuleSpec is scaled with ``scale_module``.  The result records the
    target, the achieved MACs, the factor and the number of +-1 steps in its provenance.
    """
    if isinstance(make, ModuleSpec):
        base = make
        make = lambda f: scale_module(base, f)  # noqa: E731
    if isinstance(target_macs, bool) or not isinstance(target_macs, (int, float)) or not target_macs > 0:
        raise SparsenetError(f"the multiply-add budget must be a positive number; got {target_macs!r}")
    size = tuple(int(v) for v in input_size)

    def macs(s: ModuleSpec) -> int:
        return module_macs(s, size)

    cheapest = make(1e-12)
    if macs(cheapest) > target_macs * (1 + tolerance):
        raise SparsenetError(
            f"budget of {target_macs:,.0f} multiply-adds at input {size[0]}x{size[1]} cannot be met: "
            f"the cheapest module with these branches (every width 1) needs {macs(cheapest):,} "
            f"multiply-adds; give a budget >= {macs(cheapest):,}")
    lo, hi = 0.0, 1.0
    while macs(make(hi)) <= target_macs:
        lo, hi = hi, hi * 2
        if hi > 2 ** 40:
            raise SparsenetError(f"budget of {target_macs:,.0f} multiply-adds is unreachably large")
    for _ in range(64):   # invariant: macs(lo) <= target < macs(hi)  (lo = 0 means the cheapest)
        mid = (lo + hi) / 2
        if macs(make(mid)) <= target_macs:
            lo = mid
        else:
            hi = mid
    candidates = [(abs(macs(s) - target_macs), f, s) for f, s in ((lo, make(lo) if lo > 0 else cheapest),
                                                                  (hi, make(hi)))]
    _, factor, spec = min(candidates, key=lambda c: c[0])
    steps = 0
    best = abs(macs(spec) - target_macs)
    while best > tolerance * target_macs and steps < max_steps:
        moves = [_step(spec, w, n, d) for w, n in _fields(spec) for d in (-1, 1)]
        scored = [(abs(macs(m) - target_macs), m) for m in moves if m is not None]
        err, move = min(scored, key=lambda c: c[0])
        if err >= best:
            break
        spec, best, steps = move, err, steps + 1
    achieved = macs(spec)
    if abs(achieved - target_macs) > tolerance * target_macs:
        raise SparsenetError(
            f"budget of {target_macs:,.0f} multiply-adds at input {size[0]}x{size[1]} cannot be met within "
            f"{tolerance:.0%}: the nearest module found needs {achieved:,}")
    budget = {"target_macs": int(round(target_macs)), "macs": achieved, "input_size": list(size),
              "width_scale": factor, "adjust_steps": steps, "tolerance": tolerance}
    return replace(spec, provenance={**spec.provenance, "width_scale": factor, "budget": budget})


# ---------------------------------------------------------------------------------- reference

_LIKE = re.compile(r"^(?P<model>[A-Za-z0-9_]+)(?:@(?P<mult>[0-9]*\.?[0-9]+))?:(?P<stage>[0-9][a-z])$")


@lru_cache(maxsize=16)  # building the reference network to measure one module is the slow part
def reference_like(text: str) -> "Reference":
    """The reference module a ``MODEL[@MULT]:STAGE`` text names, e.g. 'googlenet_small@0.5:3a'."""
    model, mult, stage = parse_budget_like(text)
    return reference_module(model, stage, mult)


def parse_budget_like(text: str) -> tuple[str, float, str]:
    """'googlenet_small@0.5:3a' -> ('googlenet_small', 0.5, '3a')."""
    m = _LIKE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise SparsenetError(f"--budget-like {text!r} is not MODEL[@WIDTH_MULT]:STAGE; expected e.g. "
                             f"'googlenet_small:3a' or 'googlenet_small@0.5:4b' (stages {', '.join(INCEPTION_ORDER)})")
    if m["stage"] not in INCEPTION_ORDER:
        raise SparsenetError(f"stage {m['stage']!r} is not an Inception stage; expected one of {', '.join(INCEPTION_ORDER)}")
    mult = float(m["mult"]) if m["mult"] else 1.0
    if mult <= 0:
        raise SparsenetError(f"width multiplier in {text!r} must be > 0")
    return m["model"], mult, m["stage"]


@dataclass(frozen=True)
class Reference:
    name: str                        # e.g. "googlenet_small@0.5:3a"
    spec: ModuleSpec                 # the hand-designed module, as a spec
    input_size: tuple[int, int]      # (H, W) the module sees inside the model at its default input
    macs: int                        # multiply-adds of the module there (FlopCounterMode)
    params: int                      # parameters of the module


def reference_module(model: str, stage: str, width_mult: float = 1.0) -> Reference:
    """The Inception module ``inception<stage>`` of a registered model, measured where it runs.

    The model is built (random weights) and one zero image of its default input size is run
    through it, recording the module's input (``recording.record(..., inputs=True)``).  The MACs
    are those of the module alone at that input (``accounting.count_macs``).
    """
    kwargs = {} if width_mult == 1.0 else {"width_mult": width_mult}
    net = get_model(model, **kwargs)
    block = getattr(net, f"inception{stage}", None)
    if not isinstance(block, Inception):
        raise SparsenetError(f"model {model!r} has no Inception module 'inception{stage}'")
    seen = record(net, f"inception{stage}", torch.zeros(1, *model_info(model).default_input), inputs=True)
    _, c, h, w = seen.shape
    spec = module_from_inception(
        c, block.branch1.conv.out_channels, block.branch2[0].conv.out_channels,
        block.branch2[1].conv.out_channels, block.branch3[0].conv.out_channels,
        block.branch3[1].conv.out_channels, block.branch4[1].conv.out_channels)
    mult = "" if width_mult == 1.0 else f"@{width_mult:g}"
    name = f"{model}{mult}:{stage}"
    spec = replace(spec, provenance={"made_by": "reference_module", "reference": name, "input_size": [h, w]})
    return Reference(name, spec, (h, w), count_macs(block, (c, h, w)), count_params(block))


def discovery_input_size(discovery: Discovery) -> tuple[int, int] | None:
    """(H, W) of the analysed layer's output (the module's input) from provenance.layer_shape."""
    shape = discovery.provenance.get("layer_shape")
    if shape is None:
        return None
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise SparsenetError(f"discovery provenance.layer_shape is {shape!r}; expected [C, H, W] of positive integers")
    if shape[0] != discovery.channels:
        raise SparsenetError(f"discovery provenance.layer_shape {shape!r} says C={shape[0]}, "
                             f"but the discovery has {discovery.channels} channels")
    return shape[1], shape[2]
