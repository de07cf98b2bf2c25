"""Does a trained hand-designed GoogLeNet already show the structure the paper assumes?

Train ``googlenet_small`` (small width) on a dataset, record the output of each of its Inception
modules (the concatenation of its four branches), cluster the channels with sparsenet's
analyser, and measure how well the discovered clusters coincide with the hand-made branches:
the adjusted Rand index (ARI) between the discovered labels and
``sparsenet.models.branch_membership(block)`` (1x1 / 3x3 / 5x5 / pool projection), against a
shuffled null (the branch labels permuted across channels, many times: null mean and standard
deviation, z, and the permutation p-value ``(1 + #{null >= observed}) / (1 + n)``).

Purity (the share of channels in their cluster's majority branch) is scored against the same
permutations: unlike the ARI it does not penalise clusters finer than the branches. Inactive
channels (dead or constant, label -1) are left out of both scores and their nulls.

    python analysis/googlenet_structure.py --out runs/googlenet-structure

writes ``OUT/structure.json``, ``OUT/structure.md`` and ``OUT/structure.png``; the trained model
is kept in ``OUT/model`` (reused on a rerun with the same settings).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--num-modules", type=int, default=3, help="first k Inception modules (3a, 3b, 4a, ...)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1000, help="training images recorded per module")
    p.add_argument("--clusters", default="4,auto", help="comma-separated K values to try ('auto': eigenvalues below the noise edge)")
    p.add_argument("--null", type=int, default=1000, help="permutations of the branch labels")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/googlenet-structure")
    return p.parse_args(argv)


def purity(labels: np.ndarray, branches: np.ndarray) -> float:
    """Share of channels whose branch is their cluster's most common branch. Unlike the ARI it does
    not penalise clusters finer than the branches (a branch split into several pure clusters is pure)."""
    return float(np.asarray(contingency(labels, branches)).max(axis=1).sum() / len(labels))


def null_scores(labels: np.ndarray, branches: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ARI and purity of the clusters against ``n`` permutations of the branch labels (the same draws)."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(branches) for _ in range(n)]
    return (np.array([adjusted_rand_score(b, labels) for b in shuffled]),
            np.array([purity(labels, b) for b in shuffled]))


def contingency(labels: np.ndarray, branches: np.ndarray) -> list[list[int]]:
    """rows: discovered clusters, columns: branches (1x1, 3x3, 5x5, pool)."""
    k = int(labels.max()) + 1
    table = np.zeros((k, 4), dtype=int)
    for c, b in zip(labels, branches):
        table[c, b] += 1
    return table.tolist()


def main(argv=None) -> int:
    import torch
    from sklearn.metrics import adjusted_rand_score

    from sparsenet.data import load_dataset, normalize
    from sparsenet.analyser.settings import AnalysisSettings
    from sparsenet.discover import Activations, analyse
    from sparsenet.io import atomic_write_json, atomic_write_text
    from sparsenet.models import branch_membership
    from sparsenet.recording import record
    from sparsenet.training.checkpoint import model_from_checkpoint
    from sparsenet.training.loop import TrainConfig, train_named

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "threads")}
    settings_path = out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        print(f"{out} holds a run with other settings; choose another --out", file=sys.stderr)
        return 2
    atomic_write_json(settings_path, settings)
    t0 = time.perf_counter()
    dataset = load_dataset(args.data, seed=0)
    model_dir = out / "model"
    kwargs = {"width_mult": args.width_mult, "num_modules": args.num_modules}
    if not (model_dir / "metrics.json").exists():
        print(f"training googlenet_small {kwargs} on {dataset.name}, {args.epochs} epochs", flush=True)
        train_named("googlenet_small", dataset, TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed), kwargs,
                    out_dir=model_dir, resume=(model_dir / "checkpoint.pt").exists(), progress=False)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    model, _ = model_from_checkpoint(model_dir / "checkpoint.pt")
    mean, std = dataset.mean_std()
    x = normalize(dataset.x_train[: args.samples], mean, std)
    ks = [c if c == "auto" else int(c) for c in args.clusters.split(",")]
    modules = []
    for name in model.body:
        if not name.startswith("inception"):
            continue
        block = getattr(model, name)
        branches = np.array(branch_membership(block))
        acts = record(model, name, x, batch_size=250)
        entry = {"module": name, "channels": int(acts.shape[1]), "map": list(acts.shape[2:]),
                 "branch_widths": list(block.widths), "results": []}
        for k in ks:
            info = Activations(acts, {"model": "googlenet_small", "layer": name, "data": dataset.name,
                                      "layer_shape": list(acts.shape[1:])})
            _, discovery = analyse(info, AnalysisSettings(clusters=k, max_samples=args.samples, seed=args.seed,
                                                          permutations=0, resamples=0))
            labels = np.array(discovery.labels)
            active = labels >= 0
            obs = float(adjusted_rand_score(branches[active], labels[active]))
            null, null_purity = null_scores(labels[active], branches[active], args.null, args.seed)
            std_null = float(null.std(ddof=1))
            pure = purity(labels[active], branches[active])
            entry["results"].append({
                "clusters": k, "found_clusters": discovery.n_clusters, "active": int(active.sum()),
                "ari": obs, "null_mean": float(null.mean()), "null_std": std_null,
                "z": (obs - float(null.mean())) / std_null if std_null > 0 else None,
                "p": float((1 + np.sum(null >= obs)) / (1 + len(null))), "permutations": args.null,
                "kernel_sizes": [c.kernel_size for c in discovery.clusters],
                "contingency": contingency(labels[active], branches[active]),
                "purity": pure, "purity_null_mean": float(null_purity.mean()),
                "purity_null_std": float(null_purity.std(ddof=1)),
                "purity_p": float((1 + np.sum(null_purity >= pure)) / (1 + len(null_purity))),
            })
            r = entry["results"][-1]
            print(f"{name}: K={k} -> {r['found_clusters']} clusters, ARI {obs:.3f} vs null "
                  f"{r['null_mean']:.3f} ± {std_null:.3f} (p = {r['p']:.4f}); purity {pure:.3f} vs null "
                  f"{r['purity_null_mean']:.3f} ± {r['purity_null_std']:.3f} (p = {r['purity_p']:.4f})", flush=True)
        modules.append(entry)
    result = {"settings": settings, "model": {"name": "googlenet_small", **kwargs,
                                              "test_accuracy": metrics["final_test_accuracy"],
                                              "params": metrics["params"], "macs": metrics["macs"]},
              "dataset": dataset.name, "modules": modules, "time_s": time.perf_counter() - t0,
              "command": "python analysis/googlenet_structure.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write_json(out / "structure.json", result)
    atomic_write_text(out / "structure.md", render(result))
    plot(result, out / "structure.png")
    print(f"wrote {out}/structure.json, structure.md, structure.png")
    return 0


def contingency_tables(result, clusters=4) -> list[str]:
    """Markdown: for each module, channels of each branch in each discovered cluster (K = clusters)."""
    lines = []
    for m in result["modules"]:
        for r in m["results"]:
            if r["clusters"] != clusters:
                continue
            lines += [f"{m['module']} (K = {clusters}, ARI {r['ari']:.3f}): channels of each branch per cluster", "",
                      "| cluster (kernel) | 1x1 | 3x3 | 5x5 | pool |", "|---|---|---|---|---|"]
            for i, (row, k) in enumerate(zip(r["contingency"], r["kernel_sizes"])):
                lines.append(f"| {i} ({k}x{k}) | " + " | ".join(map(str, row)) + " |")
            lines.append("")
    return lines


def table(result) -> list[str]:
    lines = ["| module | channels (1x1/3x3/5x5/pool) | K asked | K found | ARI with branches | "
             "shuffled null (mean ± sd) | z | p | purity | its null (mean ± sd) | p |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in result["modules"]:
        for r in m["results"]:
            z = "n/a" if r["z"] is None else f"{r['z']:.1f}"
            lines.append(f"| {m['module']} | {m['channels']} ({'/'.join(map(str, m['branch_widths']))}) | "
                         f"{r['clusters']} | {r['found_clusters']} | {r['ari']:.3f} | "
                         f"{r['null_mean']:.3f} ± {r['null_std']:.3f} | {z} | {r['p']:.4f} | "
                         + (f"{r['purity']:.3f} | {r['purity_null_mean']:.3f} ± {r['purity_null_std']:.3f} | "
                            f"{r['purity_p']:.4f} |" if "purity" in r else "n/a | n/a | n/a |"))
    return lines


def render(result) -> str:
    m = result["model"]
    lines = ["# Does a trained GoogLeNet show the structure the paper assumes?", "",
             f"googlenet_small (width x{m['width_mult']:g}, {m['num_modules']} modules) trained on "
             f"{result['dataset']}: test accuracy {100 * m['test_accuracy']:.2f} %. Each Inception module's "
             "output channels clustered by correlation; adjusted Rand index and purity (share of channels in "
             "their cluster's majority branch) against the hand-made branches, "
             f"null from {result['modules'][0]['results'][0]['permutations']} permutations of the branch labels.",
             "", *table(result), "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def plot(result, path) -> Path:
    import matplotlib.pyplot as plt

    from sparsenet.figures import save_figure  # sparsenet's figure style: Agg, its DPI

    entries = [(m["module"].replace("inception", ""), r) for m in result["modules"] for r in m["results"]]
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(entries) + 2), 5))
    xs = np.arange(len(entries))
    ax.bar(xs - 0.2, [r["ari"] for _, r in entries], width=0.4, color="#d62728", label="discovered clusters vs branches")
    ax.bar(xs + 0.2, [r["null_mean"] for _, r in entries], width=0.4, yerr=[2 * r["null_std"] for _, r in entries],
           color="#7f7f7f", capsize=3, label="shuffled branch labels (mean ± 2 sd)")
    ax.set_xticks(xs, [f"{name}\nK={r['clusters']}→{r['found_clusters']}" for name, r in entries])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("adjusted Rand index")
    ax.set_xlabel("Inception module (clusters asked → found)")
    m = result["model"]
    ax.set_title(f"Discovered clusters vs hand-made branches\n"
                 f"googlenet_small x{m['width_mult']:g}, {m['num_modules']} modules, trained on {result['dataset']}")
    for x, (_, r) in zip(xs, entries):
        ax.annotate(f"p={r['p']:.3f}", (x - 0.2, max(r["ari"], 0)), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=8)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.35 * (high - low))  # room for the legend above the bars
    ax.legend(loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
