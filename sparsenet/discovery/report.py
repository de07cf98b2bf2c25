"""The Markdown report of a discovery run, and the short table the CLI prints.

:func:`write_report` writes ``out_dir/report.md`` atomically: where the activations came from,
the command, one table row per cluster (size, kernel size, spatial profile, channels), the
inactive channels, the significance test and stability score each with a sentence on what it
means, and the plots embedded with links relative to the report.  :func:`summary_table` is the
same table as plain text for a terminal.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sparsenet.analyser.settings import ARORA_EXTENT_LEVEL
from sparsenet.discovery.value import Discovery
from sparsenet.io import atomic_write_text
from sparsenet.numbers import fixed, p_value

PREVIEW_CHANNELS = 8  # channel indices listed per cluster before "+N more"

_PROVENANCE_ORDER = ("model", "model_kwargs", "layer", "layer_shape", "data", "split", "samples",
                     "seed", "checkpoint", "activations", "sparsenet_version")
_FIGURES = {  # key -> (caption, what it shows)
    "correlation": ("Correlation matrix",
                    "Pearson correlation between channels, reordered so that each cluster is a block "
                    "on the diagonal (inactive channels last)."),
    "spectrum": ("Laplacian spectrum",
                 "Smallest eigenvalues of the normalised graph Laplacian of the affinity; a large gap "
                 "after the K-th eigenvalue indicates K well-separated groups."),
    "dendrogram": ("Dendrogram",
                   "Hierarchical clustering of the channels; the dashed line is the cut that gives K clusters."),
    "spatial_profiles": ("Spatial profiles",
                         "Cross-pair correlation of each cluster against spatial radius (markers; each "
                         "channel's correlation with itself and the per-position means left out) and the "
                         "profile of the fitted footprint (dashed); the colour is the kernel size."),
    "membership": ("Overlapping clusters",
                   "Which channels each cluster holds (clusters may share channels); red marks a channel "
                   "that belongs to several clusters."),
    "cluster_sizes": ("Cluster sizes",
                      "Channels per cluster, grouped by kernel size, and the channels each kernel size receives."),
}


# -- formatting ------------------------------------------------------------------------------

def _channels(channels, limit: int = PREVIEW_CHANNELS) -> str:
    shown = ", ".join(str(c) for c in channels[:limit])
    return shown + (f", … (+{len(channels) - limit})" if len(channels) > limit else "")


def _kernel(ks: int) -> str:
    return f"{ks}x{ks}"


def _profile_len(discovery: Discovery) -> int:
    return max((len(c.spatial_profile) for c in discovery.clusters), default=0)


def _title(discovery: Discovery) -> str:
    prov = discovery.provenance
    layer, model, data = prov.get("layer"), prov.get("model"), prov.get("data")
    if layer or model:
        text = f"Discovery: layer `{layer or '?'}` of `{model or '?'}`"
        return text + (f" on `{data}`" if data else "")
    if prov.get("activations"):
        return f"Discovery: activations `{prov['activations']}`"
    return "Discovery"


# Hennig (2007), "Cluster-wise assessment of cluster stability": a cluster whose mean best-match
# Jaccard over resamples is at most 0.5 dissolves; one of 0.75 or more is stable
DISSOLVED, STABLE = 0.5, 0.75


# -- plain-text summary ----------------------------------------------------------------------

def summary_table(discovery: Discovery) -> str:
    """Clusters as a plain-text table for the terminal, then inactive/significance/stability lines."""
    r = _profile_len(discovery)
    stable = _has_cluster_stability(discovery)
    header = ["cluster", "size", "kernel"] + (["stability"] if stable else []) \
        + ([f"profile r=0..{r - 1}"] if r else []) + ["channels"]
    rows = []
    for c in discovery.clusters:
        row = [str(c.id), str(c.size), _kernel(c.kernel_size)] + ([_stability_cell(c)] if stable else [])
        if r:
            row.append(" ".join(fixed(v, 2) for v in c.spatial_profile))
        row.append(_channels(c.channels, 6))
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    numeric = {0, 1, 3} if stable else {0, 1}  # right-aligned columns

    def line(cells):
        return "  ".join(cell.rjust(w) if i in numeric else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(header), line(["-" * w for w in widths])] + [line(row) for row in rows]
    inactive = discovery.inactive
    lines.append(f"{discovery.n_clusters} clusters over {discovery.channels} channels; "
                 f"{'in no cluster' if discovery.overlapping else 'inactive'}: {len(inactive)}"
                 + (f" ({_channels(inactive, 10)})" if inactive else ""))
    if discovery.overlapping:
        lines.append(_overlap_sentence(discovery))
    sig = discovery.significance
    if sig:
        lines.append(f"significance: {sig.get('statistic', 'statistic')} {fixed(sig.get('value'))} vs null "
                     f"{fixed(sig.get('null_mean'))} ± {fixed(sig.get('null_std'))}, z = {fixed(sig.get('z'), 1)}, "
                     f"p = {p_value(sig.get('p'))} ({sig.get('n_permutations', '?')} permutations)")
    if discovery.stability is not None:
        lines.append(f"stability: mean ARI {fixed(discovery.stability, 2)} across resampled halves"
                     + (f"; per cluster (column): mean best-match Jaccard, >= {STABLE} stable, <= {DISSOLVED} "
                        "dissolving" if stable else ""))
    return "\n".join(lines)


# -- Markdown report -------------------------------------------------------------------------

def write_report(discovery: Discovery, plots: dict[str, Path], out_dir, *, command: str | None = None) -> Path:
    """Write ``out_dir/report.md`` (atomically) and return its path.

    ``plots`` maps figure names (as returned by :func:`sparsenet.discovery.plots.plot_discovery`) to
    paths, absolute or relative to ``out_dir``; they are linked relative to the report.
    """
    out = Path(out_dir)
    sections = [
        _header(discovery, command),
        _clusters(discovery),
        _inactive(discovery),
        _significance(discovery.significance),
        _stability(discovery),
        _figures(plots, out),
    ]
    return atomic_write_text(out / "report.md", "\n\n".join(s for s in sections if s).rstrip() + "\n")


def _header(discovery: Discovery, command: str | None) -> str:
    prov = discovery.provenance
    parts = [f"# {_title(discovery)}"]
    if command:
        parts.append(f"Produced by:\n\n```\n{command}\n```")
    keys = [k for k in _PROVENANCE_ORDER if k in prov] + sorted(k for k in prov if k not in _PROVENANCE_ORDER)
    if keys:
        parts.append("| provenance | |\n|---|---|\n" + "\n".join(f"| {k} | {_cell(prov[k])} |" for k in keys))
    if discovery.settings:
        settings = ", ".join(f"{k} = {_cell(v)}" for k, v in discovery.settings.items())
        parts.append(f"Analyser settings: {settings}.")
    return "\n\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        text = " x ".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else str(list(value))
    else:
        text = str(value)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`" if text else ""


def _clusters(discovery: Discovery) -> str:
    r = _profile_len(discovery)
    active = discovery.channels - len(discovery.inactive)
    per_kernel: dict[int, list[int]] = {}
    for c in discovery.clusters:
        per_kernel.setdefault(c.kernel_size, []).append(c.size)
    totals = "; ".join(f"{_kernel(ks)}: {sum(s)} channels in {len(s)} cluster{'s' if len(s) != 1 else ''}"
                       for ks, s in sorted(per_kernel.items()))
    intro = (f"{discovery.n_clusters} clusters over {discovery.channels} channels "
             f"({active} active, {len(discovery.inactive)} inactive). By kernel size: {totals}.")
    if discovery.overlapping:
        intro = (f"{discovery.n_clusters} overlapping clusters over {discovery.channels} channels "
                 f"({active} in at least one, {len(discovery.inactive)} in none). By kernel size: {totals}. "
                 + _overlap_sentence(discovery))
    fitted = any(c.footprint for c in discovery.clusters)
    if r and not fitted:  # e.g. Arora's overlapping neighbourhoods: no footprint fit (analyser/estimator.py)
        intro += (" The profile is the within-cluster correlation at spatial radius r (1 at r = 0); the "
                  f"kernel covers the radii where it stays above {ARORA_EXTENT_LEVEL} (no footprint was fitted).")
    elif r:
        intro += (" The profile is the within-cluster correlation at spatial radius r (1 at r = 0). "
                  "The kernel is the footprint of the filter behind the cluster's shared pattern: the "
                  "smallest kernel whose window holds "
                  + (f"{discovery.settings['mass_fraction']:.0%}"
                     if isinstance(discovery.settings.get("mass_fraction"), (int, float)) else "a set share")
                  + " of its mass, fitted to the cross-pair profile (docs/analyser.md); the margin is how "
                  "much worse (RMS misfit) the best candidate of another size fits.")
    else:
        intro += " The activations were flat (N x C), so no spatial profile was measured."
    scored = _has_cluster_stability(discovery)
    extra = ["window mass", "misfit", "next size (margin)"] if fitted else []
    extra += ["stability"] if scored else []
    head = ["cluster", "size", "kernel"] + [f"r={i}" for i in range(r)] + extra + ["channels"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * (3 + r + len(extra)) + "---|"]
    for c in discovery.clusters:
        profile = [fixed(v, 2) for v in c.spatial_profile] + ["n/a"] * (r - len(c.spatial_profile))
        cells = [str(c.id), str(c.size), _kernel(c.kernel_size), *profile]
        if fitted:
            cells += _footprint_cells(c)
        if scored:
            cells.append(_stability_cell(c))
        lines.append("| " + " | ".join(cells + [_channels(c.channels)]) + " |")
    return "## Clusters\n\n" + intro + "\n\n" + "\n".join(lines)


def _footprint_cells(c) -> list[str]:
    fp = c.footprint
    if not fp:
        return ["n/a"] * 3
    mass = (fp.get("mass_fractions") or {}).get(str(c.kernel_size))
    runner, margin = fp.get("runner_up"), fp.get("margin")
    next_size = (f"{_kernel(runner)} (+{fixed(margin, 3)})"
                 if isinstance(runner, int) and isinstance(margin, (int, float)) and math.isfinite(margin)
                 and runner != c.kernel_size else "none")
    return [fixed(mass, 2) if isinstance(mass, (int, float)) else "n/a",
            fixed(fp.get("residual"), 3) if isinstance(fp.get("residual"), (int, float)) else "n/a",
            next_size]


def _overlap_sentence(discovery: Discovery) -> str:
    shared = discovery.shared
    return (f"Clusters overlap (Arora's neighbourhoods): {len(shared)} channel{'s' if len(shared) != 1 else ''} "
            f"belong to more than one cluster" + (f" ({_channels(shared, 10)})" if shared else "")
            + "; 'labels' gives each channel's primary cluster, and a shared channel feeds every branch it belongs to.")


def _inactive(discovery: Discovery) -> str:
    inactive = discovery.inactive
    if discovery.overlapping:
        if not inactive:
            return "## Channels in no cluster\n\nNone: every channel belongs to at least one cluster."
        return (f"## Channels in no cluster\n\n{len(inactive)} channel{'s' if len(inactive) != 1 else ''} "
                f"(dead, constant, or in no recovered neighbourhood): {', '.join(str(i) for i in inactive)}.")
    if not inactive:
        return "## Inactive channels\n\nNone: every channel varies and was clustered."
    return (f"## Inactive channels\n\n{len(inactive)} channel{'s' if len(inactive) != 1 else ''} "
            f"never varied (dead or constant) and belong to no cluster: "
            f"{', '.join(str(i) for i in inactive)}.")


def _significance(sig: dict) -> str:
    if not sig:
        return ("## Significance\n\nNot computed: no permutation test was run (n_permutations = 0, or the "
                "analyser was fitted on streamed statistics without the samples the null needs).")
    n = sig.get("n_permutations")
    stat = sig.get("statistic", "statistic")
    table = ("| statistic | observed | null mean ± std | z | p | permutations |\n"
             "|---|---:|---:|---:|---:|---:|\n"
             f"| {stat} | {fixed(sig.get('value'))} | {fixed(sig.get('null_mean'))} ± {fixed(sig.get('null_std'))} "
             f"| {fixed(sig.get('z'), 2)} | {p_value(sig.get('p'))} | {n if n is not None else 'n/a'} |")
    explain = (f"The null shuffles each channel independently across samples (across images, for "
               f"spatial maps), which keeps each channel's "
               f"own distribution but destroys co-firing between channels; the same pipeline is rerun on "
               f"each shuffled copy. z is how many null standard deviations the observed {stat} lies above "
               f"the null mean, and p is the share of shuffles (counting the observation) that reach it.")
    null_std, value, null_mean = sig.get("null_std"), sig.get("value"), sig.get("null_mean")
    if isinstance(null_std, (int, float)) and null_std <= 1e-9 * max(1.0, abs(value or 0.0), abs(null_mean or 0.0)):
        explain += (" Every shuffle gave the same value (the null has no spread, e.g. each shuffled copy "
                    "formed a single cluster), so z is not informative here; rely on p.")
    p = sig.get("p")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        verdict = "No p-value is available."
    elif float(p) <= 0.05:
        verdict = (f"Here p = {p_value(p)}: the channels of these clusters co-fire more than "
                   f"independent channels would, so the structure is unlikely to be chance.")
        if _at_floor(p, n):
            verdict += (f" This is the smallest p that {n} permutations can give; "
                        f"more permutations would resolve it further.")
    elif _at_floor(p, n):
        verdict = (f"None of the {n} shuffles reached the observed value (z = {fixed(sig.get('z'), 2)}), "
                   f"but {n} permutations cannot give p below {p_value(p)}; run more permutations "
                   f"(at least 19 for p = 0.05) for a conclusive test.")
    else:
        verdict = (f"Here p = {p_value(p)}: the clustering is not distinguishable from what independent "
                   f"channels produce; treat the clusters with caution (more samples may help).")
    return f"## Significance\n\n{table}\n\n{explain} {verdict}"


def _at_floor(p, n) -> bool:
    """True when p is the smallest value n permutations can give, 1 / (n + 1)."""
    return isinstance(n, int) and n > 0 and float(p) <= 1.0 / (n + 1) + 1e-12


def _has_cluster_stability(discovery: Discovery) -> bool:
    return any(c.stability is not None for c in discovery.clusters)


def _stability_cell(c) -> str:
    return "n/a" if c.stability is None else fixed(c.stability, 2)


def _cluster_stability_sentence(discovery: Discovery) -> str:
    scored = [c for c in discovery.clusters if c.stability is not None]
    if not scored:
        return ""
    stable = [c.id for c in scored if c.stability >= STABLE]
    dissolved = [c.id for c in scored if c.stability <= DISSOLVED]
    doubtful = [c.id for c in scored if DISSOLVED < c.stability < STABLE]
    text = (f" Cluster by cluster (the table's *stability* column: each cluster's Jaccard similarity with the "
            f"most similar cluster of each half, averaged; Hennig 2007 reads {STABLE} or more as stable and "
            f"{DISSOLVED} or less as a cluster that dissolves): {len(stable)} of {len(scored)} stable")
    if doubtful:
        text += (f"; doubtful (between {DISSOLVED} and {STABLE}): cluster{'s' if len(doubtful) > 1 else ''} "
                 f"{_channels(doubtful)}")
    if dissolved:
        text += (f"; dissolving: cluster{'s' if len(dissolved) > 1 else ''} {_channels(dissolved)} (the halves cut these channels differently each time: "
                 "a grouping the clustering imposes, not one the data repeat)")
    return text + "."


def _stability(discovery: Discovery) -> str:
    ari, n_clusters = discovery.stability, discovery.n_clusters
    if ari is None and n_clusters < 2:
        # the estimator skips the halves at K = 1: every labeling of one cluster agrees
        return ("## Stability\n\nNot computed: a single cluster, so the halves' labelings cannot "
                "disagree (stability compares partitions into 2 or more clusters).")
    if ari is None:
        return "## Stability\n\nNot computed (too few samples to split, or no resamples requested)."
    explain = ("The samples are split into two random halves, each half is clustered on its own, and the two "
               "labelings are compared with the adjusted Rand index (1 = the same clusters, 0 = agreement "
               "expected by chance), averaged over the resamples.")
    if ari >= 0.8:
        verdict = "The clusters are stable: both halves of the data give nearly the same grouping."
    elif ari >= 0.5:
        verdict = "The clusters are moderately stable: the main groups recur, their borders move."
    else:
        verdict = "The clusters are unstable: they depend on which samples were seen; record more samples."
    return (f"## Stability\n\nMean ARI across resampled halves: **{fixed(ari, 3)}**. {explain} {verdict}"
            + _cluster_stability_sentence(discovery))


def _figures(plots: dict[str, Path], out: Path) -> str:
    if not plots:
        return ""
    parts = ["## Figures"]
    for key, path in plots.items():
        path = Path(path)
        target = path if path.is_absolute() else out / path
        link = Path(os.path.relpath(target, out)).as_posix()
        if " " in link:
            link = f"<{link}>"
        caption, what = _FIGURES.get(key, (key.replace("_", " ").capitalize(), ""))
        parts.append(f"### {caption}\n\n![{caption}]({link})" + (f"\n\n{what}" if what else ""))
    return "\n\n".join(parts)
