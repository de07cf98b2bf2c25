"""The user's own model on a device: forward latency per batch, and how fast the statistics of
its deepest spatial layer stream, beside the forward pass that produces the activations.

``sparsenet bench --model SPEC [--model-arg K=V] [--weights FILE] --input-size C,H,W --device D``
builds the model (an import path runs the user's code), and times side by side, on random
inputs of the given shape:

* ``forward_b{B}``: one forward pass of a batch of B (eval, ``no_grad``), ms;
* ``record_stats_b{B}``: the forward pass up to the layer plus ``ChannelStats.partial_fit`` of
  its activations on the same device (what ``sparsenet discover`` does per batch), ms.

The figure is ``record_stats / forward`` per batch size: the price of the statistics relative
to running the network (no target: it depends on the layer's width; the statistics cost about
``C^2 (R + 2)`` multiply-adds per position).
"""

from __future__ import annotations

import torch

from sparsenet.timing import paired_ratio, summary_row, time_side_by_side


def run(model: str, model_args: dict | None, weights: str | None, input_size, *, device=None,
        batches=(1, 64), repeats: int = 5, layer: str | None = None) -> dict:
    from sparsenet.device import resolve_device
    from sparsenet.discover import default_layer
    from sparsenet.models.accounting import measure
    from sparsenet.models.external import build_from_spec, load_weights
    from sparsenet.recording import iter_activations
    from sparsenet.stats import ChannelStats

    dev = resolve_device(device)
    net, kwargs = build_from_spec(model, model_args)
    if weights:
        load_weights(net, weights)
    shape = tuple(int(v) for v in input_size)
    cost = measure(net, shape)
    layer = layer or default_layer(net, shape)
    net.to(dev).eval()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    out = {"model": model, "model_kwargs": kwargs, "device": str(dev), "input_shape": list(shape), "layer": layer,
           "params": cost.params, "macs": cost.macs, "batches": {}}
    for b in batches:
        x = torch.randn(b, *shape, generator=gen).to(dev)

        def forward():
            with torch.no_grad():
                net(x)
            sync()

        def record_stats():
            stats = ChannelStats(max_radius=2)
            for act in iter_activations(net, layer, [x]):
                stats.partial_fit(act)
            sync()

        timings = time_side_by_side({"forward": forward, "record_stats": record_stats}, repeats=repeats,
                                    min_time=0.02)
        out["batches"][f"b{b}"] = {k: t.to_dict() for k, t in timings.items()}
        out["batches"][f"b{b}"]["ratio"] = paired_ratio(timings["record_stats"], timings["forward"])
    return out


def summary_rows(data: dict) -> list[dict]:
    rows = []
    for key, entry in data["batches"].items():
        rows.append(summary_row("model", f"{data['model']} {key} forward ms ({data['device']})",
                                1000 * entry["forward"]["median_s"]))
        rows.append(summary_row("model", f"{data['layer']} record+stats / forward, {key}", entry["ratio"]))
    return rows
