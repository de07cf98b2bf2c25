"""The apply pipeline: a trained network and a discovery of one of its layers -> the network
with that layer's clusters as contiguous slices and its consumers in cluster connectivity.

:func:`apply_discovery` is the Python entry point (any registered or traced ``nn.Module``);
:func:`run_apply` is ``sparsenet apply``: it loads a checkpoint and its dataset, applies the
discovery and a **random-cluster control** (the same cluster sizes, channels drawn at random
from the same active channels), optionally fine-tunes both with the same recipe, and writes
``DIR/checkpoint.pt`` (the ``applied`` registry entry, loadable by every command),
``DIR/control/checkpoint.pt`` and ``DIR/metrics.json``.  How the rewrite works, and the rule
that assigns each output channel to a cluster, is in :mod:`sparsenet.builder.rewrite`.

This module imports torch only inside its functions, so the command line reads its defaults.
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

from sparsenet.builder.spec import ASSIGNMENTS, DEFAULT_ASSIGNMENT
from sparsenet.errors import SparsenetError

__all__ = ["apply_discovery", "random_groups", "discovered_groups", "run_apply", "FINETUNE_LR", "CONTROL_SEED"]

log = logging.getLogger(__name__)

FINETUNE_LR = 0.01   # peak learning rate of fine-tuning (a fifth of training's: the weights are trained)
CONTROL_SEED = 0     # seed of the random-cluster control's channel draw
METRIC_KEYS = ("macs_before", "macs_after", "params_before", "params_after",
               "accuracy_before", "accuracy_applied", "accuracy_after")


def discovered_groups(discovery) -> list[list[int]]:
    """The discovery's clusters as channel lists (a partition; overlapping ones are refused)."""
    if discovery.overlapping:
        raise SparsenetError("the discovery has overlapping clusters (method 'arora'): a channel in two clusters "
                             "cannot sit in two contiguous slices; apply and lesion need a partition "
                             "(method 'spectral')")
    return [sorted(c.channels) for c in discovery.clusters]


def random_groups(groups: list[list[int]], seed: int = CONTROL_SEED) -> list[list[int]]:
    """Random groups of the same sizes over the same channels (the control)."""
    import numpy as np

    pool = np.random.default_rng(seed).permutation([c for g in groups for c in g]).tolist()
    out, pos = [], 0
    for g in groups:
        out.append(sorted(int(c) for c in pool[pos:pos + len(g)]))
        pos += len(g)
    return out


def _layer_of(discovery, layer: str | None) -> str:
    layer = layer or (discovery.provenance or {}).get("layer")
    if not layer:
        raise SparsenetError("the discovery does not say which layer it analysed (provenance.layer); name it with "
                             "layer=... (--layer)")
    return layer


def apply_discovery(model, discovery, input_shape, *, layer: str | None = None, groups=None,
                    measure: bool = True, batch: int = 64, assign: str = DEFAULT_ASSIGNMENT):
    """(a rewritten copy of ``model``, the rewrite record) for ``discovery`` of ``layer``
    (default: the layer the discovery names).  ``groups`` replaces the discovery's clusters (the
    control); ``measure`` times the realisation forms at ``batch`` x ``input_shape`` (else the
    deterministic fallback); ``assign`` is the rule giving output channels to clusters
    (:data:`~sparsenet.builder.spec.ASSIGNMENTS`).  ``model`` itself is not changed."""
    from sparsenet.builder.rewrite import cluster_consumers, locate, permute_channels

    layer = _layer_of(discovery, layer)
    groups = discovered_groups(discovery) if groups is None else [sorted(int(c) for c in g) for g in groups]
    net = copy.deepcopy(model).eval()
    site = locate(net, layer, input_shape)
    if discovery.channels != site.channels:
        raise SparsenetError(f"the discovery has {discovery.channels} channels but layer {layer!r} comes from "
                             f"{site.producer!r} with {site.channels}: it is a discovery of another layer or model")
    flat = [c for g in groups for c in g]
    perm = flat + [c for c in range(site.channels) if c not in set(flat)]
    permute_channels(net, site, perm)
    sizes = [len(g) for g in groups]
    starts = [sum(sizes[:j]) for j in range(len(sizes))]
    record = cluster_consumers(net, site, sizes, starts, input_shape, measure=measure, batch=batch, assign=assign)
    return net, {**record, "layer": layer, "permutation": perm, "cluster_sizes": sizes, "groups": groups}


def _cost(model, input_shape) -> tuple[int, int]:
    from sparsenet.models.accounting import measure

    c = measure(model, tuple(input_shape))
    return c.macs, c.params


def _arm(base, discovery, groups, dataset, x_test, info, *, epochs, lr, seed, device, progress, measure, assign):
    """Apply (with ``groups``), evaluate, fine-tune, evaluate: (model, metrics, record)."""
    from sparsenet.training.config import TrainConfig
    from torch.utils.data import TensorDataset

    from sparsenet.training.loop import evaluate, train

    test = TensorDataset(x_test, dataset.y_test)
    shape = tuple(dataset.input_shape)
    net, record = apply_discovery(base, discovery, shape, groups=groups, measure=measure, assign=assign)
    macs_b, params_b = _cost(base, shape)
    macs_a, params_a = _cost(net, shape)
    kwargs = {"base": info["model"], "base_kwargs": info["model_kwargs"], "rewrite": _structure(record)}
    m = {"macs_before": macs_b, "macs_after": macs_a, "params_before": params_b, "params_after": params_a,
         "accuracy_before": evaluate(base, test), "accuracy_applied": evaluate(net, test)}
    if epochs:
        config = TrainConfig(epochs=epochs, lr=lr, seed=seed).validate()
        train(net, dataset, config, model_name="applied", model_kwargs=kwargs, progress=progress, device=device)
        net.cpu().eval()
    m["accuracy_after"] = evaluate(net, test) if epochs else m["accuracy_applied"]
    return net, m, record, kwargs


def _structure(record: dict) -> dict:
    """What rebuilds the network (the consumers' shapes and forms); the rest is provenance."""
    keep = ("name", "kind", "starts", "in_sizes", "out_sizes", "per", "form", "restore")
    return {"consumers": [{k: c[k] for k in keep} for c in record["consumers"]]}


def run_apply(checkpoint, discovery_path, out, *, finetune_epochs: int = 0, lr: float = FINETUNE_LR,
              layer: str | None = None, data: str | None = None, data_root: str | None = None,
              device="auto", seed: int = 0, control_seed: int = CONTROL_SEED, measure: bool = True,
              assign: str = DEFAULT_ASSIGNMENT, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """``sparsenet apply``: everything is computed, then written through a staging directory."""
    from sparsenet.data import load_dataset, normalize
    from sparsenet.device import resolve_device
    from sparsenet.discovery.value import load_discovery
    from sparsenet.io import check_out_dir, entries, roll_back
    from sparsenet.models.external import parse_model_spec
    from sparsenet.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from sparsenet.training.config import DEFAULT_DATA, TrainConfig

    out = check_out_dir(out)
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise SparsenetError(f"finetune_epochs must be an integer >= 0 (0: no fine-tuning), got {finetune_epochs!r}")
    if assign not in ASSIGNMENTS:
        raise SparsenetError(f"unknown output assignment {assign!r}; accepted: {', '.join(ASSIGNMENTS)}")
    # the fine-tuning recipe's rules, before anything loads (lr is recorded even without fine-tuning)
    TrainConfig(epochs=max(finetune_epochs, 1), lr=lr, seed=seed).validate()
    dev = resolve_device(device)
    discovery = load_discovery(discovery_path)
    groups = discovered_groups(discovery)
    ckpt = load_checkpoint(checkpoint)
    if parse_model_spec(ckpt["model"]).imported:
        raise SparsenetError(f"{checkpoint} holds the user model {ckpt['model']!r}; `sparsenet apply` writes a "
                             "checkpoint every command loads, which needs a registered base model (from Python, "
                             "sparsenet.apply.apply_discovery rewrites any traceable model)")
    if ckpt["model"] == "applied":
        raise SparsenetError(f"{checkpoint} is already an applied network; apply a discovery to the original "
                             "checkpoint (one rewritten layer per network for now)")
    base, _ = model_from_checkpoint(checkpoint)
    dataset = load_dataset(data or ckpt.get("dataset") or DEFAULT_DATA, data_root, seed=seed)
    norm = ckpt.get("normalization")
    mean, std = (norm["mean"], norm["std"]) if norm else dataset.mean_std()
    x_test = normalize(dataset.x_test, mean, std)
    info = {"model": ckpt["model"], "model_kwargs": ckpt["model_kwargs"]}
    common = dict(epochs=finetune_epochs, lr=lr, seed=seed, device=dev, progress=progress, measure=measure,
                  assign=assign)
    if progress:
        print(f"applying {len(groups)} clusters to {_layer_of(discovery, layer)} of {ckpt['model']}", file=sys.stderr)
    net, metrics, record, kwargs = _arm(base, _with_layer(discovery, layer), None, dataset, x_test, info, **common)
    control_groups = random_groups(groups, control_seed)
    cnet, cmetrics, crecord, ckwargs = _arm(base, _with_layer(discovery, layer), control_groups, dataset, x_test,
                                            info, **common)
    # the seven numbers of each arm at the top; what was run under "provenance"
    result = {**metrics, "control": cmetrics,
              "provenance": {"layer": record["layer"], "cluster_sizes": record["cluster_sizes"],
                             "control_groups": control_groups, "control_seed": control_seed, "assignment": assign,
                             "finetune": {"epochs": finetune_epochs, "lr": lr, "seed": seed},
                             "rewrite": record, "control_rewrite": crecord, "discovery": str(discovery_path),
                             "checkpoint": str(checkpoint), "dataset": dataset.name, "command": command}}
    before = entries(out)
    try:
        for where, model, kw in ((out, net, kwargs), (out / "control", cnet, ckwargs)):
            save_checkpoint(where / "checkpoint.pt", model="applied", model_kwargs=kw, state_dict=model.state_dict(),
                            epoch=finetune_epochs, dataset=dataset.name, input_shape=list(dataset.input_shape),
                            normalization={"mean": list(mean), "std": list(std)},
                            extra={"applied_from": str(checkpoint), "discovery": str(discovery_path)})
        from sparsenet.io import atomic_write_json

        atomic_write_json(out / "metrics.json", result)
    except BaseException:
        roll_back(out, before)
        raise
    return result


def _with_layer(discovery, layer):
    from dataclasses import replace

    return replace(discovery, provenance={**(discovery.provenance or {}), "layer": _layer_of(discovery, layer)})
