"""report.md: the comparison for people, rendered from summary.json and the result rows.

Also the tables and number formats that analysis/make_results.py reuses for docs/results.md.
"""

from __future__ import annotations

import math
from sparsenet.numbers import fixed, human
from typing import Any

__all__ = ["render_report", "verdict_lines", "candidate_table", "matched_table", "control_table", "METHOD_NOTES", "method_notes", "accuracy_ci_text",
           "human"]


def accuracy_ci_text(mean, half) -> str:
    """0.9123, 0.0045 -> '91.23 ± 0.45': accuracy and CI half-width in percent (no interval when
    ``half`` is None or NaN, as with one seed; 'n/a' without a mean)."""
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if half is None or (isinstance(half, float) and math.isnan(half))
                                  else f" ± {100 * half:.2f}")
def candidate_table(candidates: list[dict[str, Any]]) -> list[str]:
    lines = ["| candidate | role | seeds | test accuracy % (mean ± 95% CI) | params | mult-adds | "
             "latency b1 (ms per batch of 1) | latency b64 (ms per batch of 64) | train time (s, mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        seeds = f"{c['n']}" + (f" (+{len(c['failed_seeds'])} failed)" if c.get("failed_seeds") else "")
        acc = accuracy_ci_text(c["accuracy_mean"], c["accuracy_ci_half"])
        lines.append(f"| {c['candidate']} | {c['role']} | {seeds} | {acc} "
                     f"| {human(c['params'])} | "
                     f"{human(c['macs'])} | {fixed(c['latency_b1_ms'], 2)} | "
                     f"{fixed(c['latency_b64_ms'], 1)} | {fixed(c['train_time_s'], 0)} |")
    return lines


def matched_table(matched: list[dict[str, Any]]) -> list[str]:
    lines = ["| candidate | against | seeds | mult-adds | accuracy % | GoogLeNet curve at same mult-adds % | "
             "difference (pp) | Welch t | df | p | verdict | range |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in matched:
        if m.get("verdict") == "n/a" and "diff" not in m:
            lines.append(f"| {m['candidate']} | {m['compare_to']} | 0 | {human(m['macs'] or None)} | | | | | | | n/a | "
                         f"{m.get('reason', '')} |")
            continue
        rng = m.get("curve_macs_range")
        where = ("**outside the measured range "
                 f"{human(rng[0])}-{human(rng[1])} (by {100 * m.get('outside_by', 0):.2g}%): extrapolated**"
                 if m["extrapolated"] else
                 f"inside {human(rng[0])}-{human(rng[1])}") if rng else ""
        lines.append(f"| {m['candidate']} | {m['compare_to']} | {m['n']} | {human(m['macs'])} | "
                     f"{accuracy_ci_text(m['accuracy_mean'], m.get('accuracy_ci_half'))} | "
                     f"{accuracy_ci_text(m['matched_hand_mean'], m.get('matched_hand_ci_half'))} | "
                     f"{fixed(None if m['diff'] is None else 100 * m['diff'], 2)} | {fixed(m['t'], 2)} | {fixed(m['df'], 1)} | "
                     f"{fixed(m['p'], 3)} | {m['verdict']} | {where} |")
    return lines


def control_table(controls: list[dict[str, Any]]) -> list[str]:
    lines = ["| swapped | its skeleton | seeds | mult-adds (swapped / skeleton) | difference (pp) | Welch t | p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for c in controls:
        lines.append(f"| {c['candidate']} | {c['control']} | {c['n']} | {human(c['macs'] or None)} / "
                     f"{human(c['control_macs'] or None)} | "
                     f"{fixed(None if c['diff'] is None else 100 * c['diff'], 2)} | {fixed(c['t'], 2)} | {fixed(c['p'], 3)} | "
                     f"{c['verdict']} |")
    return lines


_ACCURACY_LAST = ("* Accuracy is top-1 on the test split after the last epoch; the interval is the 95% Student-t "
                  "confidence interval of the mean over seeds (mean ± t(0.975, n-1)·s/√n; none with one seed).")
_ACCURACY_SELECTED = ("* Accuracy is top-1 on the test split at the epoch chosen on validation (the best validation "
                      "accuracy; the test set plays no part in the choice); the interval is the 95% Student-t "
                      "confidence interval of the mean over seeds (mean ± t(0.975, n-1)·s/√n; none with one seed).")
_COST = [
    "* Mult-adds: multiply-adds of convolutions and linear layers for one image (batch 1, eval mode), "
    "measured with torch's FlopCounterMode on the trained network.",
    "* Latency: CPU, eval mode, measured after all training, every model timed in the same process, "
    "interleaved, same thread count; median over repeats. b1 = ms per batch of 1 image, "
    "b64 = ms per batch of 64 images.",
]
_MATCHED = ("* Matched mult-adds: for each seed, GoogLeNet's accuracies at the measured width multipliers "
            "are interpolated linearly in log(mult-adds) at the candidate's mult-adds of that seed; the "
            "candidate's per-seed accuracies are compared with these matched values by Welch's t-test "
            "(scipy.stats.ttest_ind, equal_var=False, two-sided). Verdict at α = 0.05: better / worse when "
            "significant, tie otherwise (with few seeds a tie means 'no detectable difference', not 'equal'). "
            "A candidate outside the measured mult-add range is flagged: the curve's end segment was extended.")
_CONTROL = ("* Control (skeleton@<width>x<modules>): the unswapped skeleton the swaps start from "
            "(googlenet_small written as a spec), trained with the same seeds; swapped vs control isolates "
            "the one module that changed.")
_PAIRED = ("* Pre-registered comparisons: the arms pair by seed (a seed fixes initialisation and data order "
           "in every arm); a 'matched' arm is trained at the width whose measured multiply-adds are nearest "
           "to its reference arm's at the same seed (no interpolation). Each comparison reports the mean "
           "paired difference A - B with a seeded bootstrap CI, the paired t-test (the decision unless the "
           "configuration names Wilcoxon) and the Wilcoxon signed-rank test; secondaries are Holm-adjusted.")

#: Every note, as analysis/make_results.py's older pages use them.
METHOD_NOTES = ["How to read this:", "", _ACCURACY_LAST, *_COST, _MATCHED, _CONTROL]


def method_notes(summary: dict[str, Any]) -> list[str]:
    """The notes that describe this summary's experiment: how accuracy was chosen, and only the
    comparisons it holds."""
    selected = bool((summary.get("dataset") or {}).get("validation"))
    return (["How to read this:", "", _ACCURACY_SELECTED if selected else _ACCURACY_LAST, *_COST]
            + ([_PAIRED] if summary.get("preregistered") else [])
            + ([_MATCHED] if summary.get("matched") else [])
            + ([_CONTROL] if summary.get("controls") else []))


def _g(x, spec: str = ".4g") -> str:
    """A statistic or 'n/a' (NaN is stored as null in JSON)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _comparison_line(c: dict[str, Any], adjusted: bool) -> str:
    if c.get("diff") is None:
        return f"* {c['comparison']}: not testable ({c.get('reason', 'no pairs')}): n/a"
    pct = f"{100 * c.get('confidence', 0.95):g}%"
    pp = lambda x: "n/a" if x is None else f"{100 * x:+.2f}"  # noqa: E731
    p = f"{c['test']} p = {_g(c['p'])}" + (f", Holm-adjusted p = {_g(c.get('p_holm'))}" if adjusted else "")
    return (f"* {c['comparison']} ({c['n']} seeds paired): difference {pp(c['diff'])} pp "
            f"(bootstrap {pct} CI {pp(c['diff_ci_low'])} to {pp(c['diff_ci_high'])} pp); "
            f"paired t = {_g(c['t'], '.3f')} (p = {_g(c['p_t'])}), Wilcoxon W = {_g(c['wilcoxon_w'], 'g')} "
            f"(p = {_g(c['p_wilcoxon'])}); decided by {p}: **{c['decision']}**")


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The pre-registered question and answer (``result['preregistered']`` from summary.preregistered)."""
    pre = result.get("preregistered")
    if not pre:
        return [f"{result.get('experiment', 'this experiment')}: no [preregistration] declared, no verdict"]
    lines = [f"Hypothesis: {pre['hypothesis']}", f"Test: {pre['test']} (paired by seed), alpha {pre['alpha']:g}",
             "Primary:", _comparison_line(pre["primary"], False)]
    if pre["secondaries"]:
        lines += [f"Secondary ({pre['correction']}):"] + [_comparison_line(c, True) for c in pre["secondaries"]]
    if result.get("sweep"):
        lines.append("Learning rates chosen on validation: "
                     + ", ".join(f"{k} {v:g}" for k, v in result["sweep"].items()))
    if result.get("missing"):
        lines.append(f"Runs without a record (not counted): {missing_runs(result['missing'])}")
    return lines


def _ranges(seeds: list[int]) -> str:
    """1, 2, 3, 5 -> '1-3, 5'."""
    out, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            out.append(str(start) if start == s else f"{start}-{s}")
            start = None
    return ", ".join(out)


def missing_runs(missing: list[str]) -> str:
    """``['a/seed1', 'a/seed2', 'b/seed1']`` -> 'a seeds 1-2; b seed 1' (a long grid stays one readable line)."""
    by: dict[str, list[int]] = {}
    for m in missing:
        name, _, seed = m.rpartition("/seed")
        by.setdefault(name, []).append(int(seed))
    return "; ".join(f"{name} seed{'s' if len(s) > 1 else ''} {_ranges(sorted(s))}" for name, s in by.items())


def render_report(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    d, tr = summary["dataset"], summary["train"]
    lines = [f"# sparsenet compare: {summary['experiment']}", ""]
    if summary.get("description"):
        lines += [summary["description"], ""]
    if not summary.get("complete"):
        lines += ["**Partial results**: training is still running (or was interrupted); latency is measured "
                  "at the end. Rerun the same command to resume.", ""]
    recipe = ", ".join(f"{k} {v}" for k, v in tr.items())
    lines += [f"* Command: `{summary.get('command', '')}`",
              f"* Configuration: `{summary['source']}` (stored as config.json); started {summary.get('started_at')}, "
              f"written {summary.get('written_at')} (UTC)",
              f"* Dataset: {d['name']} ({d['source']}), {d['train']:,} train / "
              + (f"{d['validation']:,} validation (carved from training) / " if d.get("validation") else "")
              + f"{d['test']:,} test images, "
              f"input {'x'.join(map(str, d['input_shape']))}, split seed {d['split_seed']}",
              f"* Recipe (every candidate): {recipe}; seeds {summary['seeds']}; {summary['threads']} training thread(s)",
              f"* sparsenet {summary['sparsenet_version']}, torch {summary['torch']}"]
    if summary.get("train_cost_s") is not None:
        lines.append(f"* Cost: {summary['train_cost_s'] / 60:.1f} min of training (sum over all runs, "
                     "including skeleton training, discovery and growth)")
    lat = summary.get("latency") or {}
    if lat.get("settings"):
        s = lat["settings"]
        lines.append(f"* Latency phase: {s['threads']} thread(s), {s['warmup']} warm-up pass(es), median of "
                     f"{s['repeats']} repeats, {lat.get('time_s', 0):.0f} s")
    if summary.get("preregistered"):
        lines += ["", "## Pre-registered comparisons", ""] + verdict_lines(summary)
    lines += ["", "## Candidates", ""] + candidate_table(summary["candidates"])
    if summary.get("matched"):
        lines += ["", "## Discovered vs hand-designed GoogLeNet at matched multiply-adds", ""]
        lines += matched_table(summary["matched"])
    if summary.get("controls"):
        lines += ["", "## Swapped module vs its own skeleton (same seeds)", ""] + control_table(summary["controls"])
    failed = [r for r in rows if r.get("accuracy") is None]
    if failed:
        lines += ["", "## Failed runs", "",
                  "These runs produced no trained network (the loss became NaN or infinite). They are kept in "
                  "results.json with status and error, left out of the means, and a seed is left out of a "
                  "matched comparison when the candidate or a GoogLeNet width it is interpolated between failed "
                  "at that seed. They are not retried on a rerun (same seed and recipe, same divergence).", ""]
        lines += [f"* {r['candidate']} seed {r['seed']}: {r.get('error')}" for r in failed]
    skipped = [f"* {m['candidate']}: {s}" for m in summary.get("matched", []) for s in m.get("skipped", [])]
    if skipped:
        lines += ["", "Seeds left out of the matched comparisons:", "", *skipped]
    figs = summary.get("figures") or {}
    if figs:
        lines += ["", "## Figures", ""]
        for key, title in (("pareto", "Accuracy against multiply-adds"), ("latency", "Accuracy against CPU latency"),
                           ("curves", "Learning curves (mean over seeds)")):
            if key in figs:
                lines += [f"![{title}]({figs[key]})", ""]
    lines += ["", *method_notes(summary), "", "Per-run numbers: results.csv / results.json and records/<candidate>/"
              "seed<k>.json (with the per-epoch history); checkpoints and metrics.json: runs/<candidate>/seed<k>/.", ""]
    return "\n".join(lines)
