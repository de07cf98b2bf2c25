"""The one figure style of every sparsenet plot: resolution, text sizes, colours, saving.

Every plot module (discovery plots, the builder's drawing, the comparison and benchmark plots,
the ``analysis/`` scripts) draws with these, so a kernel size has the same colour in the
cluster-size chart as in the module drawing, and every PNG has the same resolution.

Importing this module selects matplotlib's file-only ``Agg`` backend (no display is ever
needed); a backend the user chose explicitly beforehand is left alone when it cannot be
replaced.  It sits on the ground floor: it imports only matplotlib and :mod:`sparsenet.io`.

Kernel colours are the Okabe-Ito set (colour-blind safe), chosen among its mid-light members
so that they read both as lines or bars on white and as filled boxes carrying black text:
1x1 sky blue, 3x3 orange, 5x5 bluish green, 7x7 vermillion, 9x9 reddish purple, 11x11 yellow;
any other size is grey.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402

from sparsenet.io import atomic_savefig  # noqa: E402

__all__ = ["DPI", "STYLE", "KERNEL_COLOURS", "OTHER_COLOUR", "INACTIVE_COLOUR", "POOL_COLOUR",
           "IO_COLOUR", "kernel_colour", "save_figure"]

DPI = 120
STYLE = {  # rcParams for matplotlib.pyplot.rc_context around a figure's drawing
    "font.size": 10, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 9,
    "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 13,
}

KERNEL_COLOURS = {1: "#56B4E9", 3: "#E69F00", 5: "#009E73", 7: "#D55E00", 9: "#CC79A7", 11: "#F0E442"}
OTHER_COLOUR = "#7F7F7F"     # a kernel size without a colour of its own
INACTIVE_COLOUR = "#BDBDBD"  # channels in no cluster
POOL_COLOUR = "#C7C7C7"      # max-pool boxes
IO_COLOUR = "#F1F1F1"        # input, output and other boxes that are not a branch


def kernel_colour(kernel_size: int) -> str:
    """The colour of a cluster or branch of this kernel size, in every figure."""
    return KERNEL_COLOURS.get(int(kernel_size), OTHER_COLOUR)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` atomically at :data:`DPI` (format from the suffix), close it, return the path.

    The figure is closed even when writing fails, so a failed plot leaks no figure.
    """
    try:
        return atomic_savefig(fig, path, dpi=DPI)
    finally:
        plt.close(fig)
