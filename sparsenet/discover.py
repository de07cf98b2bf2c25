"""The discover pipeline: activations -> CorrelationAnalyzer -> discovery.json + plots + report.

``sparsenet.discover(model, layer, data, **analysis_settings)`` (the function :func:`discover`
of this module; the module itself is callable, see below) streams ``data`` -- a ``DataLoader``,
a ``Dataset`` or a tensor -- through any ``nn.Module`` on a device and returns a
:class:`~sparsenet.discovery.fitted.FittedDiscovery`, whose ``save(DIR)`` writes what
``sparsenet discover`` writes.

For the command, activations come from one of four places: a saved array (no model at all),
saved statistics (``--stats``), a model (a checkpoint, or ``--model`` with ``--weights``) and
one of its layers, or the embedded default (a small model trained on mnist5k, cached).
Everything is computed before anything is written; the outputs are then written into a
staging directory and moved into place, so a failed run leaves nothing half-written.

This module is callable: ``sparsenet.discover`` is this module whichever way it was imported
(``import sparsenet.discover`` binds the name to the module, so a function of the same name in
``sparsenet/__init__.py`` would be shadowed as soon as anything imports the pipeline); calling
the module calls :func:`discover`.  ``from sparsenet.discover import ...`` works as before.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsenet.training.config import DEFAULT_DATA, DEFAULT_MODEL
from sparsenet.version import __version__
from sparsenet.analyser.settings import FIELDS, AnalysisSettings
from sparsenet.discovery.fitted import FittedDiscovery, from_analyzer, write_run
from sparsenet.errors import SparsenetError
from sparsenet.io import why_no_file

__all__ = ["discover", "analyse", "analyse_stats", "make_analyzer", "load_model", "write_run",
           "load_activations", "default_layer", "Activations"]

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 3


@dataclass
class Activations:
    values: torch.Tensor                         # N x C or N x C x H x W
    provenance: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    return Path(os.environ.get("SPARSENET_CACHE", Path.home() / ".cache" / "sparsenet"))


# -- where activations come from -------------------------------------------------------------

ACTIVATION_SUFFIXES = (".npy", ".npz", ".pt")
_ACCEPTED = ("accepted: a .npy or .npz of plain numbers (numpy, no pickle) or a .pt holding one tensor "
             "(torch.save), of shape N x C x H x W or N x C")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception:  # numpy raises many types (ValueError, EOFError, tokenize errors) for foreign bytes
        raise SparsenetError(f"{path} is not a numpy array file (empty, truncated, or holding Python "
                             f"objects, which are not loaded); {_ACCEPTED}") from None


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if len(names) != 1 and "activations" not in names:
                raise SparsenetError(f"{path} holds arrays {names[:10]}; expected one array, or one named "
                                     f"'activations'")
            return z["activations" if "activations" in names else names[0]]
    except SparsenetError:
        raise
    except Exception:  # zipfile and numpy raise many types for foreign bytes; all mean 'not an archive'
        raise SparsenetError(f"{path} is not a numpy .npz archive of plain arrays (empty, truncated, "
                             f"or holding Python objects, which are not loaded); {_ACCEPTED}") from None


def _read_pt(path: Path) -> torch.Tensor:
    try:
        values = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for foreign bytes; all mean 'not a tensor file'
        raise SparsenetError(f"{path} is not a tensor file that sparsenet reads: not written by torch.save, "
                             f"truncated, or holding Python objects besides tensors (never unpickled); "
                             f"{_ACCEPTED}") from None
    if not isinstance(values, torch.Tensor):
        raise SparsenetError(f"{path} holds a {type(values).__name__}, expected one tensor N x C x H x W or N x C")
    return values


def load_activations(path: str | Path) -> Activations:
    """A saved array: .npy/.npz (numpy, no pickle) or .pt (a tensor, read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise SparsenetError(f"activations file {path} {why_no_file(path)} (expected .npy, .npz or .pt, shape N x C x H x W "
                             "or N x C)")
    if path.suffix not in ACTIVATION_SUFFIXES:
        raise SparsenetError(f"activations file {path} has suffix {path.suffix!r}; accepted: "
                             + ", ".join(ACTIVATION_SUFFIXES))
    values = {".npy": _read_npy, ".npz": _read_npz, ".pt": _read_pt}[path.suffix](path)
    _ints = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
    kind = values.dtype.kind if isinstance(values, np.ndarray) else (
        "f" if values.is_floating_point() else "i" if values.dtype in _ints else "c")
    if kind not in "biuf":
        raise SparsenetError(f"activations in {path} have dtype {values.dtype}; expected real numbers "
                             "(float, integer or bool), not complex, text or objects")
    if values.ndim not in (2, 4):
        raise SparsenetError(f"activations in {path} have shape {tuple(values.shape)}; expected N x C x H x W or N x C")
    if min(values.shape) == 0:
        raise SparsenetError(f"activations in {path} have shape {tuple(values.shape)}: no values; expected "
                             "N x C x H x W or N x C with every axis at least 1")
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return Activations(values.float(), {"activations": str(path), "layer_shape": list(values.shape[1:])})


def default_layer(model: torch.nn.Module, input_shape) -> str:
    """The last leaf layer with a spatial output (N x C x H x W, H >= 3): the deepest conv features."""
    from sparsenet.recording import hookable_layers

    leaves = {name for name, module in model.named_modules() if not any(True for _ in module.children())}
    candidates = [name for name, _, shape in hookable_layers(model, input_shape)
                  if name in leaves and len(shape) == 3 and shape[1] >= 3 and shape[2] >= 3]
    if not candidates:
        raise SparsenetError("the model has no layer with a spatial output; name one with --layer")
    return candidates[-1]


def _default_dir(seed: int) -> Path:
    return cache_dir() / f"default-{DEFAULT_MODEL}-{DEFAULT_DATA}-seed{seed}"


def _default_config(seed: int):
    from sparsenet.training.loop import TrainConfig

    return TrainConfig(epochs=DEFAULT_EPOCHS, seed=seed)


def cached_default_checkpoint(seed: int = 0) -> Path | None:
    """The cached trained default model, if it is there and whole (else None)."""
    from dataclasses import asdict
    from sparsenet.training.checkpoint import load_checkpoint

    path = _default_dir(seed) / "checkpoint.pt"
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except SparsenetError:
        return None  # a broken cache entry is retrained, not trusted
    # an entry trained with another recipe (an older default) is retrained, not silently reused
    return path if ckpt.get("epoch") == DEFAULT_EPOCHS and ckpt.get("config") == asdict(_default_config(seed)) else None


def default_checkpoint(seed: int = 0, progress: bool = True) -> Path:
    """Train (once) the embedded default model on the embedded default dataset, cached."""
    from sparsenet.data import load_dataset
    from sparsenet.training.loop import train_named

    config = _default_config(seed)
    path = cached_default_checkpoint(seed)
    if path is not None:
        if progress:
            print(f"reusing the cached default model {path} (delete {path.parent} to retrain it)")
        return path
    out = _default_dir(seed)
    if progress:
        print(f"training the default model ({DEFAULT_MODEL} on {DEFAULT_DATA}, {config.epochs} epochs; cached in {out})")
    train_named(DEFAULT_MODEL, load_dataset(DEFAULT_DATA, seed=seed), config, out_dir=out, progress=progress)
    return out / "checkpoint.pt"


# -- analysis and outputs ----------------------------------------------------------------------

SETTING_NAMES = tuple(f.name for f in fields(AnalysisSettings))


def settings_from(values: dict[str, Any], base: AnalysisSettings | None = None) -> AnalysisSettings:
    """``AnalysisSettings`` with ``values`` over ``base`` (default: the discover preset), validated."""
    unknown = sorted(set(values) - set(SETTING_NAMES))
    if unknown:
        raise SparsenetError(f"unknown analysis setting(s) {', '.join(map(repr, unknown))}; "
                             f"accepted: {', '.join(SETTING_NAMES)}")
    base = base or AnalysisSettings()
    return AnalysisSettings(**{**asdict(base), **values}).validate()


def make_analyzer(settings: AnalysisSettings):
    """The unfitted ``CorrelationAnalyzer`` that ``settings`` describe."""
    from sparsenet.analyser import CorrelationAnalyzer

    return CorrelationAnalyzer(**settings.estimator_params())


def _settings_record(settings: AnalysisSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in FIELDS if name != "seed"}  # the seed is provenance


def needs_samples(settings: AnalysisSettings) -> bool:
    """Whether the analysis needs the samples themselves (Arora's triples, the null, the halves),
    not only sums."""
    return settings.method == "arora" or settings.permutations > 0 or settings.resamples > 0


def analyse(acts: Activations, settings: AnalysisSettings, *, stats=None) -> tuple[Any, FittedDiscovery]:
    """Fit the analyser once; returns (analyzer, discovery).  ``stats``: the ChannelStats of exactly
    these activations (accumulated while recording), which the fit reads instead of computing
    them again, and which are saved."""
    values = acts.values[: settings.max_samples]
    if stats is not None and stats.n_images_ != len(values):
        raise SparsenetError(f"the statistics hold {stats.n_images_} images, the activations {len(values)}")
    analyzer = make_analyzer(settings).fit(values.numpy() if isinstance(values, torch.Tensor) else values,
                                           stats=stats)
    provenance = {**acts.provenance, "samples": int(len(values)), "seed": settings.seed,
                  "sparsenet_version": __version__}
    return analyzer, from_analyzer(analyzer, settings=_settings_record(settings),
                                   provenance=provenance, stats=stats)


AUTO_K_WITHOUT_SAMPLES = ("eigengap: the automatic K's noise edge needs the samples (shuffled copies), which "
                          "statistics do not hold; give K (--clusters K, or clusters=K in Python) to repeat a run's K")


def analyse_stats(stats, settings: AnalysisSettings, provenance: dict[str, Any] | None = None) -> FittedDiscovery:
    """Analyse saved (or streamed) ``ChannelStats``: clusters and kernel sizes, but no significance
    or stability, which need the samples."""
    analyzer = make_analyzer(settings).fit(stats)
    provenance = {**(provenance or {}), "samples": int(stats.n_images_), "seed": settings.seed,
                  "sparsenet_version": __version__}
    if needs_samples(settings):
        provenance["not_computed"] = ("significance and stability need the samples; the analysis read "
                                      "statistics only")
    if settings.clusters == "auto":  # the noise edge comes from shuffled copies of the samples
        provenance["k_rule"] = AUTO_K_WITHOUT_SAMPLES
    return from_analyzer(analyzer, settings=_settings_record(settings), provenance=provenance,
                         stats=stats)


def load_stats(path: str | Path):
    """A ``ChannelStats`` file (``DIR/stats.npz`` of an earlier run)."""
    from sparsenet.stats import ChannelStats

    stats = ChannelStats.load(path)
    if not hasattr(stats, "n_channels_"):
        raise SparsenetError(f"{path} holds ChannelStats that saw no data; accepted: the stats.npz of a run")
    return stats


def _describe(data) -> str:
    dataset = getattr(data, "dataset", None)
    return type(data).__name__ + (f" of {type(dataset).__name__}" if dataset is not None else "")


def discover(model: torch.nn.Module, layer: str | None = None, data=None, *, device="auto",
             batch_size: int = 256, progress: bool = False, provenance: dict[str, Any] | None = None,
             **analysis_settings) -> FittedDiscovery:
    """Discover the groups of channels of ``layer`` of ``model`` that fire together on ``data``.

    ``data`` is a ``torch.utils.data.DataLoader`` (batches as it makes them: tensors, ``(x, y)``
    pairs or dicts with an ``"x"``), a ``Dataset`` or a tensor N x C x H x W, already
    normalised the way the model was trained.  ``layer`` is a name of
    ``model.named_modules()`` (default: the deepest spatial output).  ``analysis_settings`` are
    any fields of :class:`~sparsenet.analyser.settings.AnalysisSettings` (``clusters``,
    ``affinity``, ``method``, ``max_samples``, ``seed``, ``permutations``, ``resamples``,
    ``max_clusters``, ``threshold``, ``max_radius``, ``mass_fraction``, ``graph_threshold``,
    ``cofiring_alpha``, ``spatial_method``); the others keep their defaults.

    The model is moved to ``device`` (``auto``: CUDA when available) and run in eval mode; at
    most ``max_samples`` samples are read, batch by batch.  The statistics
    (``ChannelStats``, with spatial rings) accumulate on the device; only their C x C sums come
    to the host.  The samples themselves are kept (on the host) only when the significance test
    or the stability score needs them (``permutations`` or ``resamples`` > 0); with both 0 the
    analysis reads the statistics alone and memory does not grow with the data.

    Returns a :class:`~sparsenet.discovery.fitted.FittedDiscovery` (a ``Discovery`` that keeps
    the fitted analyser): ``.save(DIR)`` writes discovery.json, report.md, the plots and the raw
    artefacts, exactly as ``sparsenet discover --out DIR``.

    Under torchrun (``WORLD_SIZE`` > 1) each rank records its contiguous block of the samples, the
    statistics are merged exactly on rank 0 in rank order (and the samples, where the null and the
    stability need them, gathered there in rank order), and rank 0 fits the analyser on what one
    process would have seen: the same discovery.  The other ranks return None.
    """
    from sparsenet.distributed import process_group, world

    if world().world_size == 1:
        return _discover(model, layer, data, device, batch_size, progress, provenance, analysis_settings)
    with process_group():   # gloo: the sums and samples travel as CPU tensors
        return _discover(model, layer, data, device, batch_size, progress, provenance, analysis_settings)


def _discover(model, layer, data, device, batch_size, progress, provenance, analysis_settings):
    from sparsenet.device import resolve_device
    from sparsenet.recording import DATA_FORMS, data_length, get_layer, input_batches, record
    from sparsenet.distributed import (gather_samples_to_main, merge_stats_to_main, shard_batches, shard_bounds,
                                       world)
    from sparsenet.stats import ChannelStats

    if not isinstance(model, torch.nn.Module):
        raise SparsenetError(f"model is a {type(model).__name__}; accepted: a torch.nn.Module")
    if data is None:
        raise SparsenetError(f"no data given; accepted: {DATA_FORMS}")
    settings = settings_from(analysis_settings)
    dev = resolve_device(device)
    model.to(dev)
    batches = input_batches(data, batch_size=batch_size, max_samples=settings.max_samples, device=dev)
    here = world()
    if here.world_size > 1:   # each rank records its block of the samples (see sparsenet.distributed)
        if isinstance(settings.threshold, str):
            raise SparsenetError(f"threshold {settings.threshold!r} under torchrun: each shard would estimate its own "
                                 "quantile thresholds, which do not merge; give a number (e.g. --threshold 0)")
        n = data_length(data, settings.max_samples)
        batches = shard_batches(batches, *shard_bounds(n, here))
    first = next(batches)
    layer = layer or default_layer(model, tuple(first.shape[1:]))
    get_layer(model, layer)
    analyzer = make_analyzer(settings)
    keep = needs_samples(settings)
    log.info("discover: layer %s on %s, settings %s, data %s", layer, dev, asdict(settings), _describe(data))
    held: dict[str, Any] = {"stats": None, "chunks": []}

    def consume(act: torch.Tensor) -> None:
        if held["stats"] is None:  # rings up to what the maps can hold (0 for flat features)
            radius = min(analyzer.max_radius, max(act.shape[2:]) - 1) if act.ndim == 4 else 0
            held["stats"] = ChannelStats(max_radius=radius, threshold=analyzer.threshold)
        held["stats"].partial_fit(act)
        if keep:
            held["chunks"].append(act.cpu())

    record(model, layer, itertools.chain([first], batches), consume=consume, max_samples=settings.max_samples,
           progress=progress, total=data_length(data, settings.max_samples))
    stats = held["stats"]
    stats.release_buffers()
    values = torch.cat(held["chunks"]) if keep else None
    held["chunks"].clear()
    if here.world_size > 1:   # merged (and the samples gathered) on rank 0, in rank order
        stats = merge_stats_to_main(stats, here)
        values = gather_samples_to_main(values, here) if keep else None
        if not here.main:
            return None
    provenance = {"model": getattr(model, "registry_name", None) or type(model).__name__, "layer": layer,
                  "data": _describe(data), "device": str(dev), "layer_shape": list(first.shape[1:]),
                  "world_size": here.world_size, **(provenance or {})}
    if not keep:
        return analyse_stats(stats, settings, provenance)
    provenance["layer_shape"] = list(values.shape[1:])
    return analyse(Activations(values, provenance), settings, stats=stats)[1]


# -- models the command line names ---------------------------------------------------------

def load_model(checkpoint: str | Path | None, model: str | None, model_args: dict[str, Any] | None,
               weights: str | Path | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode, what the checkpoint says about its data: dataset, normalization,
    input_shape, and the provenance) from a checkpoint, or from ``model`` (a registered name or
    an import path: this runs the user's code) with a plain ``state_dict`` file ``weights``."""
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet", the networks sparsenet builds)
    from sparsenet.models.external import build_from_spec, load_weights
    from sparsenet.training.checkpoint import model_from_checkpoint

    if checkpoint is not None:
        if weights is not None:
            raise SparsenetError("--checkpoint holds the weights already; give either --checkpoint or --weights")
        net, ckpt = model_from_checkpoint(checkpoint, model)
        info = {k: ckpt.get(k) for k in ("dataset", "normalization", "input_shape")}
        return net, {**info, "provenance": {"model": ckpt["model"], "model_kwargs": ckpt["model_kwargs"],
                                            "checkpoint": str(checkpoint)}}
    if model is None:
        raise SparsenetError("no model: give --checkpoint, or --model with --weights")
    if weights is None:
        raise SparsenetError(f"--model {model} needs --weights FILE (a saved state_dict): an untrained network "
                             "has no learned structure to discover")
    net, kwargs = build_from_spec(model, model_args)
    load_weights(net, weights)
    return net.eval(), {"dataset": None, "normalization": None, "input_shape": None,
                        "provenance": {"model": model, "model_kwargs": kwargs, "weights": str(weights)}}


def dataset_loader(name: str, root: str | None, normalization: dict | None, seed: int, batch_size: int = 250,
                   pin_memory: bool = False):
    """(dataset, a DataLoader of its training split normalised as the model was trained)."""
    from sparsenet.data import load_dataset
    from sparsenet.data.loader import image_loader

    dataset = load_dataset(name, root, seed=seed)
    mean, std = (normalization["mean"], normalization["std"]) if normalization else dataset.mean_std()
    return dataset, image_loader(dataset.x_train, None, mean, std, batch_size=batch_size, pin_memory=pin_memory)


def discover_model(checkpoint, model: str | None, model_args: dict[str, Any] | None, weights, *,
                   layer: str | None, data: str | None, data_root: str | None, device, settings: AnalysisSettings,
                   progress: bool = True) -> FittedDiscovery:
    """``sparsenet discover`` on a model: a checkpoint, or ``model`` (a registered name or an import
    path) with ``weights``, recorded on the training split of ``data``."""
    from sparsenet.device import resolve_device
    from sparsenet.models import validate_input

    dev = resolve_device(device)  # a device the machine lacks is refused before anything loads
    net, info = load_model(checkpoint, model, model_args, weights)
    dataset, loader = dataset_loader(data or info["dataset"] or DEFAULT_DATA, data_root, info["normalization"],
                                     settings.seed, pin_memory=dev.type == "cuda")
    validate_input(net, dataset.input_shape)
    layer = layer or default_layer(net, dataset.input_shape)
    if progress:
        print(f"recording layer {layer} of {info['provenance']['model']} on {dataset.name} ({dev})", file=sys.stderr)
    return discover(net, layer, loader, device=dev, progress=progress, **asdict(settings),
                    provenance={**info["provenance"], "data": dataset.name, "split": "train"})


class _CallableModule(types.ModuleType):
    """``sparsenet.discover(...)`` calls :func:`discover`; the module stays a module."""

    def __call__(self, *args, **kwargs) -> FittedDiscovery:
        return discover(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
