"""GoogLeNet's skeleton as a spec, and swapping a discovered module into it.

``googlenet_spec(width_mult, num_modules)`` writes ``googlenet_small`` (see
:mod:`sparsenet.models.googlenet`) as a :class:`~sparsenet.builder.spec.NetworkSpec`::

    stem:  3x3/1 conv c1, 1x1 conv c2, 3x3/1 conv c3, 3x3/2 max pool    (STEM widths x width_mult)
    modules: inception3a, 3b, [pool] 4a .. 4e, [pool] 5a, 5b (the first num_modules; Table 1
             widths x width_mult, rounded half up, at least 1), via ``module_from_inception``
    head:  global average pool, dropout 0.4, linear

It has exactly the parameters and multiply-adds of ``get_model("googlenet_small", ...)`` as long
as every max pool sees an even-sized map: the builder's pools pad by one and round down, the
model's pools do not pad and round up (Caffe), which gives the same output size for even inputs
and one more row/column for odd ones.  At 28 px that means up to seven modules (the 7 x 7 map
before 5a is odd); at 16 or 32 px all nine.  ``pool_mismatch`` says where the two differ and
``googlenet_spec(..., input_size=...)`` refuses such a skeleton.  (The pool windows are also
aligned one pixel apart, so the two networks are the same architecture, not the same function.)

The swap (``discover_and_swap``): train the skeleton, record the *input* of stage S (a forward
pre-hook on the module, i.e. the output of whatever precedes it, pools included), cluster it
(:func:`sparsenet.discover.analyse`), build a module from the clusters with
:func:`sparsenet.builder.rules.fit_budget` at the multiply-adds of the hand-designed module it replaces,
and put it in stage S's place.  The module after S then reads the new module's channels (its
``in_channels`` changes, and with it its cost: the network's total multiply-adds are measured,
not assumed).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sparsenet.builder.rules import fit_budget, module_from_discovery, module_from_inception
from sparsenet.builder.spec import (DEFAULT_CONNECTIVITY, HeadSpec, ModuleSpec, NetworkSpec, StemSpec, conv_out, module_input_sizes,
                                    module_macs, save_spec)
from sparsenet.data import normalize
from sparsenet.discover import Activations, analyse, write_run
from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json
from sparsenet.models.googlenet import STEM, check_num_modules, pool_out, scale_width
from sparsenet.models.inception import GOOGLENET_INCEPTION, INCEPTION_ORDER
from sparsenet.models.registry import check_positive_float
from sparsenet.recording import record

__all__ = ["googlenet_spec", "pool_mismatch", "stage_index", "swap_module", "record_module_input",
           "discover_and_swap"]


def _check(width_mult: Any, num_modules: Any) -> None:
    check_positive_float("width_mult", width_mult)
    check_num_modules(num_modules)


def pool_mismatch(num_modules: int, input_size: int | tuple[int, int]) -> list[str]:
    """Where the spec's max pools give another map size than googlenet_small's ("" list: none)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    pools = ["stem pool"] + [f"pool before inception{k}" for k in INCEPTION_ORDER[:num_modules] if k in ("4a", "5a")]
    out = []
    for name in pools:
        spec_hw = conv_out(h, 3, 2), conv_out(w, 3, 2)
        model_hw = pool_out(h), pool_out(w)
        if spec_hw != model_hw:
            out.append(f"{name}: {h}x{w} -> {spec_hw[0]}x{spec_hw[1]} in the spec, "
                       f"{model_hw[0]}x{model_hw[1]} in googlenet_small")
        h, w = model_hw
    return out


def googlenet_spec(width_mult: float = 1.0, num_modules: int = 9, *, num_classes: int = 10,
                   in_channels: int = 1, batch_norm: bool = False, dropout: float = 0.4,
                   input_size: int | tuple[int, int] | None = None) -> NetworkSpec:
    """``googlenet_small(width_mult, num_modules, ...)`` as a NetworkSpec (see the module docstring).

    With ``input_size`` a skeleton whose pools would not match googlenet_small's at that size is
    refused (so its cost equals the model's exactly).
    """
    _check(width_mult, num_modules)
    if input_size is not None:
        bad = pool_mismatch(num_modules, input_size)
        if bad:
            raise SparsenetError(
                f"googlenet_small with {num_modules} modules cannot be written as a spec at input {input_size}: "
                f"{'; '.join(bad)}. The builder's pools pad and round down; use an input size that keeps every "
                "pooled map even (16 or 32 px), or at 28 px at most 7 modules")
    c1, c2, c3 = (scale_width(w, width_mult) for w in STEM)
    stem = StemSpec(in_channels=in_channels, widths=(c1, c2, c3), kernel_sizes=(3, 1, 3), strides=(1, 1, 1),
                    pool=True, batch_norm=batch_norm)
    modules, channels, pool_after = [], c3, []
    keys = INCEPTION_ORDER[:num_modules]
    for i, key in enumerate(keys):
        if key in ("4a", "5a"):  # googlenet_small pools between 3b/4a and 4e/5a
            pool_after.append(i - 1)
        _, *widths = GOOGLENET_INCEPTION[key]
        module = module_from_inception(channels, *(scale_width(w, width_mult) for w in widths), batch_norm=batch_norm)
        module = replace(module, provenance={"made_by": "googlenet_spec", "stage": key, "width_mult": width_mult})
        modules.append(module)
        channels = module.out_channels
    provenance = {"made_by": "sparsenet.skeleton.googlenet_spec", "model": "googlenet_small",
                  "width_mult": width_mult, "num_modules": num_modules, "stages": list(keys)}
    return NetworkSpec(stem=stem, modules=tuple(modules), pool_after=tuple(pool_after),
                       head=HeadSpec(num_classes=num_classes, dropout=dropout), provenance=provenance)


def stage_index(spec: NetworkSpec, stage: str) -> int:
    """Index in ``spec.modules`` of Inception stage ``stage`` ('3a', '3b', ...)."""
    stages = list(spec.provenance.get("stages") or INCEPTION_ORDER[: len(spec.modules)])
    if stage not in stages:
        raise SparsenetError(f"stage {stage!r} is not in this skeleton; its stages are {', '.join(stages)}")
    return stages.index(stage)


def swap_module(spec: NetworkSpec, index: int, module: ModuleSpec) -> NetworkSpec:
    """``spec`` with ``modules[index]`` replaced by ``module``; the next module reads its channels."""
    if not 0 <= index < len(spec.modules):
        raise SparsenetError(f"module index {index} is outside 0..{len(spec.modules) - 1}")
    old = spec.modules[index]
    if module.in_channels != old.in_channels:
        raise SparsenetError(f"the new module reads {module.in_channels} channels, but modules[{index}] "
                             f"reads {old.in_channels}")
    modules = list(spec.modules)
    modules[index] = module
    if index + 1 < len(modules):
        modules[index + 1] = replace(modules[index + 1], in_channels=module.out_channels)
    stages = list(spec.provenance.get("stages") or [])
    provenance = {**spec.provenance, "swapped": {"index": index, "stage": stages[index] if stages else None,
                                                 "hand_out_channels": old.out_channels,
                                                 "new_out_channels": module.out_channels}}
    return replace(spec, modules=tuple(modules), provenance=provenance)


def record_module_input(model: torch.nn.Module, index: int, x: torch.Tensor, batch_size: int = 250,
                        device=None) -> torch.Tensor:
    """The input of ``model.blocks[index]`` (a SpecNetwork) for every image of ``x``, N x C x H x W
    (recorded on ``device``, returned on the CPU)."""
    if device is not None:
        model.to(device)
    return record(model, f"blocks.{index}", x, batch_size=batch_size, inputs=True, device=device).cpu()


def discover_and_swap(model: torch.nn.Module, skeleton: NetworkSpec, stage: str, dataset, analysis, out_dir,
                      *, connectivity: str = DEFAULT_CONNECTIVITY, tolerance: float = 0.02,
                      device=None) -> dict[str, Any]:
    """Record stage ``stage``'s input in a trained skeleton, discover, fit and swap; write the results.

    Writes ``out_dir/discovery/`` (discovery.json, plots, report), ``module.json`` (the fitted
    module), ``swap.json`` (this summary) and ``network.json`` (the swapped network, written last).  Returns a summary with the
    hand-designed module's multiply-adds (the target) and the new module's, and the wall time taken (``time_s``).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    index = stage_index(skeleton, stage)
    mean, std = dataset.mean_std()
    x = normalize(dataset.x_train[: analysis.max_samples], mean, std)
    acts = record_module_input(model, index, x, device=device)
    size = module_input_sizes(skeleton, dataset.input_shape[1:])[index]
    if tuple(acts.shape[2:]) != tuple(size):  # before clustering and writing anything
        raise SparsenetError(f"recorded input of stage {stage} is {tuple(acts.shape[2:])}, the spec says {size}")
    layer = "stem" if index == 0 else f"input of blocks.{index} (stage {stage})"
    info = Activations(acts, {"model": "specnet", "layer": layer, "data": dataset.name, "split": "train",
                              "layer_shape": list(acts.shape[1:]), "skeleton": skeleton.provenance})
    analyzer, discovery = analyse(info, analysis)
    write_run(analyzer, discovery, out / "discovery")
    hand = skeleton.modules[index]
    target = module_macs(hand, size)
    module = fit_budget(lambda f: module_from_discovery(discovery, connectivity=connectivity, width_scale=f),
                        target, size, tolerance=tolerance)
    module = replace(module, provenance={**module.provenance, "replaces": stage})
    swapped = swap_module(skeleton, index, module)
    summary = {"stage": stage, "index": index, "input_size": list(size), "input_channels": int(acts.shape[1]),
               "hand_module_macs": target, "module_macs": module_macs(module, size),
               "clusters": discovery.n_clusters, "cluster_sizes": [c.size for c in discovery.clusters],
               "kernel_sizes": [c.kernel_size for c in discovery.clusters],
               "inactive": len(discovery.inactive), "connectivity": connectivity,
               "hand_out_channels": hand.out_channels, "module_out_channels": module.out_channels,
               "significance": discovery.to_dict()["significance"], "stability": discovery.stability,
               "cluster_stability": [c.stability for c in discovery.clusters],
               "time_s": time.perf_counter() - t0}
    save_spec(module, out / "module.json")
    atomic_write_json(out / "swap.json", summary)
    save_spec(swapped, out / "network.json")  # last: its presence marks the swap done
    return summary
