"""The picture: a discovered module (or network) beside the hand-designed GoogLeNet module.

``draw_comparison(discovered, reference, path)`` writes a PNG: each module is drawn as
GoogLeNet's Figure 2b is, input on top, one column per branch (1x1 reduction, then the k x k
conv; the pool branch as max pool then projection) and the concatenation at the bottom.  Boxes
are coloured by kernel size (the colours of :mod:`sparsenet.figures`, as in the discovery
plots), their width grows with the channel count, and the channel count is written inside.
A network is drawn as one row per module, each a bar split into its branches in proportion to
their widths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Patch

from sparsenet.builder.spec import ModuleSpec, NetworkSpec
from sparsenet.errors import SparsenetError
from sparsenet.figures import IO_COLOUR, KERNEL_COLOURS, POOL_COLOUR, kernel_colour, save_figure

# The colours live in sparsenet.figures; the two named here stay importable from this module.
__all__ = ["KERNEL_COLOURS", "POOL_COLOUR", "comparison_figure", "draw_comparison"]


def _box(ax, x, y, w, h, colour, text, *, fontsize=9, alpha=1.0, bold=False, style="round,pad=0.0,rounding_size=0.06"):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style,
                                facecolor=colour, edgecolor="#333333", linewidth=0.9, alpha=alpha))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize,
            fontweight="bold" if bold else "normal", color="#111111")


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops=dict(arrowstyle="-|>", color="#555555", lw=0.8, shrinkA=0, shrinkB=0))


def _columns(spec: ModuleSpec):
    """One entry per column: (kind, kernel, reduce, width, n_inputs)."""
    cols = [("conv", b.kernel_size, b.reduce, b.width, b.n_inputs(spec.in_channels)) for b in spec.branches]
    if spec.pool is not None:
        cols.append(("pool", spec.pool.kernel_size, None, spec.pool.projection, spec.pool.n_inputs(spec.in_channels)))
    return cols


def _draw_module(ax, spec: ModuleSpec, title: str) -> None:
    cols = _columns(spec)
    n = len(cols)
    biggest = max(max(c[3] for c in cols), max((c[2] or 0) for c in cols))
    fontsize = 9 if n <= 8 else 8 if n <= 14 else 7
    y_in, y_top, y_main, y_out = 4.0, 2.75, 1.5, 0.2
    h = 0.75

    def bw(channels):  # box width grows with the channel count (within each panel) (square root), inside its column
        return 0.42 + 0.5 * (channels / biggest) ** 0.5

    _box(ax, (n - 1) / 2, y_in, max(n - 0.2, 1.6), 0.6, IO_COLOUR,
         f"input  {spec.in_channels} ch  ({spec.connectivity} connectivity)", fontsize=fontsize + 1)
    _box(ax, (n - 1) / 2, y_out, max(n - 0.2, 1.6), 0.6, IO_COLOUR,
         f"concatenate  {spec.out_channels} ch", fontsize=fontsize + 1)
    for x, (kind, k, reduce, width, n_in) in enumerate(cols):
        reads = f"reads {n_in}" if n_in != spec.in_channels else "reads all"
        if kind == "pool":
            _box(ax, x, y_top, bw(n_in if n_in < biggest else biggest), h, POOL_COLOUR, f"{k}x{k}\nmax pool", fontsize=fontsize)
            _box(ax, x, y_main, bw(width), h, kernel_colour(1), f"1x1 proj\n{width}", fontsize=fontsize, bold=True)
            first = y_top
        elif k == 1:
            _box(ax, x, y_main, bw(width), h, kernel_colour(1), f"1x1\n{width}", fontsize=fontsize, bold=True)
            first = y_main
        else:
            _box(ax, x, y_top, bw(reduce), h, kernel_colour(1), f"1x1 red\n{reduce}", fontsize=fontsize, alpha=0.55)
            _box(ax, x, y_main, bw(width), h, kernel_colour(k), f"{k}x{k}\n{width}", fontsize=fontsize, bold=True)
            _arrow(ax, x, y_top - h / 2, x, y_main + h / 2)
            first = y_top
        if kind == "pool":
            _arrow(ax, x, y_top - h / 2, x, y_main + h / 2)
        _arrow(ax, x, y_in - 0.3, x, first + h / 2)
        _arrow(ax, x, y_main - h / 2, x, y_out + 0.3)
        ax.text(x + 0.04, (y_in - 0.3 + first + h / 2) / 2, reads, ha="left", va="center",
                fontsize=fontsize - 1.5, color="#555555", rotation=0)
    ax.set_xlim(-0.7, max(n - 0.3, 1.0))
    ax.set_ylim(-0.35, 4.75)
    ax.set_title(title, fontsize=11)
    ax.axis("off")


def _draw_network(ax, spec: NetworkSpec, title: str) -> None:
    rows = len(spec.modules)
    widest = max([m.out_channels for m in spec.modules] + [1])
    y = rows + 1.2
    stem = spec.stem
    convs = ", ".join(f"{k}x{k}/{s} {w}" for w, k, s in zip(stem.widths, stem.kernel_sizes, stem.strides)) or "none"
    _box(ax, 0.5, y, 1.0, 0.55, IO_COLOUR,
         f"stem: {stem.in_channels} ch -> {convs}" + (" -> max pool 3x3/2" if stem.pool else ""), fontsize=9, style="square,pad=0")
    for i, m in enumerate(spec.modules):
        y = rows - i
        parts = [(kernel_colour(b.kernel_size), b.width, f"{b.kernel_size}x{b.kernel_size}") for b in m.branches]
        if m.pool is not None:
            parts.append((POOL_COLOUR, m.pool.projection, "pool"))
        x = 0.0
        for colour, width, label in parts:
            frac = width / widest
            ax.add_patch(FancyBboxPatch((x, y - 0.3), frac, 0.6, boxstyle="square,pad=0", facecolor=colour,
                                        edgecolor="#333333", linewidth=0.6))
            if frac > 0.045:
                ax.text(x + frac / 2, y, f"{width}", ha="center", va="center", fontsize=8)
            x += frac
        ax.text(-0.02, y, f"module {i}\n{m.in_channels} -> {m.out_channels}", ha="right", va="center", fontsize=9)
        if i in spec.pool_after:
            ax.text(0.5, y - 0.5, "max pool 3x3/2", ha="center", va="center", fontsize=8, color="#555555")
    _box(ax, 0.5, -0.2, 1.0, 0.5, IO_COLOUR,
         f"global avg pool -> dropout {spec.head.dropout:g} -> linear {spec.features} -> {spec.head.num_classes}",
         fontsize=9, style="square,pad=0")
    ax.set_xlim(-0.3, 1.05)
    ax.set_ylim(-0.6, rows + 1.6)
    ax.set_title(title, fontsize=11)
    ax.axis("off")


def _panel_width(spec) -> float:
    if isinstance(spec, NetworkSpec):
        return 7.0
    return max(4.5, 1.15 * len(_columns(spec)) + 0.8)


def comparison_figure(discovered: ModuleSpec | NetworkSpec, reference: ModuleSpec,
                      titles: Sequence[str] | None = None):
    """The matplotlib Figure of ``draw_comparison`` (nothing written)."""
    if not isinstance(discovered, (ModuleSpec, NetworkSpec)):
        raise SparsenetError(f"discovered must be a ModuleSpec or NetworkSpec; got {type(discovered).__name__}")
    if not isinstance(reference, ModuleSpec):
        raise SparsenetError(f"reference must be a ModuleSpec; got {type(reference).__name__}")
    if titles is None:
        titles = ("discovered", "hand-designed (GoogLeNet)")
    if len(titles) != 2:
        raise SparsenetError(f"titles must be two strings (discovered, reference); got {titles!r}")
    widths = [_panel_width(discovered), _panel_width(reference)]
    height = 6.0 if isinstance(discovered, ModuleSpec) else max(6.0, 1.0 + 0.75 * (len(discovered.modules) + 3))
    fig, axes = plt.subplots(1, 2, figsize=(sum(widths), height), gridspec_kw={"width_ratios": widths})
    if isinstance(discovered, NetworkSpec):
        _draw_network(axes[0], discovered, titles[0])
    else:
        _draw_module(axes[0], discovered, titles[0])
    _draw_module(axes[1], reference, titles[1])
    kernels = sorted({b.kernel_size for s in _module_list(discovered) + [reference] for b in s.branches} | {1})
    handles = [Patch(facecolor=kernel_colour(k), edgecolor="#333333", label=f"{k}x{k} conv") for k in kernels]
    handles.append(Patch(facecolor=kernel_colour(1), alpha=0.55, edgecolor="#333333", label="1x1 reduction"))
    handles.append(Patch(facecolor=POOL_COLOUR, edgecolor="#333333", label="max pool"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.text(0.5, 0.075, "numbers are channels (branch widths); box width grows with the channel count (within each panel)",
             ha="center", fontsize=8, color="#555555")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _module_list(spec) -> list[ModuleSpec]:
    return list(spec.modules) if isinstance(spec, NetworkSpec) else [spec]


def draw_comparison(discovered: ModuleSpec | NetworkSpec, reference: ModuleSpec, path: str | Path,
                    titles: Sequence[str] | None = None) -> Path:
    """Draw ``discovered`` beside ``reference`` and save the PNG at ``path`` atomically."""
    return save_figure(comparison_figure(discovered, reference, titles), path)
