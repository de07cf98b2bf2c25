"""Turn comparison directories (and the GoogLeNet-structure run) into docs/results.md and its figures.

    python analysis/make_results.py runs/compare-mnist5k runs/compare-fashion \\
        --structure runs/googlenet-structure --out docs

For each comparison directory (written by ``sparsenet compare``) this writes the figures
``OUT/figures/results_<experiment>_{pareto,latency,curves}.png`` and a section of
``OUT/results.md`` with the command, the date, the dataset and recipe, the cost, the table of
candidates (mean and 95% CI over seeds), the matched-multiply-adds Welch tests against the
GoogLeNet curve and the swapped-vs-skeleton tests, and one sentence per discovered candidate
saying whether it wins, ties or loses.  Everything on the page comes from the directories, so
rerunning the script reproduces it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analysis"))


CAVEATS = [
    "* Short training on a CPU: every network gets the same few epochs, so these are accuracies of "
    "equally (under-)trained networks, not of networks trained to convergence; rankings at convergence "
    "may differ. No batch norm anywhere (GoogLeNet 2014 style), so the narrowest networks learn slowly.",
    "* Few seeds: with 3 seeds Welch's test only detects large differences; 'tie' means no detectable "
    "difference at this sample size, not equality. The 95% intervals show how large a difference could hide.",
    "* Interpolation: the GoogLeNet curve is a straight line in log(mult-adds) between measured widths. If "
    "accuracy is concave in log(mult-adds), that line lies below the real curve between widths far apart, "
    "which favours a candidate placed there; fashion-mnist-matched measures GoogLeNet right at the grown "
    "network's cost to check the one significant result this way.",
    "* Matched cost: a swapped module is fitted to the replaced module's multiply-adds within 2 %; the next "
    "module then reads a different number of channels, so the network's total changes slightly. The "
    "comparison uses each network's measured total and the GoogLeNet curve interpolated there.",
    "* Cluster connectivity is realised with grouped convolutions; clusters of unequal shape are padded "
    "(zero, masked weights), so such a network computes up to 25 % more multiply-adds than its "
    "connections need. The measured totals used here include that padding (e.g. swap-3b-k4 above the skeleton).",
    "* Discovery: channels are clustered on the input of the replaced module in the trained skeleton "
    "(1,000 training images, every spatial position a sample); 'auto' picks K by the eigengap and may "
    "find one cluster, which makes the discovered module a single branch.",
    "* Latency is measured on a shared machine: other jobs were running, so absolute numbers are noisy; "
    "all models of one experiment were timed together, interleaved, so their ratios are the meaningful part.",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="comparison directories (sparsenet compare --out DIR)")
    p.add_argument("--structure", default=None, help="directory of analysis/googlenet_structure.py")
    p.add_argument("--out", default="docs", help="docs directory (writes results.md and figures/results_*.png)")
    p.add_argument("--notes", default=None, help="optional Markdown file inserted after the summary (by hand)")
    p.add_argument("--plan", default=None,
                   help="optional Markdown file appended at the end (the primary experiment's plan, before it has run)")
    return p.parse_args(argv)


def _pp(x) -> str:
    return f"{100 * x:+.2f} pp"


def _acc(mean, half) -> str:
    from sparsenet.compare.report import accuracy_ci_text

    return f"{accuracy_ci_text(mean, half)} %"


def describe(m: dict, candidates: dict[str, dict]) -> str:
    """One sentence for a matched comparison."""
    c = candidates[m["candidate"]]
    what = {"skeleton": "discovered module swapped into the GoogLeNet skeleton",
            "grown": "network grown from discovered modules"}.get(m["kind"], m["kind"])
    left_out = (" Left out: " + "; ".join(m["skipped"]) + ".") if m.get("skipped") else ""
    if "diff" not in m:
        return f"* **{m['candidate']}** ({what}): not tested ({m.get('reason', 'no complete seed')})."
    word = {"better": "**wins**", "worse": "**loses**", "tie": "**ties** (no significant difference)",
            "n/a": "cannot be tested"}[m["verdict"]]
    extra = (f" Its mult-adds lie outside the measured GoogLeNet range (by {100 * m.get('outside_by', 0):.2g} %), "
             "so the curve was extrapolated: treat this one with suspicion." if m["extrapolated"] else "")
    if m.get("p") is None:   # fewer than two seeds on a side, or no spread: no test
        return (f"* **{m['candidate']}** ({what}): {m['n']} seed(s) comparable, difference {_pp(m['diff'])}; "
                f"too few to test.{left_out}")
    return (f"* **{m['candidate']}** ({what}, {c['macs'] / 1e6:.2f}M mult-adds, {m['n']} seeds) {word}: "
            f"{_acc(m['accuracy_mean'], m.get('accuracy_ci_half'))} against "
            f"{_acc(m['matched_hand_mean'], m.get('matched_hand_ci_half'))} for GoogLeNet interpolated to the same "
            f"mult-adds, difference {_pp(m['diff'])}, Welch t = {m['t']:.2f}, p = {m['p']:.3f}.{extra}{left_out}")


def section(directory: Path, out: Path) -> tuple[list[str], tuple[str, str, list[dict]]]:
    from sparsenet.compare.report import candidate_table, control_table, matched_table
    from sparsenet.compare.results import read_results, training_histories
    from sparsenet.compare.plots import plot_all

    rows, summary = read_results(directory)
    if not summary.get("written_at"):
        from datetime import datetime, timezone

        stamp = (directory / "summary.json").stat().st_mtime
        summary["written_at"] = datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")
    tag = summary["experiment"]
    figures = plot_all(rows, summary, out / "figures", curves=training_histories(directory, rows),
                       prefix=f"results_{tag}_")
    d, tr = summary["dataset"], summary["train"]
    cands = {c["candidate"]: c for c in summary["candidates"]}
    seeds_done = sorted({r["seed"] for r in rows})
    complete = summary.get("complete") and all(c["n"] + len(c.get("failed_seeds", [])) == len(summary["seeds"])
                                               for c in summary["candidates"])
    n_failed = sum(len(c.get("failed_seeds", [])) for c in summary["candidates"])
    lines = [f"## {tag}" + ("" if tag == d["name"] else f": {d['name']}"), ""]
    if summary.get("description"):
        lines += [summary["description"], ""]
    lines += [f"* Command: `{summary.get('command') or 'sparsenet compare --config ' + summary['source'] + ' --out ' + str(directory)}`",
              f"* Date: {(summary.get('written_at') or '')[:10]} (results written {summary.get('written_at')} UTC)",
              f"* Status: {'complete' if complete else 'PARTIAL'}: seeds {seeds_done} of {summary['seeds']}"
              + (f", {n_failed} run(s) failed (diverged; listed below)" if n_failed else "") + " "
              + ("" if complete else "(rerun the command above to resume; finished runs are reused)"),
              f"* Data: {d['name']}, {d['train']:,} train / {d['test']:,} test images of "
              f"{'x'.join(map(str, d['input_shape']))}, split seed {d['split_seed']} (the same split for every run)",
              f"* Recipe (every candidate, from scratch): " + ", ".join(f"{k} {v}" for k, v in tr.items())
              + f"; {summary['threads']} torch thread(s)"]
    if summary.get("train_cost_s") is not None:
        minutes = summary["train_cost_s"] / 60
        lines.append(f"* Cost: {minutes:.{0 if minutes >= 10 else 1}f} minutes of training (wall-clock, one torch thread each, "
                     "summed over runs, including skeleton training, discovery and growth) on a shared 2-core CPU")
    lines += ["", "### Candidates", "", *candidate_table(summary["candidates"]), ""]
    failed = [r for r in rows if r.get("accuracy") is None]
    if failed:
        lines += ["Failed runs (no trained network; left out of the means and of the comparisons at that seed, "
                  "not retried):", ""] + [f"* {r['candidate']} seed {r['seed']}: {r.get('error')}" for r in failed] + [""]
    hand = sorted(c["macs"] for c in summary["candidates"] if c.get("role") == "hand")
    entries = []
    for m in summary.get("matched", []):
        if "diff" in m and m.get("p") is not None:
            entries.append({
                "tag": tag, "candidate": m["candidate"], "verdict": m["verdict"],
                # the same candidate, data and recipe in several experiments: the one with GoogLeNet
                # measured closest around its cost is the verdict that counts (see main)
                "key": (d["name"], json.dumps(tr, sort_keys=True), m["candidate"]),
                "bracket": curve_bracket(m["macs"], hand),
                "text": f"{m['candidate']} {m['verdict']} ({_pp(m['diff'])}, p = {m['p']:.2f}, {m['n']} seeds"
                        + (", extrapolated" if m["extrapolated"] else "") + ")"})
    status = "" if complete else f" (PARTIAL: seeds {seeds_done} so far)"
    if not complete:
        lines += ["Partial results: the experiment is still running (or was interrupted). Latency is measured "
                  "after all training, so it is missing here; seeds with every candidate finished are compared.", ""]
    if summary.get("matched"):
        lines += ["### Discovered vs GoogLeNet at matched multiply-adds", "", *matched_table(summary["matched"]), ""]
        for m in summary["matched"]:
            lines.append(describe(m, cands))
        lines.append("")
    found = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        if r["role"] == "discovered" and r.get("kernel_sizes") is not None:
            found.setdefault(r["candidate"], []).append(
                f"seed {r['seed']}: {r['clusters']} cluster(s), kernels "
                + "/".join(f"{k}x{k}" for k in r["kernel_sizes"]))
    if found:
        lines += ["What the discovery found in the skeleton (clusters of the replaced module's input; the module is "
                  "built from them, see runs/<candidate>/seed<k>/swap.json and discovery/):", ""]
        lines += [f"* {name}: " + "; ".join(items) for name, items in found.items()] + [""]
    if summary.get("controls"):
        lines += ["### Swapped module vs its own skeleton (same seeds)", "",
                  "The skeleton is googlenet_small written as a spec and trained with the same seed; the swapped "
                  "network differs from it in one module only, at (within 2 %) that module's multiply-adds.", "",
                  *control_table(summary["controls"]), ""]
    names = {"pareto": "Accuracy against multiply-adds (mean, 95% CI; GoogLeNet curve as a line)",
             "latency": "Accuracy against CPU latency (batch 1 and batch 64)",
             "curves": "Test accuracy per epoch, mean over seeds"}
    for key, path in figures.items():
        lines += [f"![{names[key]}](figures/{Path(path).name})", ""]
    return lines, (tag, status, entries)


def curve_bracket(macs: float, hand: list[float]) -> float:
    """How far apart the two GoogLeNet widths around ``macs`` are (ratio of their mult-adds; inf outside)."""
    below = [h for h in hand if h <= macs]
    above = [h for h in hand if h >= macs]
    return max(above[0] / below[-1], 1.0) if below and above else math.inf


def verdict_summary(sections: list[tuple[str, str, list[dict]]]) -> tuple[Counter, list[str]]:
    """The verdict count and one line per experiment; a comparison repeated in a later experiment
    with GoogLeNet measured closer around the candidate's cost is shown but not counted."""
    best: dict = {}
    for _, _, entries in sections:
        for e in entries:
            if e["key"] not in best or e["bracket"] < best[e["key"]]["bracket"]:
                best[e["key"]] = e
    total: Counter = Counter()
    lines = []
    for tag, status, entries in sections:
        texts = []
        for e in entries:
            if best[e["key"]] is e:
                total[e["verdict"]] += 1
                texts.append(e["text"])
            else:
                texts.append(f"{e['text']}, not counted: checked in {best[e['key']]['tag']} against GoogLeNet "
                             "measured closer to its cost")
        lines.append(f"* {tag}{status}: " + ("; ".join(texts) if texts else "no discovered candidate has a complete seed yet"))
    return total, lines


def structure_section(directory: Path, out: Path) -> list[str]:
    from googlenet_structure import contingency_tables, plot, table

    result = json.loads((directory / "structure.json").read_text())
    m = result["model"]
    (out / "figures").mkdir(parents=True, exist_ok=True)
    plot(result, out / "figures" / "results_googlenet_structure.png")
    best = [max(mod["results"], key=lambda r: r["ari"]) for mod in result["modules"]]
    significant = [r for r in best if r["p"] < 0.05]
    lines = ["## Does a trained GoogLeNet already show the structure the paper assumes?", "",
             f"* Command: `{result['command']}`",
             f"* Model: googlenet_small x{m['width_mult']:g} ({m['num_modules']} modules) trained on {result['dataset']} "
             f"for {result['settings']['epochs']} epochs (seed {result['settings']['seed']}): test accuracy "
             f"{100 * m['test_accuracy']:.2f} %",
             f"* Each Inception module's output ({result['settings']['samples']} training images, every position a "
             "sample) clustered by correlation (|Pearson r|, spectral); adjusted Rand index (ARI) between the "
             "clusters and the hand-made branches (1x1, 3x3, 5x5, pool projection); null: the branch labels "
             f"permuted {result['modules'][0]['results'][0]['permutations']} times.", "",
             *table(result), "",
             f"![ARI of discovered clusters against the branches](figures/results_googlenet_structure.png)", "",
             *contingency_tables(result),
             f"In {len(significant)} of {len(best)} modules the best agreement is above the shuffled null at p < 0.05; "
             f"the largest ARI is {max(r['ari'] for r in best):.3f} (1 would be the branches exactly, 0 chance). "
             "One trained model (one seed, one width): a first look, not a population estimate.", ""]
    return lines


def main(argv=None) -> int:
    from datetime import date

    from sparsenet.compare.report import METHOD_NOTES
    from sparsenet.io import atomic_write_text

    args = parse_args(argv)
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    body, sections = [], []
    for d in args.dirs:
        lines, verdicts = section(Path(d), out)
        body += lines
        sections.append(verdicts)
    total, briefs = verdict_summary(sections)
    if args.structure:
        body += structure_section(Path(args.structure), out)
    cmd = "python analysis/make_results.py " + " ".join(argv if argv is not None else sys.argv[1:])
    head = ["# Results: discovered topology against hand-designed GoogLeNet", "",
            "Does topology discovered from correlation statistics match or beat hand-designed GoogLeNet at the "
            "same cost? Every number below is measured by the command written beside it on a 2-core CPU "
            "machine, with error bars over seeds; this page is generated by", "", f"    {cmd}", "",
            f"(page generated {date.today().isoformat()}).", "",
            "### Verdicts at matched multiply-adds (Welch's t-test, α = 0.05)", "",
            f"Across the experiments below: {total.get('better', 0)} discovered candidate(s) win, "
            f"{total.get('tie', 0)} tie (no detectable difference), {total.get('worse', 0)} lose"
            + (f", {total.get('n/a', 0)} untestable" if total.get('n/a') else "") + ". Difference = discovered minus "
            "GoogLeNet interpolated to the same multiply-adds, mean over seeds:", "", *briefs, ""]
    if args.notes:
        head += [Path(args.notes).read_text().rstrip(), ""]
    tail = ["## Method", "", *METHOD_NOTES, "", "## Caveats", "", *CAVEATS, ""]
    if args.plan:
        tail += [Path(args.plan).read_text().rstrip(), ""]
    atomic_write_text(out / "results.md", "\n".join(head + body + tail))
    print(f"wrote {out / 'results.md'} and figures in {out / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
