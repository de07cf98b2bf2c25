"""Figures of a fitted :class:`sparsenet.CorrelationAnalyzer`, written as PNG files.

Each function takes the fitted analyser and a path, draws one figure, saves it atomically
(:func:`sparsenet.figures.save_figure`), closes it and returns the path.  ``title`` (usually the
layer name) is added to every figure's heading.  :func:`plot_discovery` writes all of those
that apply into a directory and returns ``{name: path}``.

Kernel sizes have the colours of :mod:`sparsenet.figures` (1x1 sky blue, 3x3 orange, 5x5 green,
7x7 vermillion), so a cluster looks the same in the profile plot, the size chart and the
builder's drawing of the module made from it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sparsenet.errors import SparsenetError
from sparsenet.figures import INACTIVE_COLOUR, STYLE, kernel_colour, save_figure

MAX_EIGENVALUES = 30       # eigenvalues shown in the spectrum plot (at least K + 1)
MAX_LEGEND_CLUSTERS = 12   # profile lines named in the legend; the rest are counted
MAX_DENDROGRAM_LABELS = 60  # leaves labelled with their channel index


def _heading(what: str, title: str | None) -> str:
    return f"{what} — {title}" if title else what


def _fitted(analyzer, *names: str) -> None:
    missing = [n for n in names if not hasattr(analyzer, n)]
    if missing:
        raise SparsenetError(
            f"the analyser has no {', '.join(missing)}; call fit() on it before plotting "
            f"(got {type(analyzer).__name__})"
        )


def _array(analyzer, name: str, why_absent: str) -> np.ndarray:
    """The fitted attribute ``name`` as floats; a clear error when this fit did not set it."""
    value = getattr(analyzer, name)
    if value is None:
        raise SparsenetError(f"the analyser has no {name} ({why_absent})")
    return np.asarray(value, dtype=float)


def _labels(analyzer) -> np.ndarray:
    return np.asarray(analyzer.labels_, dtype=int)


def _cluster_sizes(analyzer, n_clusters: int) -> np.ndarray:
    """Channels per cluster: counted from the neighbourhoods (a shared channel counts in each)."""
    sets = getattr(analyzer, "neighbourhoods_", None)
    if sets is not None and len(sets) == n_clusters:
        return np.array([len(m) for m in sets], dtype=int)
    labels = _labels(analyzer)
    return np.bincount(labels[labels >= 0], minlength=n_clusters)[:n_clusters]


def _kernel_sizes(analyzer) -> np.ndarray:
    return np.asarray(analyzer.kernel_sizes_, dtype=int)


def cluster_order(labels) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Channel order by cluster (id 0 first, inactive channels last) and the blocks in it.

    Returns ``(order, blocks)``: ``order`` indexes the channels, ``blocks`` lists
    ``(name, start, stop)`` with name the cluster id as a string or ``"inactive"``.
    """
    labels = np.asarray(labels, dtype=int)
    order, blocks, start = [], [], 0
    ids = [int(k) for k in np.unique(labels[labels >= 0])]
    for name, members in [(str(k), np.flatnonzero(labels == k)) for k in ids] + [
        ("inactive", np.flatnonzero(labels < 0))
    ]:
        if len(members):
            order.extend(members.tolist())
            blocks.append((name, start, start + len(members)))
            start += len(members)
    return np.asarray(order, dtype=int), blocks


# -- correlation matrix ----------------------------------------------------------------------

def plot_correlation(analyzer, path, title=None) -> Path:
    """Pearson correlation (``stats_.correlation_``) with channels ordered by cluster."""
    _fitted(analyzer, "labels_", "stats_", "kernel_sizes_")
    labels, kernels = _labels(analyzer), _kernel_sizes(analyzer)
    corr = np.asarray(analyzer.stats_.correlation_, dtype=float)
    n = len(labels)
    if corr.shape != (n, n):
        raise SparsenetError(f"stats_.correlation_ has shape {corr.shape}, expected ({n}, {n}) for {n} labels")
    order, blocks = cluster_order(labels)
    corr = corr.copy()
    corr[labels < 0, :] = np.nan  # inactive channels have no meaningful correlation: grey
    corr[:, labels < 0] = np.nan
    shown = np.ma.masked_invalid(corr[np.ix_(order, order)])
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#d9d9d9")  # bad: inactive channels

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.6, 6.4), layout="constrained")
        im = ax.imshow(shown, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest",
                       extent=(0, n, n, 0))
        for _, start, _stop in blocks[1:]:
            ax.axhline(start, color="black", lw=0.6)
            ax.axvline(start, color="black", lw=0.6)
        _block_ticks(ax, blocks, labels, kernels, n)
        ax.set_xlabel("channel (ordered by cluster)")
        ax.set_ylabel("channel (ordered by cluster)")
        ax.set_title(_heading("Channel correlation, ordered by cluster", title))
        cbar = fig.colorbar(im, ax=ax, shrink=0.85)
        cbar.set_label("Pearson correlation r")
        inactive = int((labels < 0).sum())
        note = f"{n} channels, {len(blocks) - (inactive > 0)} clusters"
        if inactive:
            note += f", {inactive} inactive (last, grey)"
        ax.text(0.0, -0.1, note, transform=ax.transAxes, fontsize=9, va="top", color="#444444")
        return save_figure(fig, path)


def _block_ticks(ax, blocks, labels, kernels, n) -> None:
    """Cluster ids (x) and 'id: kxk' (y) at the centre of each block big enough to read."""
    # A 5.5-inch axis at figures.DPI shows ~650 px; a 9 pt label needs ~16 px vertically, ~24 across.
    min_rows, min_cols = n * 16 / 650, n * 26 / 650
    yt, yl, xt, xl = [], [], [], []
    for name, start, stop in blocks:
        centre, width = (start + stop) / 2, stop - start
        if name == "inactive":
            text_y, text_x = "inactive", "off"
        else:
            k = kernels[int(name)] if int(name) < len(kernels) else 0
            text_y, text_x = f"{name}: {k}x{k}", name
        if width >= min_rows:
            yt.append(centre)
            yl.append(text_y)
        if width >= min_cols:
            xt.append(centre)
            xl.append(text_x)
    if yt:
        ax.set_yticks(yt, yl)
        ax.tick_params(axis="y", length=0)
    if xt:
        ax.set_xticks(xt, xl)
        ax.tick_params(axis="x", length=0)
    # Otherwise (many small clusters) matplotlib's plain positions stay.


# -- Laplacian spectrum and dendrogram --------------------------------------------------------

def plot_spectrum(analyzer, path, title=None) -> Path:
    """Smallest eigenvalues of the normalised Laplacian, the chosen K and the noise edge (or
    eigengap) that chose it."""
    _fitted(analyzer, "eigenvalues_", "n_clusters_")
    eig = _array(analyzer, "eigenvalues_", "no Laplacian spectrum was computed; nothing to plot").ravel()
    k = int(analyzer.n_clusters_)
    shown = min(len(eig), max(MAX_EIGENVALUES, k + 2))
    x = np.arange(1, shown + 1)
    if getattr(analyzer, "n_clusters", "auto") != "auto":
        how = "set by n_clusters"
    elif getattr(analyzer, "method", "spectral") == "communities":
        how = "modularity communities"
    elif getattr(analyzer, "k_edge_", None) is not None:
        how = "eigenvalues below the noise edge"
    else:
        how = "eigengap"
    edge = getattr(analyzer, "k_edge_", None) if how.startswith("eigenvalues below") else None

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
        ax.plot(x, eig[:shown], "o-", color="#1f77b4", ms=4.5, lw=1.2, label="eigenvalue λ_i")
        if 1 <= k <= shown:
            ax.plot([k], [eig[k - 1]], "o", ms=10, mfc="none", mec="#d62728", mew=2,
                    label=f"chosen K = {k} ({how})")
            ax.axvline(k + 0.5, color="#d62728", ls="--", lw=1)
            if edge is not None:
                ax.axhline(edge, color="#7f7f7f", ls=":", lw=1.5,
                           label=f"noise edge {edge:.3f} (higher of shuffled and degree-matched λ_2)")
            elif k < len(eig):
                gap = eig[k] - eig[k - 1]
                ax.annotate("", xy=(k + 0.5, eig[k]), xytext=(k + 0.5, eig[k - 1]),
                            arrowprops=dict(arrowstyle="<->", color="#d62728", lw=1.3))
                right = k + 0.5 < 0.6 * shown
                ax.text(k + 0.5 + (0.4 if right else -0.4), (eig[k] + eig[k - 1]) / 2,
                        f"eigengap λ_{k + 1} − λ_{k} = {gap:.3f}", color="#d62728",
                        ha="left" if right else "right", va="center", fontsize=10,
                        bbox=dict(fc="white", ec="none", alpha=0.8, pad=1.5))
        ax.set_xlabel("index i (eigenvalues in ascending order)")
        ax.set_ylabel("eigenvalue λ_i of the normalised Laplacian")
        ax.set_xlim(0.3, shown + 0.7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        sub = f" (first {shown} of {len(eig)})" if shown < len(eig) else ""
        ax.set_title(_heading("Laplacian spectrum" + sub, title))
        ax.legend(loc="lower right")
        return save_figure(fig, path)


def plot_dendrogram(analyzer, path, title=None) -> Path:
    """The hierarchical clustering tree (``linkage_``), cut where it gives K clusters."""
    from scipy.cluster.hierarchy import dendrogram

    _fitted(analyzer, "linkage_", "labels_", "n_clusters_")
    z = _array(analyzer, "linkage_", "it is set only by method='hierarchical'")
    leaves = len(z) + 1
    labels = _labels(analyzer)
    active = np.flatnonzero(labels >= 0)
    names = ([str(i) for i in active] if leaves == len(active)
             else [str(i) for i in range(leaves)] if leaves == len(labels) else None)
    k = int(analyzer.n_clusters_)
    cut = None
    if 1 < k <= len(z):  # between the merges that leave k and k - 1 clusters
        cut = (z[leaves - k - 1, 2] + z[leaves - k, 2]) / 2 if leaves - k - 1 >= 0 else z[0, 2] / 2

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(7.0, min(14.0, 0.16 * leaves + 3)), 4.8), layout="constrained")
        dendrogram(z, ax=ax, labels=names, no_labels=names is None or leaves > MAX_DENDROGRAM_LABELS,
                   color_threshold=cut if cut is not None else 0, above_threshold_color="#7f7f7f",
                   leaf_font_size=7 if leaves > 30 else 9)
        if cut is not None:
            ax.axhline(cut, color="#d62728", ls="--", lw=1, label=f"cut giving K = {k} clusters")
            ax.set_ylim(0, z[:, 2].max() * 1.15)  # headroom for the legend above the root
            ax.legend(loc="upper right")
        ax.set_xlabel("channel" + ("" if names is not None and leaves <= MAX_DENDROGRAM_LABELS
                                   else f" ({leaves} leaves, labels omitted)"))
        ax.set_ylabel("distance 1 − affinity (average linkage)")
        ax.set_title(_heading("Hierarchical clustering of channels", title))
        return save_figure(fig, path)


# -- spatial profiles -------------------------------------------------------------------------

def plot_spatial_profiles(analyzer, path, title=None) -> Path:
    """Each cluster's profile against spatial radius, one line per cluster: the cross-pair
    profile its footprint was fitted to (markers) with the fitted candidate's profile (dashed)
    when the analyser has ``footprints_``, else the within-cluster profile."""
    _fitted(analyzer, "spatial_profiles_", "kernel_sizes_", "labels_")
    fits = getattr(analyzer, "footprints_", None)
    if fits:
        _array(analyzer, "spatial_profiles_", "the activations were flat, N x C")
        prof = np.array([f.profile for f in fits], dtype=float)
        models = np.array([f.model for f in fits], dtype=float)
    else:
        prof, models = _array(analyzer, "spatial_profiles_", "the activations were flat, N x C"), None
    if prof.ndim != 2 or prof.shape[1] < 1:
        raise SparsenetError(f"spatial_profiles_ has shape {prof.shape}, expected K x (R+1)")
    kernels = _kernel_sizes(analyzer)
    sizes = _cluster_sizes(analyzer, len(prof))
    radii = np.arange(prof.shape[1])
    markers = "osD^v<>ph*"

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.6, 4.8), layout="constrained")
        # The legend names the largest clusters (in id order); smaller ones are drawn faint.
        named_ids = set(sorted(range(len(prof)), key=lambda c: (-sizes[c], c))[:MAX_LEGEND_CLUSTERS])
        per_kernel: dict[int, int] = {}
        for c in range(len(prof)):
            ks = int(kernels[c])
            i = per_kernel.get(ks, 0)
            per_kernel[ks] = i + 1
            named = c in named_ids
            margin = f", margin {fits[c].margin:.3f}" if fits and np.isfinite(fits[c].margin) else ""
            ax.plot(radii, prof[c], marker=markers[i % len(markers)], ms=5, lw=1.4,
                    color=kernel_colour(ks), alpha=0.9 if named else 0.45,
                    label=f"cluster {c} ({sizes[c]} ch, {ks}x{ks}{margin})" if named else None)
            if models is not None:
                ax.plot(radii, models[c], ls="--", lw=1.0, color=kernel_colour(ks),
                        alpha=0.8 if named else 0.35)
        handles, texts = ax.get_legend_handles_labels()
        if len(prof) > MAX_LEGEND_CLUSTERS:
            handles.append(Line2D([], [], color="none"))
            texts.append(f"+ {len(prof) - MAX_LEGEND_CLUSTERS} smaller clusters (faint lines)")
        if models is not None:
            handles.append(Line2D([], [], color="grey", ls="--", lw=1.0))
            texts.append("fitted footprint's profile")
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xticks(radii)
        ax.set_xlabel("spatial offset radius r (feature-map pixels)")
        ax.set_ylabel("cross-pair correlation (1 at r = 0)" if fits
                      else "within-cluster correlation (1 at r = 0)")
        top = ax.secondary_xaxis("top")
        top.set_xticks(radii, [f"{r + 1}x{r + 1}" for r in radii])
        top.set_xlabel("a k x k box's autocorrelation reaches r = k - 1")
        ax.grid(alpha=0.3)
        ax.set_title(_heading("Spatial footprint of each cluster", title))
        ax.legend(handles, texts, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        return save_figure(fig, path)


# -- cluster sizes ----------------------------------------------------------------------------

def plot_cluster_sizes(analyzer, path, title=None) -> Path:
    """Cluster sizes grouped by kernel size, and the channels each kernel size receives."""
    _fitted(analyzer, "labels_", "kernel_sizes_")
    labels, kernels = _labels(analyzer), _kernel_sizes(analyzer)
    k = len(kernels)
    sizes = _cluster_sizes(analyzer, k)
    inactive = int((labels < 0).sum())
    groups = sorted(set(int(v) for v in kernels))
    analyzer_flat = getattr(analyzer, "spatial_profiles_", None) is None

    with plt.rc_context(STYLE):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.0, 4.6), layout="constrained",
                                      gridspec_kw={"width_ratios": [3, 1.2]})
        x, pos, centres = 0.0, [], []
        for ks in groups:
            members = [c for c in range(k) if kernels[c] == ks]
            members.sort(key=lambda c: (-sizes[c], c))
            start = x
            for c in members:
                pos.append((x, c, ks))
                x += 1
            centres.append(((start + x - 1) / 2, ks, len(members)))
            x += 0.8  # gap between kernel-size groups
        xs = [p for p, _, _ in pos]
        ax.bar(xs, [sizes[c] for _, c, _ in pos], color=[kernel_colour(ks) for _, _, ks in pos],
               width=0.8, edgecolor="white")
        if len(pos) <= 40:
            ax.set_xticks(xs, [str(c) for _, c, _ in pos], fontsize=8 if len(pos) > 20 else 9)
            ax.set_xlabel("cluster id, grouped by kernel size"
                          + (" (flat input: no spatial extent)" if analyzer_flat else ""))
        else:
            ax.set_xticks([])
            ax.set_xlabel(f"{len(pos)} clusters, grouped by kernel size (largest first)")
        if xs:  # at least ~6 bar widths across, so one or two clusters keep slim bars
            centre, span = (xs[0] + xs[-1]) / 2, max(xs[-1] - xs[0] + 1.6, 6.0)
            ax.set_xlim(centre - span / 2, centre + span / 2)
        top = max(sizes.max(initial=0), 1)
        ax.set_ylim(0, top * 1.18)
        crowded = len(pos) > 16
        for cx, ks, m in centres:
            label = f"{ks}x{ks}" if crowded else f"{ks}x{ks}\n{m} cluster{'s' if m != 1 else ''}"
            ax.text(cx, top * 1.1, label, ha="center",
                    va="center", fontsize=9, color=kernel_colour(ks), fontweight="bold")
        ax.set_ylabel("channels in cluster")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(_heading("Cluster sizes", title))

        none = "in none" if getattr(analyzer, "overlapping_", False) else "inactive"
        names = [f"{ks}x{ks}" for ks in groups] + ([none] if inactive else [])
        totals = [int(sizes[kernels == ks].sum()) for ks in groups] + ([inactive] if inactive else [])
        colours = [kernel_colour(ks) for ks in groups] + ([INACTIVE_COLOUR] if inactive else [])
        bars = ax2.bar(range(len(names)), totals, color=colours, width=0.7)
        ax2.bar_label(bars, fontsize=9, padding=2)
        ax2.set_xticks(range(len(names)), names)
        ax2.set_ylim(0, max(max(totals, default=0), 1) * 1.15)
        ax2.set_xlabel("kernel size")
        ax2.set_ylabel("channels")
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        shared = _shared_count(analyzer)
        ax2.set_title(f"Channels per kernel size\n({len(labels)} total, {inactive} "
                      + ("in no cluster" if getattr(analyzer, "overlapping_", False) else "inactive")
                      + (f";\n{shared} shared, counted per cluster" if shared else "") + ")", fontsize=11)
        ax2.grid(axis="y", alpha=0.3)
        return save_figure(fig, path)


def _shared_count(analyzer) -> int:
    if not getattr(analyzer, "overlapping_", False):
        return 0
    counts = np.zeros(len(analyzer.labels_), dtype=int)
    for members in analyzer.neighbourhoods_:
        counts[members] += 1
    return int((counts > 1).sum())


# -- overlapping membership --------------------------------------------------------------------

def plot_membership(analyzer, path, title=None) -> Path:
    """Which channels each (overlapping) cluster holds: clusters x channels, shared channels marked."""
    _fitted(analyzer, "neighbourhoods_", "labels_", "kernel_sizes_")
    sets, labels = analyzer.neighbourhoods_, _labels(analyzer)
    grid = np.zeros((len(sets), len(labels)))
    for k, members in enumerate(sets):
        grid[k, members] = 1.0
    count = grid.sum(axis=0)
    order, _ = cluster_order(labels)  # channels by primary cluster, channels in none last
    shown = (grid * np.where(count > 1, 2.0, 1.0))[:, order]  # 2 = membership of a shared channel
    from matplotlib.colors import ListedColormap
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.6, 4.8), layout="constrained")
        image = ax.imshow(shown, aspect="auto", interpolation="nearest",
                          cmap=ListedColormap(["white", "tab:blue", "tab:red"]), vmin=0, vmax=2)
        ax.set_xlabel(f"channel, ordered by primary cluster ({int((count == 0).sum())} in no cluster, last)")
        ax.set_ylabel("cluster id")
        bar = fig.colorbar(image, ax=ax, ticks=[1 / 3, 1, 5 / 3], fraction=0.04)
        bar.ax.set_yticklabels(["not a member", "member", "member of several"])
        ax.set_title(_heading(f"Overlapping clusters: {int((count > 1).sum())} channels shared", title))
        return save_figure(fig, path)


# -- everything -------------------------------------------------------------------------------

def plot_discovery(analyzer, out_dir, prefix: str = "", title: str | None = None) -> dict[str, Path]:
    """Every figure that applies to the fitted analyser, written as ``out_dir/{prefix}{name}.png``.

    Keys: ``correlation``, ``spectrum`` (when a Laplacian spectrum was computed), ``dendrogram``
    (method="hierarchical"), ``spatial_profiles`` (spatial activations only), ``cluster_sizes``, ``membership``
    (overlapping clusters, method="arora").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("correlation", plot_correlation)]
    if getattr(analyzer, "eigenvalues_", None) is not None:
        jobs.append(("spectrum", plot_spectrum))
    if getattr(analyzer, "linkage_", None) is not None:
        jobs.append(("dendrogram", plot_dendrogram))
    if getattr(analyzer, "spatial_profiles_", None) is not None:
        jobs.append(("spatial_profiles", plot_spatial_profiles))
    jobs.append(("cluster_sizes", plot_cluster_sizes))
    if getattr(analyzer, "overlapping_", False):
        jobs.append(("membership", plot_membership))
    return {name: fn(analyzer, out / f"{prefix}{name}.png", title=title) for name, fn in jobs}
