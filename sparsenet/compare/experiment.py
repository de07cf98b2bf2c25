"""Experiment configurations for ``sparsenet compare``: a TOML schema, validated before anything runs.

A configuration names the dataset, the training recipe, the seeds and the candidates::

    [experiment]
    name = "smoke"                    # free text, shown in the report
    description = "..."              # optional
    seeds = [0, 1]                    # every candidate is trained once per seed (init, shuffling, dropout)
    threads = 2                       # optional: torch threads while training (default: torch's own)

    [data]
    name = "digits"                   # a registered dataset or FORMAT:PATH (see `sparsenet datasets`)
    image_size = 16                   # optional: resize every image to image_size x image_size
    split_seed = 0                    # the one train/test split every run uses (default 0)

    [train]                           # sparsenet.training.config.TrainConfig without the seed
    epochs = 1
    batch_size = 64

    [latency]                         # CPU inference timing after all training, every model together
    threads = 1
    warmup = 3
    repeats = 10

    [[candidates]]                    # hand-designed curve: one candidate per width multiplier
    name = "googlenet"
    kind = "googlenet_small"
    width_mults = [0.125, 0.25]
    num_modules = 2

    [[candidates]]
    name = "plain"
    kind = "plaincnn"
    width = 16

    [[candidates]]                    # discovered module swapped into the GoogLeNet skeleton
    name = "swap-3b"
    kind = "skeleton"
    width_mult = 0.125
    num_modules = 2
    stage = "3b"
    [candidates.analysis]
    max_samples = 300

    [[candidates]]                    # the user's own network: a registered name or an import path;
    name = "mine"                     # an import path runs only when the command line names it too:
    kind = "model"                    # sparsenet compare --config X --trust-model nets/my.py:make
    model = "nets/my.py:make"
    model_args = { width = 16 }

    [[candidates]]                    # a network grown module by module (sparsenet.grow)
    name = "grown"
    kind = "grown"
    modules = 1
    budget_like = "googlenet_small@0.125:3a"

Optional, for a pre-registered experiment (see experiments/primary.toml, which comments each key):
``data.validation`` and ``data.train_subset`` (a validation split carved from training, seeded by
split_seed, then a training subset), ``[selection]`` (best epoch on validation, ``patience``),
``[sweep]`` (learning rates chosen on validation per family), ``[preregistration]`` (hypothesis,
primary comparison, test, alpha, Holm-corrected secondaries); per candidate ``family``,
``match`` (width fitted per seed to an earlier candidate's measured multiply-adds) and, for grown
candidates, ``ablation``.

``load_experiment(path)`` parses and validates the whole file and returns an
:class:`Experiment`; any problem raises :class:`ConfigError` naming the key by its path
(``candidates[2].widht_mults``), what it holds and what would be accepted.  Nothing in a
configuration is executed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sparsenet.analyser.settings import AFFINITIES, EXPERIMENT, METHODS, SPATIAL_METHODS
from sparsenet.builder.spec import CONNECTIVITIES, DEFAULT_CONNECTIVITY
from sparsenet.discovery.ablation import ABLATIONS as _ABLATION_FUNCTIONS
from sparsenet.compare.values import (
    ConfigError, bool_value, budget_like_value, choice, clusters_value, comparison_value,
    count_or_fraction_value, dataset_value, fail, float_value, int_value, kwargs_value, list_value,
    model_value, stage_value, str_value, threshold_value,
)
from sparsenet.errors import SparsenetError
from sparsenet.io import why_no_file
from sparsenet.limits import MAX_PERMUTATIONS, MAX_RESAMPLES, MAX_SEED, MAX_THREADS
from sparsenet.training.config import TrainConfig

# The dataset registry, the builder's rules and the Inception stages are imported where a value is
# checked: they load torch, and the schema itself does not need it.

__all__ = ["ConfigError", "Experiment", "Point", "load_experiment", "parse_experiment", "KINDS", "ROLES"]

# Candidate kinds and the role each plays in the comparison.
KINDS = ("googlenet_small", "plaincnn", "grown", "skeleton", "model")
ROLES = {"googlenet_small": "hand", "plaincnn": "baseline", "grown": "discovered", "skeleton": "discovered",
         "model": "baseline"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
ABLATIONS = ("none", *_ABLATION_FUNCTIONS)   # grown candidates: see sparsenet.discovery.ablation
TESTS = ("paired_t", "wilcoxon")             # pre-registered tests: sparsenet.compare.statistics.PAIRED_TESTS


_REQUIRED = object()

ANALYSIS_KEYS: dict[str, tuple[Callable, Any]] = {  # defaults: the analyser's EXPERIMENT preset
    "clusters": (clusters_value, EXPERIMENT.clusters),
    "affinity": (choice(*AFFINITIES), EXPERIMENT.affinity),
    "method": (choice(*METHODS), EXPERIMENT.method),
    "max_samples": (int_value(10), EXPERIMENT.max_samples),
    "permutations": (int_value(0, MAX_PERMUTATIONS), EXPERIMENT.permutations),
    "resamples": (int_value(0, MAX_RESAMPLES), EXPERIMENT.resamples),
    "max_clusters": (clusters_value, EXPERIMENT.max_clusters),
    "threshold": (threshold_value, EXPERIMENT.threshold),
    "max_radius": (int_value(0), EXPERIMENT.max_radius),
    "mass_fraction": (float_value(0, 1, low_open=True, high_open=True), EXPERIMENT.mass_fraction),
    "graph_threshold": (float_value(1, low_open=True), EXPERIMENT.graph_threshold),
    "spatial_method": (choice(*SPATIAL_METHODS), EXPERIMENT.spatial_method),
    "cofiring_alpha": (float_value(0, 1, low_open=True, high_open=True), EXPERIMENT.cofiring_alpha),
}

SECTIONS: dict[str, dict[str, tuple[Callable, Any]]] = {
    "experiment": {
        "name": (str_value, _REQUIRED),
        "description": (str_value, ""),
        "seeds": (list_value(int_value(0, MAX_SEED), unique=True), _REQUIRED),
        "threads": (int_value(1, MAX_THREADS), None),
    },
    "data": {
        "name": (dataset_value, _REQUIRED),
        "root": (str_value, None),
        "image_size": (int_value(1), None),
        "split_seed": (int_value(0, MAX_SEED), 0),
        "test_fraction": (float_value(0, 1, low_open=True, high_open=True), 0.2),
        "validation": (count_or_fraction_value, None),
        "train_subset": (int_value(1), None),
    },
    "train": {
        "epochs": (int_value(1), 3),
        "batch_size": (int_value(1), 64),
        "lr": (float_value(0, low_open=True), 0.05),
        "momentum": (float_value(0, 1, high_open=True), 0.9),
        "weight_decay": (float_value(0), 5e-4),
        "augment": (bool_value, False),
        "eval_batch_size": (int_value(1), 500),
        "warmup_steps": (int_value(0), 0),
        "clip_grad_norm": (float_value(0), 0.0),
    },
    "latency": {
        "threads": (int_value(1, MAX_THREADS), 1),
        "warmup": (int_value(0), 3),
        "repeats": (int_value(1), 10),
    },
}

# Optional sections: absent means off (stored as null); present, they are checked like the others.
OPTIONAL_SECTIONS: dict[str, dict[str, tuple[Callable, Any]]] = {
    "selection": {
        "patience": (int_value(0), 0),
    },
    "sweep": {
        "lrs": (list_value(float_value(0, low_open=True), unique=True), _REQUIRED),
        "seeds": (list_value(int_value(0), unique=True), _REQUIRED),
    },
    "preregistration": {
        "hypothesis": (str_value, _REQUIRED),
        "primary": (comparison_value, _REQUIRED),
        "test": (choice(*TESTS), _REQUIRED),
        "alpha": (float_value(0, 1, low_open=True, high_open=True), _REQUIRED),
        "secondaries": (list_value(comparison_value, nonempty=False, unique=True), []),
        "confidence": (float_value(0, 1, low_open=True, high_open=True), 0.95),
        "bootstrap_resamples": (int_value(100), 10_000),
        "bootstrap_seed": (int_value(0), 0),
    },
}

_COMMON = {"name": (str_value, _REQUIRED), "kind": (choice(*KINDS), _REQUIRED), "family": (str_value, None)}
_DISCOVERED = {"compare_to": (str_value, None)}

CANDIDATE_KEYS: dict[str, dict[str, tuple[Callable, Any]]] = {
    "googlenet_small": {
        "width_mults": (list_value(float_value(0, low_open=True), unique=True), None),   # required unless match
        "match": (str_value, None),
        "num_modules": (int_value(1, 9), 9),
        "batch_norm": (bool_value, False),
        "dropout": (float_value(0, 1, high_open=True), 0.4),
    },
    "plaincnn": {
        "width": (int_value(1), 32),
        "match": (str_value, None),
    },
    "skeleton": {
        **_DISCOVERED,
        "width_mult": (float_value(0, low_open=True), _REQUIRED),
        "num_modules": (int_value(1, 9), 9),
        "stage": (stage_value, _REQUIRED),
        "connectivity": (choice(*CONNECTIVITIES), DEFAULT_CONNECTIVITY),
        "batch_norm": (bool_value, False),
        "dropout": (float_value(0, 1, high_open=True), 0.4),
        "tolerance": (float_value(0, 1, low_open=True, high_open=True), 0.02),
        "analysis": (None, None),   # sub-table, checked with ANALYSIS_KEYS
    },
    "model": {
        "model": (model_value, _REQUIRED),
        "model_args": (kwargs_value, {}),
    },
    "grown": {
        **_DISCOVERED,
        "modules": (int_value(1), 2),
        "mode": (choice("greedy", "end2end"), "greedy"),
        "connectivity": (choice(*CONNECTIVITIES), DEFAULT_CONNECTIVITY),
        "budget_macs": (int_value(1), None),
        "budget_like": (budget_like_value, None),
        "width_scale": (float_value(0, low_open=True), 1.0),
        "stem_width": (int_value(1), 32),
        "pool_after": (list_value(int_value(0), nonempty=False, unique=True), []),
        "ablation": (choice(*ABLATIONS), "none"),
        "grow_epochs": (int_value(1), None),    # epochs of each growth step (default: train.epochs)
        "analysis": (None, None),
    },
}


def _table(path: str, data: Any, schema: dict[str, tuple[Callable, Any]], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise fail(path, data, "expected a table")
    for key in data:
        if key not in schema:
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"{where}: unknown key; accepted keys {what} are {sorted(schema)}")
    out = {}
    for key, (check, default) in schema.items():
        where = f"{path}.{key}" if path else key
        if key not in data:
            if default is _REQUIRED:
                raise ConfigError(f"{where}: missing; this key is required {what}")
            out[key] = list(default) if isinstance(default, list) else default
            continue
        out[key] = data[key] if check is None else check(where, data[key])
    return out


# ----------------------------------------------------------------------------- the values

@dataclass(frozen=True)
class Point:
    """One trained thing per seed: a candidate at one setting (a width multiplier, say)."""

    name: str                 # unique candidate name, e.g. "googlenet@0.25" (directory runs/<name>)
    kind: str                 # one of KINDS
    role: str                 # hand | baseline | discovered
    options: dict[str, Any]   # the candidate's validated keys (width_mult instead of width_mults)
    source: str               # the [[candidates]] entry it came from, e.g. "candidates[0]"
    group: str                # the candidate's configured name (points of one curve share it)

    @property
    def compare_to(self) -> str | None:
        return self.options.get("compare_to")


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    seeds: tuple[int, ...]
    threads: int | None
    data: dict[str, Any]
    train: dict[str, Any]
    latency: dict[str, Any]
    points: tuple[Point, ...]
    normalized: dict[str, Any] = field(repr=False)   # the validated config with defaults, as stored
    source: str = "<config>"
    selection: dict[str, Any] | None = None          # [selection] (None: the last epoch, no validation)
    sweep: dict[str, Any] | None = None              # [sweep] (None: train.lr for every candidate)
    preregistration: dict[str, Any] | None = None    # [preregistration] (None: no declared test)

    def family(self, point: "Point") -> str:
        """The learning-rate sweep family of a point (its ``family`` key, else its kind)."""
        return point.options.get("family") or point.kind

    def train_config(self, seed: int):
        return TrainConfig(seed=seed, **self.train).validate()

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise SparsenetError(f"no candidate {name!r}; candidates are {[p.name for p in self.points]}")

    def curve(self, group: str) -> list[Point]:
        """The hand-designed points of one googlenet_small candidate, by width multiplier."""
        pts = [p for p in self.points if p.group == group and p.kind == "googlenet_small"]
        return sorted(pts, key=lambda p: p.options["width_mult"])


def _fmt_mult(w: float) -> str:
    return f"{w:g}"


def _expand(i: int, cand: dict[str, Any]) -> list[Point]:
    kind, name = cand["kind"], cand["name"]
    source = f"candidates[{i}]"
    if kind == "googlenet_small" and cand["match"] is None:
        points = []
        for w in cand["width_mults"]:
            opts = {k: v for k, v in cand.items() if k not in ("width_mults", "name", "kind")}
            points.append(Point(f"{name}@{_fmt_mult(w)}", kind, ROLES[kind], {**opts, "width_mult": w}, source, name))
        return points
    opts = {k: v for k, v in cand.items() if k not in ("name", "kind")}
    return [Point(name, kind, ROLES[kind], opts, source, name)]


def parse_experiment(data: Any, source: str = "<config>") -> Experiment:
    """Validate a parsed TOML document (a dict) and return the Experiment."""
    try:
        return _parse(data, source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse(data: Any, source: str) -> Experiment:
    if not isinstance(data, dict):
        raise fail("(top level)", data, "expected a TOML document")
    allowed = [*SECTIONS, *OPTIONAL_SECTIONS, "candidates"]
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{key}: unknown section or key; accepted top-level sections are {allowed}")
    for section in ("experiment", "data", "candidates"):
        if section not in data:
            raise ConfigError(f"{section}: missing; a configuration needs [experiment], [data] and [[candidates]]")
    normalized: dict[str, Any] = {}
    for section, schema in SECTIONS.items():
        normalized[section] = _table(section, data.get(section, {}), schema, f"in [{section}]")
    for section, schema in OPTIONAL_SECTIONS.items():
        normalized[section] = None if section not in data else _table(section, data[section], schema,
                                                                        f"in [{section}]")
    cands = data["candidates"]
    if not isinstance(cands, list) or not cands:
        raise fail("candidates", cands, "expected at least one [[candidates]] table")
    normalized["candidates"] = []
    points: list[Point] = []
    for i, raw in enumerate(cands):
        path = f"candidates[{i}]"
        if not isinstance(raw, dict):
            raise fail(path, raw, "expected a table ([[candidates]])")
        if "kind" not in raw:
            raise ConfigError(f"{path}.kind: missing; expected one of {list(KINDS)}")
        kind = choice(*KINDS)(f"{path}.kind", raw["kind"])
        schema = {**_COMMON, **CANDIDATE_KEYS[kind]}
        cand = _table(path, raw, schema, f"for a {kind} candidate")
        if not _NAME.match(cand["name"]):
            raise fail(f"{path}.name", cand["name"], "expected letters, digits and _.+- (it names a directory)")
        if "analysis" in schema:
            cand["analysis"] = _table(f"{path}.analysis", raw.get("analysis", {}), ANALYSIS_KEYS,
                                      "in an analysis table")
        _check_candidate(path, kind, cand)
        normalized["candidates"].append(cand)
        points.extend(_expand(i, cand))
    seen: dict[str, str] = {}
    for p in points:
        if p.name in seen:
            raise ConfigError(f"{p.source}.name: candidate name {p.name!r} is used twice (also by {seen[p.name]}); "
                              "names must be unique")
        seen[p.name] = p.source
    _resolve_compare_to(points)
    _check_matches(points)
    _check_design(normalized, points)
    e = normalized["experiment"]
    return Experiment(name=e["name"], description=e["description"], seeds=tuple(e["seeds"]),
                      threads=e["threads"], data=normalized["data"], train=normalized["train"],
                      latency=normalized["latency"], points=tuple(points), normalized=normalized, source=source,
                      selection=normalized["selection"], sweep=normalized["sweep"],
                      preregistration=normalized["preregistration"])


def _check_matches(points: list[Point]) -> None:
    """A ``match`` names an earlier candidate (trained first at each seed) that is not matched itself."""
    for i, p in enumerate(points):
        target = p.options.get("match")
        if target is None:
            continue
        earlier = {q.name: q for q in points[:i]}
        if target not in earlier or earlier[target].options.get("match") is not None:
            raise fail(f"{p.source}.match", target, "expected the name of an earlier candidate that is not matched "
                        f"itself: {[q.name for q in points[:i] if q.options.get('match') is None] or 'there is none'}")


def _check_design(normalized: dict[str, Any], points: list[Point]) -> None:
    """Selection and sweep need a validation split; the pre-registered comparisons name candidates."""
    for section in ("selection", "sweep"):
        if normalized[section] is not None and normalized["data"]["validation"] is None:
            raise ConfigError(f"[{section}] needs a validation split: set data.validation (a count or a fraction); "
                              "model selection and learning rates are chosen on validation, never on test")
    prereg = normalized["preregistration"]
    if prereg is None:
        return
    names = [p.name for p in points]
    comparisons = [("preregistration.primary", prereg["primary"])] + [
        (f"preregistration.secondaries[{i}]", c) for i, c in enumerate(prereg["secondaries"])]
    for where, comparison in comparisons:
        for name in comparison.split(" vs "):
            if name not in names:
                raise fail(where, comparison, f"{name!r} is not a candidate; candidates are {names}")
    if prereg["primary"] in prereg["secondaries"]:
        raise fail("preregistration.secondaries", prereg["secondaries"], "expected comparisons other than the primary")


def _check_candidate(path: str, kind: str, cand: dict[str, Any]) -> None:
    if kind == "googlenet_small" and (cand["width_mults"] is None) == (cand["match"] is None):
        raise ConfigError(f"{path}: give either width_mults (a curve of widths) or match (the name of a candidate "
                          "whose multiply-adds the width is fitted to), not both or neither")
    if cand["family"] is not None and not _NAME.match(cand["family"]):
        raise fail(f"{path}.family", cand["family"], "expected letters, digits and _.+- (it names a directory)")
    if kind == "grown":
        if cand["budget_macs"] is not None and cand["budget_like"] is not None:
            raise ConfigError(f"{path}.budget_like: give either budget_macs or budget_like, not both")
        bad = [i for i in cand["pool_after"] if i >= cand["modules"]]
        if bad:
            raise fail(f"{path}.pool_after", cand["pool_after"],
                        f"expected module indices in 0..{cand['modules'] - 1}")
    if kind == "skeleton":
        from sparsenet.models.inception import INCEPTION_ORDER

        stages = INCEPTION_ORDER[: cand["num_modules"]]
        if cand["stage"] not in stages:
            raise fail(f"{path}.stage", cand["stage"],
                        f"with num_modules = {cand['num_modules']} the stages are {list(stages)}")


def _resolve_compare_to(points: list[Point]) -> None:
    curves = sorted({p.group for p in points if p.kind == "googlenet_small" and p.options.get("match") is None})
    for p in points:
        if p.role != "discovered":
            continue
        target = p.options.get("compare_to")
        if target is None:
            if len(curves) > 1:
                raise ConfigError(f"{p.source}.compare_to: missing; there are several googlenet_small curves "
                                  f"({curves}): name the one to compare with")
            p.options["compare_to"] = curves[0] if curves else None
        elif target not in curves:
            raise fail(f"{p.source}.compare_to", target,
                        f"expected the name of a googlenet_small candidate: {curves or 'there is none'}")


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment configuration (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment configuration {path} {why_no_file(path)}; accepted: a TOML file such as "
                          "experiments/smoke.toml")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a configuration sparsenet reads: its TOML is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{path}: not valid TOML: {str(exc)[:200]}") from None
    return parse_experiment(data, source=str(path))


def diff_configs(old: Any, new: Any, path: str = "") -> list[str]:
    """Paths where two normalized configurations differ (e.g. ['train.epochs', 'candidates[1]'])."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += diff_configs(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) \
            and all(isinstance(v, dict) for v in old + new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += diff_configs(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [path or "(top level)"]
