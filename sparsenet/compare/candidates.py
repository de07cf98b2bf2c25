"""From an experiment's :class:`~sparsenet.compare.experiment.Point` to what trains: the dataset and each candidate.

Per kind: ``googlenet_small`` and ``plaincnn`` are registered models (:func:`registered_model`),
``skeleton`` starts from googlenet_small written as a spec (:func:`skeleton_spec`, shared under
:func:`skeleton_name`) and discovers the module it swaps in (:func:`analysis_settings`), ``grown``
is grown by :mod:`sparsenet.grow` (:func:`growth_config`).  :func:`preflight` builds each of them
once, so that nothing that cannot run starts training.  A candidate with ``match`` gets its width
per seed from :func:`match_width`: the width whose *measured* multiply-adds come closest to the
target's, found by bisection on the built networks (no curve, no interpolation).
"""

from __future__ import annotations

from typing import Any

from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.builder.modules import build_network
from sparsenet.compare.experiment import Experiment, Point
from sparsenet.compare.skeleton import googlenet_spec
from sparsenet.data import load_dataset
from sparsenet.errors import SparsenetError
from sparsenet.grow import GrowthConfig, module_budget
from sparsenet.models import validate_input
from sparsenet.training.loop import build_model

__all__ = ["load_data", "registered_model", "match_width", "measured_macs", "skeleton_spec", "skeleton_name",
           "growth_config", "analysis_settings", "preflight"]


def load_data(experiment: Experiment):
    """The dataset with the experiment's one split (``data.split_seed``) and image size."""
    d = experiment.data
    dataset = load_dataset(d["name"], d["root"], seed=d["split_seed"], test_fraction=d["test_fraction"],
                           image_size=d["image_size"])
    if d.get("validation") is None and d.get("train_subset") is None:
        return dataset
    from sparsenet.data.splits import carve_validation

    return carve_validation(dataset, d["validation"], d["train_subset"], seed=d["split_seed"])


def registered_model(point: Point, width=None) -> tuple[str, dict[str, Any]]:
    """The model (registered name or import path) and its keyword arguments of a googlenet_small,
    plaincnn or model candidate (``width``: the width a matched candidate was fitted to, instead of
    its configured one)."""
    o = point.options
    if point.kind == "model":
        return o["model"], dict(o["model_args"])
    if point.kind == "googlenet_small":
        return "googlenet_small", {"width_mult": o.get("width_mult") if width is None else float(width),
                                   "num_modules": o["num_modules"], "batch_norm": o["batch_norm"],
                                   "dropout": o["dropout"]}
    if point.kind == "plaincnn":
        return "plaincnn", {"width": o["width"] if width is None else int(width)}
    raise AssertionError(point.kind)


def measured_macs(point: Point, dataset, width) -> int:
    """The multiply-adds of a googlenet_small / plaincnn candidate built at ``width`` for ``dataset``."""
    from sparsenet.models.accounting import measure

    name, kwargs = registered_model(point, width)
    model, _ = build_model(name, dataset, 0, kwargs)
    return measure(model, dataset.input_shape).macs


def match_width(point: Point, dataset, target_macs: int) -> tuple[float | int, int]:
    """(width, its measured multiply-adds) of a matched googlenet_small / plaincnn closest to ``target_macs``.

    Bisection over the width (googlenet_small's ``width_mult`` on a log scale in [1/256, 16],
    plaincnn's integer ``width`` in [1, 4096]) on the multiply-adds of each built network, which
    grow with the width; the nearer of the two final brackets wins (ties: the smaller).
    """
    if point.kind == "googlenet_small":
        lo, hi = 1 / 256, 16.0
        for _ in range(40):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if _below(point, dataset, mid, target_macs) else (lo, mid)
            if hi / lo < 1 + 1e-4:
                break
    else:
        lo, hi = 1, 4096
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _below(point, dataset, mid, target_macs) else (lo, mid)
    options = [(abs(measured_macs(point, dataset, w) - target_macs), w) for w in (lo, hi)]
    _, best = min(options)
    return best, measured_macs(point, dataset, best)


def _below(point: Point, dataset, width, target_macs: int) -> bool:
    """Whether the network at ``width`` needs fewer multiply-adds than the target; one too large to
    build (refused by the model-size limit) is above any target."""
    try:
        return measured_macs(point, dataset, width) < target_macs
    except SparsenetError:
        return False


def skeleton_spec(point: Point, dataset):
    """The unswapped GoogLeNet skeleton (a NetworkSpec) of a skeleton candidate, for ``dataset``'s input."""
    o = point.options
    return googlenet_spec(o["width_mult"], o["num_modules"], num_classes=dataset.num_classes,
                          in_channels=dataset.in_channels, batch_norm=o["batch_norm"], dropout=o["dropout"],
                          input_size=dataset.image_size)


def skeleton_name(point: Point) -> str:
    """The shared skeleton (and control candidate) of a skeleton candidate, e.g. 'skeleton@0.125x2'.

    Skeleton candidates with the same width multiplier, modules, batch norm and dropout start from
    the same trained skeleton at each seed, so it is trained once (``runs/<this name>/seed<k>``).
    User candidate names cannot contain '@', so this never collides with one.
    """
    o = point.options
    name = f"skeleton@{o['width_mult']:g}x{o['num_modules']}"
    return name + ("+bn" if o["batch_norm"] else "") + (f"+d{o['dropout']:g}" if o["dropout"] != 0.4 else "")


def growth_config(point: Point) -> GrowthConfig:
    """The validated :class:`~sparsenet.grow.GrowthConfig` of a grown candidate."""
    o = point.options
    return GrowthConfig(modules=o["modules"], mode=o["mode"], connectivity=o["connectivity"],
                        budget_macs=o["budget_macs"], budget_like=o["budget_like"], width_scale=o["width_scale"],
                        stem_width=o["stem_width"], pool_after=tuple(o["pool_after"])).validate()


def analysis_settings(point: Point, seed: int) -> AnalysisSettings:
    """The discovery settings of a skeleton or grown candidate at one seed."""
    return AnalysisSettings(seed=seed, **point.options["analysis"])


def untrusted_models(experiment: Experiment, trusted=()) -> list[str]:
    """The import paths the experiment's model candidates name that ``trusted`` (the command
    line's --trust-model) does not: a configuration never chooses code to run on its own."""
    from sparsenet.models.external import parse_model_spec

    keys = {parse_model_spec(t).key for t in trusted}
    named = [p.options["model"] for p in experiment.points if p.kind == "model"]
    return [m for m in named if parse_model_spec(m).imported and parse_model_spec(m).key not in keys]


def preflight(experiment: Experiment, dataset, trusted=()) -> None:
    """Build every candidate once for the dataset, so that nothing that cannot run starts training.
    Import paths of model candidates must be among ``trusted`` (else nothing runs)."""
    missing = untrusted_models(experiment, trusted)
    if missing:
        raise SparsenetError(f"{experiment.source}: model candidates name code to run ({', '.join(missing)}); "
                             "sparsenet runs it only when the command line names it too: add "
                             + " ".join(f"--trust-model {m}" for m in missing))
    for seed in experiment.seeds:
        experiment.train_config(seed)
    for p in experiment.points:
        try:
            if p.kind in ("googlenet_small", "plaincnn", "model"):
                name, kwargs = registered_model(p, 0.125 if p.kind == "googlenet_small" and p.options.get("match")
                                                else None)   # a matched width is found per seed
                model, _ = build_model(name, dataset, 0, kwargs)
                validate_input(model, dataset.input_shape)
            elif p.kind == "skeleton":
                validate_input(build_network(skeleton_spec(p, dataset)), dataset.input_shape)
            elif p.kind == "grown":
                module_budget(growth_config(p))
        except SparsenetError as exc:
            raise SparsenetError(f"{experiment.source}: {p.source} ({p.name!r}) cannot run on "
                                 f"{dataset.name} {tuple(dataset.input_shape)}: {exc}") from None
