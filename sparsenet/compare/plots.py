"""Figures of a comparison: accuracy against multiply-adds (the Pareto picture), accuracy against
CPU latency, and training curves.  Each function draws one figure, saves it atomically
(:func:`sparsenet.figures.save_figure`), closes it and returns the path.

Markers are fixed by role: hand-designed GoogLeNet is a line with circles (one curve per
googlenet_small candidate, each point labelled with its width multiplier), its controls (the
unswapped skeletons) hollow circles, discovered modules in the skeleton red triangles, grown
networks green stars, the plain baseline grey squares.  Error bars are 95% confidence intervals
of the mean over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from sparsenet.figures import STYLE, save_figure
from sparsenet.numbers import human

__all__ = ["plot_pareto", "plot_latency", "plot_curves", "plot_all"]

_STYLE = {**STYLE, "legend.fontsize": 8.5}  # long candidate names in the legends
_HAND_COLOURS = ["#1f77b4", "#9467bd", "#17becf", "#8c564b"]
_ROLE_STYLE = {
    "discovered:skeleton": dict(marker="^", color="#d62728", markersize=9, linestyle="none"),
    "discovered:grown": dict(marker="*", color="#2ca02c", markersize=12, linestyle="none"),
    "baseline": dict(marker="s", color="#7f7f7f", markersize=7, linestyle="none"),
}
# Several discovered candidates of one kind get distinct markers and colours, in this order.
_VARIANTS = {
    "discovered:skeleton": [("^", "#d62728"), ("v", "#ff7f0e"), ("D", "#e377c2"), ("P", "#8c564b"),
                            ("X", "#bcbd22"), ("<", "#9467bd"), (">", "#17becf")],
    "discovered:grown": [("*", "#2ca02c"), ("h", "#006d2c"), ("p", "#74c476"), ("H", "#31a354")],
    "baseline": [("s", "#7f7f7f"), ("d", "#404040"), ("8", "#a0a0a0")],
}


def styles(candidates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Marker and colour of every discovered or baseline candidate (stable: in candidate order)."""
    out, counts = {}, {}
    for c in candidates:
        if c["role"] not in ("discovered", "baseline"):
            continue
        key = f"discovered:{c['kind']}" if c["role"] == "discovered" else "baseline"
        key = key if key in _VARIANTS else "discovered:skeleton"
        i = counts.get(key, 0)
        counts[key] = i + 1
        marker, colour = _VARIANTS[key][i % len(_VARIANTS[key])]
        out[c["candidate"]] = {**_ROLE_STYLE[key], "marker": marker, "color": colour}
    return out

def _err(c) -> float:
    h = c.get("accuracy_ci_half")
    return 0.0 if h is None or (isinstance(h, float) and math.isnan(h)) else 100 * h


def _coinciding(style: dict[str, Any], name: str, detail: str, point, drawn: dict) -> tuple[dict[str, Any], str]:
    """Style and legend label ``name (detail)`` of a point (or curve). One equal to a point drawn
    earlier would hide it: it is drawn as a larger hollow ring around the earlier one and its label
    says so. ``drawn`` maps each point to the first name drawn there."""
    earlier = drawn.setdefault(point, name)
    if earlier == name:
        return style, f"{name} ({detail})"
    ring = {**style, "markerfacecolor": "none", "markeredgewidth": 1.8,
            "markersize": style.get("markersize", 7) + 7}
    return ring, f"{name} ({detail}; the same as {earlier})"


def _draw(ax, candidates: list[dict[str, Any]], x_key: str) -> None:
    candidates = [c for c in candidates if c.get("accuracy_mean") is not None]   # all seeds failed: nothing to draw
    groups = sorted({c["group"] for c in candidates if c["role"] == "hand"})
    colour = {g: _HAND_COLOURS[i % len(_HAND_COLOURS)] for i, g in enumerate(groups)}
    for g in groups:
        pts = sorted((c for c in candidates if c["role"] == "hand" and c["group"] == g and c.get(x_key)),
                     key=lambda c: c[x_key])
        if not pts:
            continue
        xs, ys = [c[x_key] for c in pts], [100 * c["accuracy_mean"] for c in pts]
        ax.errorbar(xs, ys, yerr=[_err(c) for c in pts], marker="o", color=colour[g], capsize=3, linewidth=1.5,
                    label=f"{g} (hand-designed GoogLeNet)")
        above = False
        for i, (c, x, y) in enumerate(zip(pts, xs, ys)):
            # a width close to the previous one (in log x) goes on the other side, so labels do not overlap
            close = i > 0 and x > 0 and xs[i - 1] > 0 and math.log(x / xs[i - 1]) < 0.15
            above = close and not above
            ax.annotate(f"×{c['width_mult']:.3g}", (x, y), textcoords="offset points",
                        xytext=(4, 6) if above else (4, -12), fontsize=8, color=colour[g])
    controls = [c for c in candidates if c["role"] == "control" and c.get(x_key)]
    for i, c in enumerate(controls):
        ax.errorbar([c[x_key]], [100 * c["accuracy_mean"]], yerr=[_err(c)], marker="o", markersize=8,
                    markerfacecolor="none", color=_HAND_COLOURS[0],
                    linestyle="none", capsize=3,
                    label="unswapped skeleton (GoogLeNet as spec)" if i == 0 else None)
    style_of, drawn = styles(candidates), {}
    for c in candidates:
        if not c.get(x_key) or c["role"] not in ("discovered", "baseline"):
            continue
        key = f"discovered:{c['kind']}" if c["role"] == "discovered" else "baseline"
        style = dict(style_of[c["candidate"]])
        kind = {"discovered:skeleton": "discovered module in skeleton", "discovered:grown": "grown network",
                "baseline": "plain baseline"}[key]
        style, label = _coinciding(style, c["candidate"], kind, (c[x_key], c["accuracy_mean"], _err(c)), drawn)
        ax.errorbar([c[x_key]], [100 * c["accuracy_mean"]], yerr=[_err(c)], capsize=3, label=label, **style)
    _log_x(ax, human)
    _clamp_y(ax)
    ax.set_ylabel("test accuracy (%)")


def _log_x(ax, formatter) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(formatter))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def _clamp_y(ax) -> None:
    low, high = ax.get_ylim()   # confidence intervals of a few seeds can reach past 0 or 100 %
    ax.set_ylim(max(low, 0.0), min(high, 100.0))


def plot_pareto(candidates: list[dict[str, Any]], path, title: str = "") -> Path:
    """Accuracy (mean, 95% CI) against multiply-adds, log x."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(10.5, 5))
        _draw(ax, candidates, "macs")
        ax.set_xlabel("multiply-adds per image (log scale)")
        ax.set_title(f"Accuracy against multiply-adds{': ' + title if title else ''}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  title="mean over seeds, bars: 95% CI", title_fontsize=8.5)
        fig.tight_layout()
        return save_figure(fig, path)


def plot_latency(candidates: list[dict[str, Any]], path, title: str = "") -> Path:
    """Accuracy against CPU latency at batch 1 (left) and batch 64 (right), log x."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.8), sharey=True)
        for ax, key, label in ((axes[0], "latency_b1_ms", "ms per batch of 1 image"),
                               (axes[1], "latency_b64_ms", "ms per batch of 64 images")):
            _draw(ax, candidates, key)
            ax.set_xlabel(f"CPU latency, {label} (log scale)")
            _log_x(ax, lambda x, p: f"{x:g}")
            ax.set_title(f"batch {1 if key.endswith('b1_ms') else 64}")
        axes[1].set_ylabel("")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8.5,
                   bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(f"Accuracy against CPU inference latency{': ' + title if title else ''} "
                     "(mean over seeds, bars: 95% CI)")
        n_rows = math.ceil(len(labels) / 3)
        fig.tight_layout(rect=(0, 0.05 + 0.045 * n_rows, 1, 1))
        return save_figure(fig, path)


def plot_curves(histories: dict[str, list[list[float]]], roles: dict[str, tuple[str, str]], path,
                title: str = "", style_of: dict[str, dict[str, Any]] | None = None,
                metric: str = "test_accuracy") -> Path:
    """Accuracy per epoch (``metric``: test_accuracy or val_accuracy), mean over seeds, one line per
    candidate (roles: name -> (role, kind))."""
    split = "validation" if metric == "val_accuracy" else "test"
    style_of = style_of or {}
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(10.5, 5))
        hand = [n for n in histories if roles.get(n, ("", ""))[0] == "hand"]
        n_max, drawn = 1, {}
        for name, runs in histories.items():
            runs = [r for r in runs if r]
            if not runs:
                continue
            n_epochs = min(len(r) for r in runs)
            mean = [100 * sum(r[e] for r in runs) / len(runs) for e in range(n_epochs)]
            role, kind = roles.get(name, ("", ""))
            style = {"hand": dict(linestyle="-", marker="o"),
                     "control": dict(linestyle=":", marker="o", markerfacecolor="none", color=_HAND_COLOURS[0]),
                     "baseline": dict(linestyle="-.", marker="s", color="#7f7f7f")}
            kw = style.get(role, {})
            if role == "hand":
                kw = {**kw, "color": plt.cm.Blues(0.45 + 0.5 * hand.index(name) / max(len(hand) - 1, 1))}
            if role in ("discovered", "baseline"):
                ref = style_of.get(name) or _ROLE_STYLE.get(f"discovered:{kind}", _ROLE_STYLE["baseline"])
                kw = dict(linestyle="--" if role == "discovered" else "-.", linewidth=2 if role == "discovered" else 1.5,
                          marker=ref["marker"], color=ref["color"])
            n_max = max(n_max, n_epochs)
            kw, label = _coinciding(kw, name, f"{role}, {len(runs)} seed{'s' if len(runs) > 1 else ''}", tuple(mean),
                                    drawn)
            ax.plot(range(1, n_epochs + 1), mean, label=label, **kw)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{split} accuracy (%), mean over seeds")
        ax.set_xticks(range(1, n_max + 1)) if n_max <= 12 else ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, n_max + 0.5)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"Training curves{': ' + title if title else ''}"
                     + (f"\n(a single epoch: one point per candidate, its final {split} accuracy)" if n_max == 1 else ""))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.tight_layout()
        return save_figure(fig, path)


def plot_all(rows: list[dict[str, Any]], summary: dict[str, Any], out, *, curves=None, prefix: str = "",
             title: str | None = None) -> dict[str, Path]:
    """The three figures into ``out`` (names ``{prefix}pareto.png``, ``latency``, ``curves``);
    ``curves`` is (histories, metric) as results.training_histories returns it."""
    out = Path(out)
    title = summary.get("experiment", "") if title is None else title
    cands = [c for c in summary["candidates"] if c.get("accuracy_mean") is not None]
    if not cands:   # every run failed: nothing to draw
        return {}
    figs = {"pareto": plot_pareto(cands, out / f"{prefix}pareto.png", title)}
    if all(c.get("latency_b64_ms") for c in cands):
        figs["latency"] = plot_latency(cands, out / f"{prefix}latency.png", title)
    if curves and curves[0]:
        roles = {c["candidate"]: (c["role"], c["kind"]) for c in cands}
        figs["curves"] = plot_curves(curves[0], roles, out / f"{prefix}curves.png", title, styles(cands), curves[1])
    return figs
