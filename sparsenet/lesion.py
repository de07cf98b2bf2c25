"""The lesion pipeline: does each discovered cluster matter to what the network computes?

For each cluster, its channels are set to zero at the discovered layer's output (a forward hook)
and the test accuracy is measured again: the **drop** (overall and per class) is the accuracy
lost.  Against it stands a **null** of random channel sets of the same size, drawn from the
same channels the clusters partition (the active ones: a dead channel costs nothing to remove,
so drawing those would flatter the clusters), ``null_sets`` sets per distinct size, shared by the
clusters of that size.  Per cluster: ``z = (drop - mean null drop) / std null drop`` and the
one-sided ``p = (1 + #{null drop >= drop}) / (null_sets + 1)`` (the smallest p is
1 / (null_sets + 1)).  Drops per channel (drop / size) are reported too: a large cluster that
matters more than a small one is not evidence by itself.

:func:`lesion` works on any ``nn.Module`` and tensors; :func:`run_lesion` is ``sparsenet
lesion`` (a checkpoint and its test split) and writes ``DIR/lesion.json`` and
``DIR/lesion.png`` (drop against cluster size, with the null's 95 % band).  This module imports
torch only inside its functions, so the command line reads its defaults.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from sparsenet.errors import SparsenetError

__all__ = ["lesion", "null_sets", "run_lesion", "NULL_SETS", "NULL_SEED"]

NULL_SETS = 100   # random channel sets per distinct cluster size
NULL_SEED = 0


def null_sets(groups: list[list[int]], n: int, seed: int = NULL_SEED) -> dict[int, list[list[int]]]:
    """size -> ``n`` random sets of that many channels, drawn without replacement from the
    channels of ``groups``, for every distinct group size."""
    import numpy as np

    from sparsenet.limits import MAX_NULL_SETS

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NULL_SETS:
        raise SparsenetError(f"null_sets must be an integer from 1 to {MAX_NULL_SETS:,}, got {n!r}")
    pool = np.array(sorted(c for g in groups for c in g))
    rng = np.random.default_rng(seed)
    return {size: [sorted(rng.choice(pool, size, replace=False).tolist()) for _ in range(n)]
            for size in sorted({len(g) for g in groups})}


def _accuracies(model, layer: str, channels, x, y, num_classes: int, batch_size: int = 500):
    """(overall accuracy, per-class accuracies) with ``channels`` of ``layer``'s output zeroed."""
    import torch

    module = model.get_submodule(layer)
    idx = None if channels is None else torch.as_tensor(list(channels), dtype=torch.long)

    def hook(mod, args, out):
        if idx is not None:
            out = out.clone()
            out[:, idx.to(out.device)] = 0
            return out
        return None

    handle = module.register_forward_hook(hook)
    device = next(model.parameters()).device
    preds = []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out = model(x[i:i + batch_size].to(device))
                preds.append((out[0] if isinstance(out, (tuple, list)) else out).argmax(1).cpu())
    finally:
        handle.remove()
    right = (torch.cat(preds) == y).double()
    per_class = [float(right[y == k].mean()) if bool((y == k).any()) else math.nan for k in range(num_classes)]
    return float(right.mean()), per_class


def lesion(model, layer: str, groups: list[list[int]], x, y, num_classes: int, *, n_null: int = NULL_SETS,
           seed: int = NULL_SEED, progress: bool = False) -> dict[str, Any]:
    """Accuracy drop of zeroing each group at ``layer`` against random sets of the same sizes."""
    import numpy as np
    from tqdm.auto import tqdm

    if layer not in dict(model.named_modules()):
        raise SparsenetError(f"layer {layer!r} is not in the model; give a name model.named_modules() lists")
    was = model.training
    model.eval()
    try:
        base, base_class = _accuracies(model, layer, None, x, y, num_classes)
        null = null_sets(groups, n_null, seed)
        jobs = [("cluster", j, g) for j, g in enumerate(groups)] + \
               [("null", s, c) for s, sets in null.items() for c in sets]
        drops: dict = {}
        for kind, key, chans in tqdm(jobs, desc="lesion", leave=False, disable=None if progress else True):
            acc, per = _accuracies(model, layer, chans, x, y, num_classes)
            drops.setdefault((kind, key), []).append((base - acc, [b - a for b, a in zip(base_class, per)]))
    finally:
        model.train(was)
    clusters = []
    for j, g in enumerate(groups):
        drop, per_class = drops[("cluster", j)][0]
        nd = np.array([d for d, _ in drops[("null", len(g))]])
        sd = float(nd.std(ddof=1)) if len(nd) > 1 else 0.0
        clusters.append({
            "cluster": j, "size": len(g), "channels": list(g), "drop": drop, "drop_per_channel": drop / len(g),
            "drop_per_class": per_class, "null_mean": float(nd.mean()), "null_std": sd,
            "null_low": float(np.quantile(nd, 0.025)), "null_high": float(np.quantile(nd, 0.975)),
            "z": (drop - float(nd.mean())) / sd if sd > 0 else (0.0 if drop == nd.mean() else math.copysign(math.inf, drop - nd.mean())),
            "p": (1 + int((nd >= drop - 1e-12).sum())) / (len(nd) + 1),
        })
    return {"layer": layer, "accuracy": base, "accuracy_per_class": base_class, "clusters": clusters,
            "null": {"sets_per_size": n_null, "seed": seed, "sizes": sorted(null),
                     "drawn_from": "the channels of the clusters (active channels)",
                     "drops": {str(s): [d for d, _ in drops[("null", s)]] for s in null}}}


def plot(result: dict, path) -> None:
    """Drop against cluster size: clusters as points, the null's mean and 95 % band per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sparsenet.io import atomic_savefig

    sizes = result["null"]["sizes"]
    drops = {int(s): v for s, v in result["null"]["drops"].items()}
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    lo = [np.quantile(drops[s], 0.025) for s in sizes]
    hi = [np.quantile(drops[s], 0.975) for s in sizes]
    mean = [np.mean(drops[s]) for s in sizes]
    # one error bar per size: the null is drawn only at the clusters' sizes
    ax.errorbar(sizes, mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)], fmt="s", color="0.5",
                capsize=6, label="null: random channel sets, mean and 95 % band")
    for c in result["clusters"]:
        ax.scatter(c["size"], c["drop"], color="C3", zorder=3)
        ax.annotate(f"{c['cluster']} (p={c['p']:.2g})", (c["size"], c["drop"]), textcoords="offset points",
                    xytext=(5, 3), fontsize=8)
    ax.scatter([], [], color="C3", label="discovered clusters")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(min(sizes) - 1, max(sizes) + 1)
    ax.set_xlabel("cluster size (channels zeroed)")
    ax.set_ylabel("test accuracy drop")
    ax.set_title(f"lesion of {result['layer']} (accuracy {result['accuracy']:.3f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def run_lesion(checkpoint, discovery_path, out, *, layer: str | None = None, n_null: int = NULL_SETS,
               seed: int = NULL_SEED, data: str | None = None, data_root: str | None = None, device="auto",
               progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """``sparsenet lesion``: computed first, then DIR/lesion.json and DIR/lesion.png written."""
    from sparsenet.apply import discovered_groups
    from sparsenet.data import load_dataset, normalize
    from sparsenet.device import resolve_device
    from sparsenet.discovery.value import load_discovery
    from sparsenet.io import atomic_write_json, check_out_dir, entries, roll_back
    from sparsenet.training.checkpoint import model_from_checkpoint
    from sparsenet.training.config import DEFAULT_DATA

    out = check_out_dir(out)
    null_sets([[0]], n_null)  # a bad count is refused before anything loads
    dev = resolve_device(device)
    discovery = load_discovery(discovery_path)
    groups = discovered_groups(discovery)
    layer = layer or (discovery.provenance or {}).get("layer")
    if not layer:
        raise SparsenetError("the discovery does not say which layer it analysed; name it with --layer")
    net, ckpt = model_from_checkpoint(checkpoint)
    dataset = load_dataset(data or ckpt.get("dataset") or DEFAULT_DATA, data_root, seed=0)
    norm = ckpt.get("normalization")
    mean, std = (norm["mean"], norm["std"]) if norm else dataset.mean_std()
    x = normalize(dataset.x_test, mean, std)
    net.to(dev)
    shape = _output_channels(net, layer, dataset.input_shape)
    if shape != discovery.channels:
        raise SparsenetError(f"layer {layer!r} has {shape} channels but the discovery has {discovery.channels}: it "
                             "is a discovery of another layer or model")
    if progress:
        print(f"lesioning {len(groups)} clusters of {layer} against {n_null} random sets per size", file=sys.stderr)
    result = lesion(net, layer, groups, x, dataset.y_test, dataset.num_classes, n_null=n_null, seed=seed,
                    progress=progress)
    result.update(checkpoint=str(checkpoint), discovery=str(discovery_path), dataset=dataset.name,
                  classes=list(dataset.classes), command=command)
    before = entries(out)
    try:
        atomic_write_json(out / "lesion.json", result)
        plot(result, out / "lesion.png")
    except BaseException:
        roll_back(out, before)
        raise
    return result


def _output_channels(model, layer: str, input_shape) -> int:
    import torch

    if layer not in dict(model.named_modules()):
        raise SparsenetError(f"layer {layer!r} is not in the model; `sparsenet discover --list-layers` lists them")
    seen = {}

    def hook(mod, args, out):
        seen.setdefault("c", out.shape[1])

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        handle.remove()
    return int(seen["c"])
