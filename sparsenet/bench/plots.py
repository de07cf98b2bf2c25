"""Plots of the benchmark results: one PNG per measurement, ``perf_<measurement>.png``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from sparsenet.figures import kernel_colour, save_figure


def _figure(ncols: int = 1, width: float = 6.4):
    # layout="tight": the tight layout is applied when the figure is saved, after everything is drawn
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, 4.2),
                             squeeze=False, layout="tight")
    return fig, axes[0]


def _subtitle(result: dict) -> str:
    m = result.get("machine", {})
    return (f"{result.get('mode', '')} run, {m.get('nproc', '?')} CPUs, torch "
            f"{result.get('torch_threads', m.get('torch_threads', '?'))} thread(s), load "
            f"{m.get('load_average_1_5_15', ['?'])[0]}")


def plot_stats_cost(result: dict, path: Path) -> Path:
    data = result["measurements"]["stats_cost"]
    fig, (ax,) = _figure(width=7.5)
    labels, paths = [], []
    for name, r in data["cases"].items():
        labels.append(f"{name}\n({'x'.join(map(str, r['layer_shape']))})")
        paths.append(r["ratio_to_forward"])
    kinds = sorted({k for p in paths for k in p})
    xs = np.arange(len(labels))
    w = 0.8 / max(1, len(kinds))
    for i, k in enumerate(kinds):
        vals = [p.get(k, np.nan) for p in paths]
        ax.bar(xs + (i - (len(kinds) - 1) / 2) * w, vals, w, label=k.replace("_", "-"))
    ax.axhline(data["target_max"], color="k", ls="--", lw=1, label=f"target <= {data['target_max']}")
    ax.axhline(1.0, color="grey", ls=":", lw=1, label="forward pass alone")
    ax.set_xticks(xs, labels, fontsize=8)
    top = max(v for p in paths for v in p.values())
    ax.set_ylim(0, max(data["target_max"], top) * 1.3)
    ax.set_ylabel("time / bare forward pass")
    ax.set_title("Statistics cost against inference\n" + _subtitle(result), fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    return save_figure(fig, path)


def plot_stats_machine(result: dict, path: Path) -> Path:
    data = result["measurements"]["stats_machine"]
    fig, (a, b) = _figure(ncols=2, width=5.5)
    rows = data["rate_rows"]
    labels = [f"{r['dtype']}\nR={r['max_radius']}\n{r['torch_threads']} thr" for r in rows]
    a.bar(range(len(rows)), [r["fraction_of_mm"] for r in rows], color="tab:blue")
    a.axhline(data["rate_target_min"], color="k", ls="--", lw=1,
              label=f"target >= {data['rate_target_min']}")
    a.set_xticks(range(len(rows)), labels, fontsize=8)
    a.set_ylabel("ChannelStats rate / torch.mm rate")
    a.set_title(f"Arithmetic rate against matmul\nC={rows[0]['channels']}, "
                f"{rows[0]['size']}x{rows[0]['size']} maps", fontsize=10)
    a.legend(fontsize=8)
    mem = data["memory_rows"]
    for r, style in zip(mem, ("o-", "s--")):
        trace = np.asarray(r["rss_now_trace_mb"], dtype=float)
        if trace.ndim == 1:  # results of the first version: MB only, evenly spaced
            trace = np.stack([np.linspace(0, r["samples_seen"], len(trace)), trace], axis=1)
        b.plot(trace[:, 0], trace[:, 1], style, ms=4,
               label=f"{r['samples_seen']:,} maps (streaming peak {r['rss_peak_mb']:.0f} MB)")
    b.set_xlabel("maps streamed")
    b.set_ylabel("resident memory during streaming (MB)")
    b.set_ylim(0, max(r["rss_peak_mb"] for r in mem) * 1.2)
    b.set_title(f"Memory as samples grow 10x: peak x{data['memory_growth_10x']:.3f}", fontsize=10)
    b.legend(fontsize=8)
    fig.suptitle(_subtitle(result), fontsize=9)
    return save_figure(fig, path)


def plot_clustering(result: dict, path: Path, before: dict | None = None) -> Path:
    data = result["measurements"]["clustering"]
    old = (before or {}).get("measurements", {}).get("clustering")
    fig, (ax,) = _figure(width=10.5)
    series = (("from_stats", "from ChannelStats", "o-", "tab:blue"),
              ("from_data", "from activations", "s-", "tab:orange"),
              ("with_significance", "from activations + significance", "^-", "tab:green"))
    for key, label, style, color in series:
        pts = [(r["channels"], r[key]["median_s"]) for r in data["rows"] if key in r]
        if not pts:
            continue
        slope = data.get(f"slope_{key}")
        extra = f" (slope {slope:.2f})" if slope is not None else ""
        if key == "with_significance":
            r0 = next(r for r in data["rows"] if key in r)
            extra += (f", {r0[key]['n_permutations']} perm + {r0[key]['n_resamples']} halves")
        ax.loglog(*zip(*pts), style, color=color, label=label + extra)
        if old:
            prev = [(r["channels"], r[key]["median_s"]) for r in old["rows"] if key in r]
            if prev:
                ax.loglog(*zip(*prev), style[0] + ":", color=color, alpha=0.45,
                          label=f"{label}, before")
    ax.axhline(data["interactive_target_s"], color="k", ls="--", lw=1,
               label=f"interactive: {data['interactive_target_s']:g} s")
    ax.axvline(1024, color="grey", ls=":", lw=1, label="GoogLeNet's widest layer (1,024)")
    ax.set_xlabel("channels C")
    ax.set_ylabel("analyser wall time (s)")
    ax.set_title("Clustering scale" + (" (dotted: before)" if old else "") + "\n"
                 + _subtitle(result), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_hardware(result: dict, path: Path) -> Path:
    data = result["measurements"]["hardware"]
    m = data["module"]
    rows = data["realisations"]
    sweep = data.get("layout_sweep") or []
    order = sorted(rows, key=lambda n: rows[n]["vs_ideal"])
    fig, axes = _figure(ncols=2 if sweep else 1, width=7.0 if sweep else 7.5)
    ax = axes[0]
    colors = ["tab:green" if n == "sparsenet" else "tab:red" if n == "sparse_csr"
              else "tab:grey" if n.startswith("dense") else "tab:blue" for n in order]
    ax.barh(range(len(order)), [rows[n]["vs_ideal"] for n in order], color=colors)
    ax.axvline(1.0, color="k", lw=1, label="ideal: dense x kept fraction")
    ax.axvline(data["ideal_target_max"], color="k", ls="--", lw=1,
               label=f"target <= {data['ideal_target_max']} x ideal")
    ax.set_yticks(range(len(order)), [n.replace("_", " ") for n in order], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("time / ideal (log scale)")
    ax.set_title(f"One cluster module: {m['in_channels']} ch in {m['clusters']} clusters, 3x3, "
                 f"{m['size']}x{m['size']}, batch {m['batch']}\n" + _subtitle(result), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    if sweep:
        b = axes[1]
        labels = [f"{r['cluster_size']}ch\n{r['kernel_size']}x{r['kernel_size']}\nN={r['batch']}"
                  for r in sweep]
        vals = [r["channels_last_over_nchw"] for r in sweep]
        b.bar(range(len(sweep)), vals, color=[kernel_colour(r["kernel_size"]) for r in sweep])
        nchw = b.axhline(1.0, color="k", lw=1)
        b.set_xticks(range(len(sweep)), labels, fontsize=7)
        b.set_ylabel("channels-last time / NCHW time")
        b.set_title("Grouped conv layout, by kernel size\n(layout copies included)", fontsize=9)
        sizes = sorted({r["kernel_size"] for r in sweep})
        b.legend([nchw] + [Patch(color=kernel_colour(k)) for k in sizes],
                 ["NCHW"] + [f"{k}x{k} conv" for k in sizes], fontsize=8)
    return save_figure(fig, path)


def plot_inference(result: dict, path: Path) -> Path:
    data = result["measurements"]["inference"]
    d, h = data["discovered"], data["googlenet_small"]
    batches = list(data["batches"])
    fig, axes = _figure(ncols=len(batches), width=5.2)
    per = {"discovered": d["macs"], "discovered_laid_out": d["macs"], "googlenet_small": h["macs"]}
    names = {"discovered": f"discovered\n({d['macs'] / 1e6:.2f}M MACs)",
             "discovered_laid_out": "discovered,\nlaid out,\nforms measured",
             "googlenet_small": f"googlenet_small@{h['width_mult']:.3f}\n({h['macs'] / 1e6:.2f}M MACs)"}
    colours = {"discovered": "tab:blue", "discovered_laid_out": "tab:green", "googlenet_small": "tab:orange"}
    for ax, b in zip(axes, batches):
        row = data["batches"][b]
        shown = [n for n in per if n in row]  # results from before the layout have no laid-out row
        vals = [row[n]["ms_per_image"] / (per[n] / 1e6) for n in shown]
        ax.bar(range(len(shown)), vals, color=[colours[n] for n in shown], width=0.6)
        ax.set_xticks(range(len(shown)), [names[n] for n in shown], fontsize=8)
        ax.set_ylim(0, max(vals) * 1.25)
        ax.set_ylabel("ms per image per million MACs")
        laid = row.get("discovered_laid_out")
        ax.set_title(f"batch {b}: ratio {row['per_mac_ratio']:.3f}"
                     + (f", laid out {laid['per_mac_ratio']:.3f}" if laid else "")
                     + f"\n(target <= {data['target_max']:.2f})", fontsize=10)
    fig.suptitle("Discovered vs hand-designed at inference, latency per multiply-add\n"
                 + _subtitle(result), fontsize=10)
    return save_figure(fig, path)


PLOTS = {"stats_cost": plot_stats_cost, "stats_machine": plot_stats_machine,
         "clustering": plot_clustering, "hardware": plot_hardware, "inference": plot_inference}


def plot_all(result: dict, figures: str | Path, before: dict | None = None) -> list[Path]:
    """One PNG per measurement in ``result``; ``before`` (an earlier results dict) is drawn
    faded where a plot supports it (the clustering scale)."""
    out = Path(figures)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, fn in PLOTS.items():
        if key not in result.get("measurements", {}):
            continue
        kwargs = {"before": before} if (before and key == "clustering") else {}
        paths.append(fn(result, out / f"perf_{key}.png", **kwargs))
    return paths
