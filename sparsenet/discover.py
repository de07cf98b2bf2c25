"""The discover pipeline: activations -> CorrelationAnalyzer -> discovery.json + plots + report.

Activations come from one of three places: a saved array (no model at all), a trained
checkpoint and one of its layers, or the embedded default (a small model trained on mnist5k,
cached).  Everything is computed before anything is written; the outputs are then written into
a staging directory and moved into place, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsenet import __version__
from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.discovery.value import Discovery, from_labels
from sparsenet.errors import SparsenetError

DEFAULT_MODEL = "plaincnn"
DEFAULT_DATA = "mnist5k"
DEFAULT_EPOCHS = 3


@dataclass
class Activations:
    values: torch.Tensor                         # N x C or N x C x H x W
    provenance: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    return Path(os.environ.get("SPARSENET_CACHE", Path.home() / ".cache" / "sparsenet"))


# -- where activations come from -------------------------------------------------------------

def load_activations(path: str | Path) -> Activations:
    """A saved array: .npy (numpy, no pickle) or .pt (a tensor, read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise SparsenetError(f"activations file not found: {path} (expected .npy or .pt, shape N x C x H x W or N x C)")
    if path.suffix == ".npy":
        try:
            values = torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise SparsenetError(f"{path} is not a plain numpy array file: {exc}") from None
    elif path.suffix == ".pt":
        try:
            values = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for foreign files
            raise SparsenetError(f"{path} is not a readable tensor file: {str(exc).splitlines()[0][:200]}") from None
        if not isinstance(values, torch.Tensor):
            raise SparsenetError(f"{path} holds a {type(values).__name__}, expected one tensor N x C x H x W or N x C")
    else:
        raise SparsenetError(f"activations file {path} has suffix {path.suffix!r}; accepted: .npy, .pt")
    if values.ndim not in (2, 4):
        raise SparsenetError(f"activations in {path} have shape {tuple(values.shape)}; expected N x C x H x W or N x C")
    if not values.is_floating_point():
        values = values.float()
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


def record_checkpoint(checkpoint: str | Path, layer: str | None, data: str | None, data_root: str | None,
                      max_samples: int, seed: int) -> Activations:
    """Activations of ``layer`` of a trained checkpoint on (the training split of) a dataset."""
    from sparsenet.training.checkpoint import model_from_checkpoint
    from sparsenet.data import load_dataset, normalize
    from sparsenet.models import validate_input
    from sparsenet.recording import get_layer, record

    model, ckpt = model_from_checkpoint(checkpoint)
    data = data or ckpt.get("dataset") or DEFAULT_DATA
    dataset = load_dataset(data, data_root, seed=seed)
    validate_input(model, dataset.input_shape)
    layer = layer or default_layer(model, dataset.input_shape)
    get_layer(model, layer)
    norm = ckpt.get("normalization") or {}
    mean, std = (norm["mean"], norm["std"]) if norm else dataset.mean_std()
    x = normalize(dataset.x_train[:max_samples], mean, std)
    values = record(model, layer, x, batch_size=250)
    provenance = {"model": ckpt["model"], "model_kwargs": ckpt["model_kwargs"], "checkpoint": str(checkpoint),
                  "layer": layer, "data": dataset.name, "split": "train", "layer_shape": list(values.shape[1:])}
    return Activations(values, provenance)


def _default_dir(seed: int) -> Path:
    return cache_dir() / f"default-{DEFAULT_MODEL}-{DEFAULT_DATA}-seed{seed}"


def cached_default_checkpoint(seed: int = 0) -> Path | None:
    """The cached trained default model, if it is there and whole (else None)."""
    from sparsenet.training.checkpoint import load_checkpoint

    path = _default_dir(seed) / "checkpoint.pt"
    if not path.exists():
        return None
    try:
        return path if load_checkpoint(path).get("epoch") == DEFAULT_EPOCHS else None
    except SparsenetError:
        return None  # a broken cache entry is retrained, not trusted


def default_checkpoint(seed: int = 0, progress: bool = True) -> Path:
    """Train (once) the embedded default model on the embedded default dataset, cached."""
    from sparsenet.data import load_dataset
    from sparsenet.training.loop import TrainConfig, train_named

    config = TrainConfig(epochs=DEFAULT_EPOCHS, seed=seed)
    path = cached_default_checkpoint(seed)
    if path is not None:
        if progress:
            print(f"reusing the cached default model {path}")
        return path
    out = _default_dir(seed)
    if progress:
        print(f"training the default model ({DEFAULT_MODEL} on {DEFAULT_DATA}, {config.epochs} epochs; cached in {out})")
    train_named(DEFAULT_MODEL, load_dataset(DEFAULT_DATA, seed=seed), config, out_dir=out, progress=progress)
    return out / "checkpoint.pt"


# -- analysis and outputs ----------------------------------------------------------------------

def analyse(acts: Activations, settings: AnalysisSettings):
    """Fit the analyser; returns (analyzer, discovery)."""
    from sparsenet.analyser import CorrelationAnalyzer

    values = acts.values[: settings.max_samples]
    analyzer = CorrelationAnalyzer(
        n_clusters=settings.clusters, affinity=settings.affinity, method=settings.method,
        n_permutations=settings.permutations, n_resamples=settings.resamples, random_state=settings.seed,
        cofiring_alpha=settings.cofiring_alpha,
    ).fit(values.numpy())
    provenance = {**acts.provenance, "samples": int(len(values)), "seed": settings.seed,
                  "sparsenet_version": __version__}
    significance = dict(analyzer.significance_) if analyzer.significance_ else {}
    discovery = from_labels(
        analyzer.labels_, analyzer.kernel_sizes_,
        analyzer.spatial_profiles_ if analyzer.spatial_profiles_ is not None else None,
        neighbourhoods=analyzer.neighbourhoods_ if getattr(analyzer, "overlapping_", False) else None,
        significance=significance, stability=analyzer.stability_, provenance=provenance,
        settings={"clusters": settings.clusters, "affinity": settings.affinity, "method": settings.method,
                  "max_samples": settings.max_samples, "permutations": settings.permutations,
                  "resamples": settings.resamples, "cofiring_alpha": settings.cofiring_alpha,
                  "extent_threshold": getattr(analyzer, "extent_threshold", None)},
    )
    return analyzer, discovery


def write_run(analyzer, discovery: Discovery, out_dir: str | Path, command: str | None = None) -> Path:
    """Write discovery.json, the plots and report.md into out_dir, all or nothing."""
    from sparsenet.discovery.plots import plot_discovery
    from sparsenet.discovery.report import write_report

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        title = discovery.provenance.get("layer") or discovery.provenance.get("activations")
        plots = plot_discovery(analyzer, staging, title=title)
        write_report(discovery, {k: Path(p).name for k, p in plots.items()}, staging, command=command)
        discovery.save(staging / "discovery.json")  # last: its presence marks a finished run
        out.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir(), key=lambda p: p.name == "discovery.json"):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
