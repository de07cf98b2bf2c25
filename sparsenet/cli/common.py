"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import ast

from sparsenet.analyser.settings import AFFINITIES, FIELDS, METHODS, SPATIAL_METHODS, AnalysisSettings
from sparsenet.errors import SparsenetError


def parse_key_values(items: list[str] | None, option: str) -> dict:
    """``["width_mult=0.5", "batch_norm=True"]`` -> {"width_mult": 0.5, "batch_norm": True}."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SparsenetError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word is a string
        out[key.strip()] = value
    return out


def bounded_int(low: int, high: int | None = None, name: str | None = None):
    """argparse type: an integer from ``low`` to ``high`` (None: no upper bound); argparse turns
    the ValueError into a usage error, exit 2, naming the type by ``name``."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(text)
        return value

    parse.__name__ = name or (f"integer >= {low}" if high is None else f"integer from {low} to {high:,}")
    return parse


positive_int = bounded_int(1, name="positive integer")
non_negative_int = bounded_int(0)


def clusters(text: str):
    """argparse type: K (a positive integer) or 'auto'."""
    if text == "auto":
        return "auto"
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


clusters.__name__ = "K (a positive integer) or 'auto'"


def add_analysis_arguments(group, preset: AnalysisSettings, *, samples: str) -> None:
    """The analysis options of a command, with the defaults of its preset (analyser/settings.py).
    ``samples`` says what --max-samples counts for this command.  Values are checked by
    ``AnalysisSettings.validate`` (one line naming the setting, exit 2)."""
    group.add_argument("--clusters", type=clusters, default=preset.clusters,
                       help=f"number of clusters K, or 'auto' (default {preset.clusters})")
    group.add_argument("--affinity", default=preset.affinity, help=f"{' | '.join(AFFINITIES)} (default {preset.affinity})")
    group.add_argument("--method", default=preset.method, help=f"{' | '.join(METHODS)} (default {preset.method})")
    group.add_argument("--max-samples", type=positive_int, default=preset.max_samples,
                       help=f"{samples} (default {preset.max_samples})")
    group.add_argument("--permutations", type=int, default=preset.permutations,
                       help=f"shuffled-null repeats for significance (0 = skip; default {preset.permutations})")
    group.add_argument("--resamples", type=int, default=preset.resamples,
                       help=f"half-splits for the stability score (0 = skip; default {preset.resamples})")
    group.add_argument("--max-clusters", type=clusters, default=preset.max_clusters,
                       help=f"largest K 'auto' searches, or 'auto' = half the active channels (default {preset.max_clusters})")
    group.add_argument("--threshold", type=number_or_text, default=preset.threshold,
                       help=f"activity threshold: a number, or quantile:q (default {preset.threshold})")
    group.add_argument("--max-radius", type=int, default=preset.max_radius,
                       help=f"radii of spatial correlation measured, kernels up to 2R+1 (default {preset.max_radius})")
    group.add_argument("--mass-fraction", type=float, default=preset.mass_fraction,
                       help=f"kernel = smallest window holding this share of the cluster's filter mass, in (0, 1) "
                            f"(default {preset.mass_fraction})")
    group.add_argument("--graph-threshold", type=float, default=preset.graph_threshold,
                       help=f"lift above which --affinity arora draws an edge, > 1 (default {preset.graph_threshold})")
    group.add_argument("--cofiring-alpha", type=float, default=preset.cofiring_alpha,
                       help=f"--method arora: family-wise false-edge rate of the co-firing test, in (0, 1) "
                            f"(default {preset.cofiring_alpha})")
    group.add_argument("--spatial-method", default=preset.spatial_method,
                       help=f"{' | '.join(SPATIAL_METHODS)} (default {preset.spatial_method})")


def number_or_text(text: str):
    """argparse type: a number if it reads as one, else the text (e.g. 'quantile:0.9')."""
    try:
        return float(text)
    except ValueError:
        return text


def analysis_settings(args) -> AnalysisSettings:
    """The validated settings the analysis options (and --seed) ask for."""
    return AnalysisSettings(**{name: getattr(args, name) for name in FIELDS}).validate()
