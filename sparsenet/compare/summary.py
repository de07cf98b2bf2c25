"""summary.json's statistics: per-candidate means and intervals, and the two tests of each discovered candidate.

``summarise`` (accuracy mean and CI over seeds, mean cost, latency and time), ``matched_comparisons``
(against the hand-designed curve at matched multiply-adds) and ``paired_controls`` (a swapped
skeleton against its own unswapped one) read the result rows; failed runs count as failed seeds.
``preregistered`` runs the comparisons an experiment's ``[preregistration]`` declares, paired by seed.
The t-tests and the interpolation themselves are in :mod:`sparsenet.compare.statistics`.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from sparsenet.compare.statistics import (PAIRED_TESTS, bootstrap_ci, holm, interpolate_log, mean_ci, paired_t,
                                          verdict, welch, wilcoxon)

__all__ = ["summarise", "matched_comparisons", "paired_controls", "preregistered"]


def _by_candidate(rows):
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["candidate"], []).append(r)
    return groups


def summarise(rows: list[dict[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per candidate: n seeds, accuracy mean and CI, mean params/MACs/latency/train time."""
    out = []
    for name, all_rs in _by_candidate(rows).items():
        rs = [r for r in all_rs if r.get("accuracy") is not None]     # failed (diverged) runs have none
        failed = sorted(r["seed"] for r in all_rs if r.get("accuracy") is None)
        acc = mean_ci([r["accuracy"] for r in rs], confidence) if rs else None
        lat = {b: [r["latency_ms"][b] for r in rs if r.get("latency_ms")] for b in ("b1", "b64")}
        costed = [r for r in all_rs if r.get("macs") is not None]
        out.append({
            "candidate": name, "group": all_rs[0]["group"], "kind": all_rs[0]["kind"], "role": all_rs[0]["role"],
            "width_mult": all_rs[0].get("width_mult"), "compare_to": all_rs[0].get("compare_to"),
            "seeds": sorted(r["seed"] for r in rs), "n": len(rs), "failed_seeds": failed,
            "failed_errors": [r.get("error") for r in all_rs if r.get("accuracy") is None],
            "accuracy_mean": acc.mean if acc else None, "accuracy_ci_low": acc.low if acc else None,
            "accuracy_ci_high": acc.high if acc else None, "accuracy_ci_half": acc.half_width if acc else None,
            "accuracy_std": acc.std if acc else None,
            "params": statistics.mean(r["params"] for r in costed) if costed else None,
            "macs": statistics.mean(r["macs"] for r in costed) if costed else None,
            "macs_min": min(r["macs"] for r in costed) if costed else None,
            "macs_max": max(r["macs"] for r in costed) if costed else None,
            "latency_b1_ms": statistics.mean(lat["b1"]) if lat["b1"] else None,
            "latency_b64_ms": statistics.mean(lat["b64"]) if lat["b64"] else None,
            "train_time_s": statistics.mean(r["train_time_s"] for r in rs) if rs else None,
            "pipeline_time_s": statistics.mean(r.get("pipeline_time_s") or 0.0 for r in all_rs),
        })
    return out


def _curve_by_seed(rows, group: str) -> dict[int, tuple[list[float], list[float], list[str]]]:
    curve: dict[int, tuple[list[float], list[float], list[str]]] = {}
    for r in rows:
        if r["role"] == "hand" and r["group"] == group and r.get("accuracy") is not None:
            xs, ys, names = curve.setdefault(r["seed"], ([], [], []))
            xs.append(r["macs"])
            ys.append(r["accuracy"])
            names.append(r["candidate"])
    return curve


def matched_comparisons(rows: list[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Each discovered candidate against its hand-designed curve at matched multiply-adds.

    Per seed k: the curve of seed k (googlenet_small's accuracy at each measured width, against
    its multiply-adds) is interpolated linearly in log(MACs) at the candidate's MACs of seed k;
    the candidate's accuracies are compared with these matched values by Welch's t-test. Seeds
    for which the curve lacks a width (a run still missing) are left out. A candidate whose MACs
    lie outside the measured widths' range is flagged ``extrapolated`` (the end segment of the
    curve is extended there: treat that comparison with suspicion).
    """
    out = []
    for name, rs in _by_candidate(rows).items():
        if rs[0]["role"] != "discovered" or not rs[0].get("compare_to"):
            continue
        group = rs[0]["compare_to"]
        curve = _curve_by_seed(rows, group)
        widths = {r["candidate"]: r["macs"] for r in rows if r["role"] == "hand" and r["group"] == group
                  and r.get("macs") is not None}   # every width of the curve, whether or not a seed failed
        names = sorted(widths, key=widths.get)
        cand, matched, extrapolated, seeds, rng, outside, skipped = [], [], False, [], None, 0.0, []
        for r in sorted(rs, key=lambda r: r["seed"]):
            if r.get("accuracy") is None:
                skipped.append(f"seed {r['seed']}: {name} {r.get('status', 'failed')}")
                continue
            c = curve.get(r["seed"])
            if len(names) < 2:
                skipped.append(f"seed {r['seed']}: the {group} curve has fewer than two widths")
                continue
            # the two widths whose segment the candidate's MACs fall on (or the end segment beyond them)
            i = int(np.clip(np.searchsorted([widths[n] for n in names], r["macs"]) - 1, 0, len(names) - 2))
            missing = [n for n in names[i:i + 2] if c is None or n not in c[2]]
            if missing:
                skipped.append(f"seed {r['seed']}: {', '.join(missing)} missing (failed or not run yet)")
                continue
            interp = interpolate_log(c[0], c[1], r["macs"])
            cand.append(r["accuracy"])
            matched.append(interp.value)
            seeds.append(r["seed"])
            extrapolated = extrapolated or interp.extrapolated
            outside = max(outside, interp.outside)
            rng = (widths[names[0]], widths[names[-1]])
        costed = [r["macs"] for r in rs if r.get("macs") is not None]
        entry = {"candidate": name, "compare_to": group, "kind": rs[0]["kind"], "seeds": seeds, "n": len(seeds),
                 "macs": statistics.mean(costed) if costed else None, "curve_macs_range": list(rng) if rng else None,
                 "extrapolated": extrapolated, "outside_by": outside, "skipped": skipped}
        if len(seeds) == 0:
            entry.update({"verdict": "n/a", "reason": "; ".join(skipped) or f"no seed with the {group} curve"})
            out.append(entry)
            continue
        w = welch(cand, matched)
        a, m = mean_ci(cand), mean_ci(matched)
        entry.update({"accuracy_mean": a.mean, "accuracy_ci_half": a.half_width,
                      "matched_hand_mean": m.mean, "matched_hand_ci_half": m.half_width,
                      "diff": w.diff, "t": w.t, "df": w.df, "p": w.p, "alpha": alpha, "verdict": verdict(w, alpha)})
        out.append(entry)
    return out


def paired_controls(rows: list[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Each swapped skeleton against its own unswapped skeleton (same seeds), by Welch's test."""
    by = _by_candidate(rows)
    out = []
    for name, rs in by.items():
        if rs[0]["role"] != "discovered" or rs[0].get("control") not in by:
            continue
        control = rs[0]["control"]
        ctrl = {r["seed"]: r for r in by[control] if r.get("accuracy") is not None}
        rs = [r for r in rs if r.get("accuracy") is not None]
        seeds = sorted(r["seed"] for r in rs if r["seed"] in ctrl)
        a = [r["accuracy"] for r in sorted(rs, key=lambda r: r["seed"]) if r["seed"] in ctrl]
        b = [ctrl[s]["accuracy"] for s in seeds]
        w = welch(a, b) if seeds else None
        out.append({"candidate": name, "control": control, "seeds": seeds, "n": len(seeds),
                    "macs": statistics.mean(r["macs"] for r in rs) if rs else None,
                    "control_macs": statistics.mean(ctrl[s]["macs"] for s in seeds) if seeds else None,
                    "diff": w.diff if w else None, "t": w.t if w else None, "df": w.df if w else None,
                    "p": w.p if w else None, "verdict": verdict(w, alpha) if w else "n/a"})
    return out


def _decision(p: float, diff: float, alpha: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return ("better" if diff > 0 else "worse") if p < alpha else "no significant difference"


def _paired(rows, comparison: str, prereg: dict[str, Any]) -> dict[str, Any]:
    """One declared comparison "A vs B": both tests and the bootstrap interval over the seeds both completed."""
    a_name, b_name = comparison.split(" vs ")
    acc = {(r["candidate"], r["seed"]): r["accuracy"] for r in rows if r.get("accuracy") is not None}
    seeds = sorted({s for (c, s) in acc if c == a_name} & {s for (c, s) in acc if c == b_name})
    all_seeds = sorted({r["seed"] for r in rows if r["candidate"] in (a_name, b_name)})
    entry = {"comparison": comparison, "a": a_name, "b": b_name, "test": prereg["test"], "seeds": seeds,
             "n": len(seeds), "left_out_seeds": [s for s in all_seeds if s not in seeds]}
    if len(seeds) < 2:
        return {**entry, "diff": None, "p": None, "decision": "n/a",
                "reason": f"{len(seeds)} seed(s) with both runs; a paired test needs at least 2"}
    a, b = [acc[(a_name, s)] for s in seeds], [acc[(b_name, s)] for s in seeds]
    if a == b:   # e.g. an ablation that built the very same network at every seed
        entry["identical"] = True
    t, w = paired_t(a, b), wilcoxon(a, b)
    low, high = bootstrap_ci(a, b, confidence=prereg["confidence"], resamples=prereg["bootstrap_resamples"],
                             seed=prereg["bootstrap_seed"])
    p = PAIRED_TESTS[prereg["test"]](a, b).p
    return {**entry, "a_mean": float(np.mean(a)), "b_mean": float(np.mean(b)), "diff": t.diff,
            "diff_ci_low": low, "diff_ci_high": high, "confidence": prereg["confidence"],
            "t": t.statistic, "p_t": t.p, "wilcoxon_w": w.statistic, "p_wilcoxon": w.p, "p": p}


IDENTICAL = "no difference: the same accuracy at every paired seed (no test needed or possible)"


def _decide(entry: dict[str, Any], p, alpha: float, missing: int) -> str:
    if missing:   # a pre-registered test is decided once, on the whole design
        return f"not decided (interim: {missing} run(s) of the design have no record yet)"
    if entry.get("identical"):
        return IDENTICAL
    return _decision(p, entry["diff"], alpha) if entry["p"] is not None else "n/a"


def preregistered(rows: list[dict[str, Any]], prereg: dict[str, Any], missing: int = 0) -> dict[str, Any]:
    """The declared primary comparison (its test at alpha decides) and the secondaries (Holm-adjusted p).

    Pairs are the seeds at which both arms finished (a seed fixes data order and initialisation);
    the difference is A - B in test accuracy (of the epoch chosen on validation, when there is one).
    With ``missing`` runs of the design still unrecorded the statistics are shown but nothing is decided.
    """
    alpha = prereg["alpha"]
    primary = _paired(rows, prereg["primary"], prereg)
    primary["decision"] = _decide(primary, primary["p"], alpha, missing)
    secondaries = [_paired(rows, c, prereg) for c in prereg["secondaries"]]
    adjusted = holm([math.nan if s["p"] is None else s["p"] for s in secondaries])
    for s, p in zip(secondaries, adjusted):
        s["p_holm"] = None if math.isnan(p) else p
        s["decision"] = _decide(s, p, alpha, missing)
    return {"hypothesis": prereg["hypothesis"], "test": prereg["test"], "alpha": alpha, "primary": primary,
            "secondaries": secondaries, "correction": "Holm over the secondaries", "interim": bool(missing)}
