"""The primary experiment's section of docs/results.md, from its committed files alone.

    python analysis/primary_results.py docs/results/primary --out docs/results/primary/page.md

Reads ``DIR/config.json``, ``DIR/records/`` and ``DIR/sweep.json`` (what is committed; no run
directory, no checkpoint) and writes a markdown section: the pre-registered question and its
answer (effect with its bootstrap CI, p, the decision), the Holm-adjusted secondaries, the
learning rates chosen on validation, the per-candidate table, the per-seed table with the
kernel sizes each growth discovered, and the figures (accuracy against multiply-adds, learning
curves on validation) beside the page.  With runs still missing it says so and how many.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any


def sweep_lines(sweep: dict[str, Any]) -> list[str]:
    lines = ["| family | " + " | ".join(f"lr {lr:g}" for lr in sweep["lrs"]) + " | chosen |",
             "|---|" + "---|" * (len(sweep["lrs"]) + 1)]
    for family, f in sweep["families"].items():
        cells = []
        for lr in sweep["lrs"]:
            got = f["lrs"].get(f"{lr:g}") or f["lrs"].get(str(lr))
            cells.append("not run" if got is None else f"{100 * got['val_accuracy_mean']:.2f}")
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {sweep['chosen'][family]:g} |")
    return lines


def seed_lines(rows: list[dict[str, Any]], names: list[str], seeds: list[int]) -> list[str]:
    by = {(r["candidate"], r["seed"]): r for r in rows}
    lines = ["| seed | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for s in seeds:
        cells = []
        for n in names:
            r = by.get((n, s))
            if r is None:
                cells.append("(running)")
            elif r.get("accuracy") is None:
                cells.append(f"failed: {r.get('error', '')}")
            else:
                cell = f"{100 * r['accuracy']:.2f} ({r['macs'] / 1e6:.2f}M, epoch {r.get('best_epoch')})"
                if r.get("grown_kernel_sizes"):
                    cell += " k " + " / ".join(",".join(map(str, ks)) for ks in r["grown_kernel_sizes"])
                cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def page(directory: Path, figures: Path, link_prefix: str) -> list[str]:
    from sparsenet.compare.plots import plot_curves, plot_pareto, styles
    from sparsenet.compare.records import load_recorded, recompute
    from sparsenet.compare.report import candidate_table, method_notes, verdict_lines
    from sparsenet.compare.results import training_histories

    loaded = load_recorded(directory)   # read once: the verdict and the tables come from the same rows
    experiment, stored, rows, missing = loaded
    result = recompute(directory, loaded)
    total = len(experiment.points) * len(experiment.seeds)
    lines = [f"Computed {date.today().isoformat()} from the committed records alone by", "",
             f"    python analysis/primary_results.py {directory}", "",
             f"and the verdict alone by `sparsenet compare --summarise {directory}`.", ""]
    if missing:
        lines += [f"**Incomplete: {total - len(missing)} of {total} runs have a record**; "
                  f"{len(missing)} are still to run (`sparsenet compare --config {stored.get('source')} "
                  f"--out {directory}` resumes). Every number below is of the runs recorded so far and "
                  "the verdict is not final.", ""]
    lines += ["### The pre-registered question and its answer", "", *verdict_lines(result), ""]
    sweep_path = directory / "sweep.json"
    if sweep_path.exists():
        lines += ["### Learning rates (validation accuracy %, mean over the sweep seeds)", "",
                  *sweep_lines(json.loads(sweep_path.read_text())), ""]
    cands = [c for c in result["candidates"] if c.get("accuracy_mean") is not None]
    lines += ["### Candidates", "", *candidate_table(result["candidates"]), ""]
    names = [p.name for p in experiment.points]
    lines += ["### Per seed", "", "Test accuracy % at the epoch chosen on validation (multiply-adds, that epoch); "
              "for grown arms, the kernel sizes of each grown module's branches.", "",
              *seed_lines(rows, names, list(experiment.seeds)), ""]
    if cands:
        figures.mkdir(parents=True, exist_ok=True)
        pareto = plot_pareto(cands, figures / "primary_pareto.png", experiment.name)
        curves, metric = training_histories(directory, rows)
        roles = {c["candidate"]: (c["role"], c["kind"]) for c in cands}
        drawn = plot_curves(curves, roles, figures / "primary_curves.png", experiment.name, styles(cands), metric)
        lines += ["### Figures", "", f"![Accuracy against multiply-adds]({link_prefix}{pareto.name})", "",
                  f"![Learning curves]({link_prefix}{drawn.name})", ""]
    lines += [*method_notes({"dataset": {"validation": experiment.data.get("validation")},
                             "preregistered": result.get("preregistered")}), ""]
    return lines


def main(argv=None) -> int:
    from sparsenet.errors import SparsenetError
    from sparsenet.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="a compare output directory holding config.json and records/")
    p.add_argument("--out", required=True, help="the markdown file to write")
    p.add_argument("--figures", help="where the figures go (default: beside --out)")
    p.add_argument("--link-prefix", default="", help="prefix of the figure links in the markdown")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        lines = page(Path(args.directory), Path(args.figures) if args.figures else out.parent, args.link_prefix)
    except SparsenetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(out, "\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
