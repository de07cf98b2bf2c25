"""Statistics cost against inference: recording a layer and accumulating its channel statistics
over a dataset, divided by the bare forward pass over the same data through the same model.

Candidates, timed side by side in interleaved rounds (``timing.time_side_by_side``):

``forward``
    ``model(x)`` batch by batch over the images, eval mode, ``torch.no_grad()``: the bare
    inference the statistics are measured against.
``one_pass``
    ``recording.record(model, layer, x, consume=stats.partial_fit)`` with
    ``ChannelStats(max_radius=R)``: the recorder's hook stops the forward pass at the layer, and
    the C x C statistics of every ring r = 0..R are accumulated batch by batch (what the
    analyser computed before the two-pass path).
``two_pass``
    the same recording with ``ChannelStats(max_radius=0)`` (offset 0 only: covariance and
    co-firing), keeping the activations as the discover pipeline does; then, with the labels of
    a clustering (computed once, untimed: clustering is the analyser's own cost, measured by
    ``clustering.py``), a second pass over the kept activations with
    ``ClusterMapStats`` -- the ring autocovariances of the K summed, standardised cluster maps.
    This is what ``CorrelationAnalyzer`` (``spatial_method="cluster_maps"``, the default) and so
    ``sparsenet discover`` do.

The ratio reported is ``candidate / forward`` (paired per round, median); target <= 1.5 for
the default analysis (the pipeline's path: ``two_pass`` when the library has it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sparsenet.timing import load_average, paired_ratio, summary_row, time_side_by_side

TARGET = 1.5


@dataclass(frozen=True)
class CostCase:
    name: str            # label in the table
    model: str           # registered model name
    kwargs: tuple        # model kwargs as (key, value) pairs
    layer: str | None    # layer to record (None: the pipeline's default layer)
    images: int          # images recorded / passed forward
    batch: int           # batch size of both (the pipeline records in batches of 250)
    data: str            # "mnist5k" or "random"
    max_radius: int = 2  # rings of the spatial profile


def _load_images(case: CostCase, input_shape) -> tuple[torch.Tensor, str]:
    if case.data == "random":
        g = torch.Generator().manual_seed(0)
        return torch.randn(case.images, *input_shape, generator=g), "random normal images"
    from sparsenet.data import load_dataset, normalize

    ds = load_dataset(case.data, seed=0)  # the slow parse is cached by the loader
    mean, std = ds.mean_std()
    return normalize(ds.x_train[: case.images], mean, std), f"{ds.name} training images"


def _model(case: CostCase):
    """The model: for the embedded default, its cached trained checkpoint when there is one
    (timing does not depend on the weights, but real activations make real clusters)."""
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet")
    from sparsenet.models import get_model, model_info

    kwargs = dict(case.kwargs)
    if case.model == "plaincnn" and case.data == "mnist5k" and not kwargs:
        from sparsenet.training.checkpoint import model_from_checkpoint
        from sparsenet.discover import cached_default_checkpoint

        path = cached_default_checkpoint()
        if path is not None:
            model, _ = model_from_checkpoint(path)
            return model.eval(), model_info(case.model).default_input, f"trained ({path})"
    torch.manual_seed(0)
    model = get_model(case.model, **kwargs).eval()
    return model, model_info(case.model).default_input, "random init (He)"


def _labels(stats, seed: int = 0) -> np.ndarray:
    """Cluster labels from offset-0 statistics, as the analyser would find them (untimed)."""
    from sparsenet.analyser import CorrelationAnalyzer

    est = CorrelationAnalyzer(n_permutations=0, n_resamples=0, random_state=seed).fit(stats)
    return est.labels_


def measure_case(case: CostCase, repeats: int) -> dict:
    from sparsenet.discover import default_layer
    from sparsenet.recording import record
    from sparsenet.stats import ChannelStats

    try:
        from sparsenet.stats import ClusterMapStats
    except ImportError:  # the library before the two-pass path
        ClusterMapStats = None

    model, input_shape, weights = _model(case)
    x, data_desc = _load_images(case, input_shape)
    layer = case.layer or default_layer(model, input_shape)
    batches = [x[i:i + case.batch] for i in range(0, len(x), case.batch)]
    R = case.max_radius

    def forward():
        with torch.no_grad():
            for xb in batches:
                model(xb)

    def one_pass():
        stats = ChannelStats(max_radius=R)
        record(model, layer, x, batch_size=case.batch, consume=stats.partial_fit)
        return stats

    kept: list[torch.Tensor] = []

    def first_pass():
        kept.clear()
        stats = ChannelStats(max_radius=0)

        def consume(a):
            kept.append(a)
            stats.partial_fit(a)

        record(model, layer, x, batch_size=case.batch, consume=consume)
        return stats

    candidates = {"forward": forward, "one_pass": one_pass}
    info: dict = {}
    if ClusterMapStats is not None:
        stats0 = first_pass()
        labels = _labels(stats0)
        info["clusters"] = int(labels.max()) + 1
        info["inactive_channels"] = int((labels < 0).sum())

        def second_pass(s0):
            cms = ClusterMapStats(labels, s0.mean_, s0.std_, max_radius=R)
            for a in kept:
                cms.partial_fit(a)
            return cms.profiles_

        def two_pass():
            return second_pass(first_pass())

        # the two paths agree (checked once, untimed)
        one = one_pass()
        from sparsenet.analyser.spatial import cluster_spatial_profiles

        ref = cluster_spatial_profiles(one.spatial_correlation(), labels, info["clusters"])
        info["max_profile_difference"] = float(np.abs(second_pass(stats0) - ref).max())
        candidates["two_pass"] = two_pass
        kept.clear()

    with torch.no_grad():
        shape = tuple(model.eval()(x[:1]).shape)  # warm the model once
    layer_shape = list(record(model, layer, x[:1]).shape[1:])
    timings = time_side_by_side(candidates, repeats=repeats, warmup=1)
    fwd = timings["forward"]
    out = {
        "model": case.model, "model_kwargs": dict(case.kwargs), "weights": weights,
        "layer": layer, "layer_shape": layer_shape, "output_shape": list(shape[1:]),
        "images": len(x), "batch": case.batch, "data": data_desc, "max_radius": R,
        "timings": {k: v.to_dict() for k, v in timings.items()},
        "ratio_to_forward": {k: paired_ratio(v, fwd) for k, v in timings.items() if k != "forward"},
        "ratio_of_medians": {k: v.median / fwd.median for k, v in timings.items() if k != "forward"},
        "load_average_after": load_average(),
        **info,
    }
    out["pipeline_path"] = "two_pass" if "two_pass" in timings else "one_pass"
    out["ratio"] = out["ratio_to_forward"][out["pipeline_path"]]
    return out


def run(cases: list[CostCase], repeats: int) -> dict:
    results = {}
    for c in cases:
        r = measure_case(c, repeats)
        results[f"{c.name} {r['layer']}"] = r
    return {"target_max": TARGET, "cases": results,
            "what": "(record the layer + accumulate its statistics) / (bare forward pass), same data"}


def summary_rows(result: dict) -> list[dict]:
    rows = []
    for name, r in result["cases"].items():
        for path, value in r["ratio_to_forward"].items():
            default = path == r["pipeline_path"]
            rows.append(summary_row("stats / inference", f"{name} {'x'.join(map(str, r['layer_shape']))} ({path})",
                                    value, at_most=TARGET if default else None))
    return rows


__all__ = ["CostCase", "run", "summary_rows", "TARGET"]
