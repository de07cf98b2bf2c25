"""Which true units a step of Arora's learning misses, and at which stage it loses them.

    python analysis/arora_misses.py --instance 2 [--instance 5] [--seed 0] [--step 2] > table.md

Runs step 1 of a DEEP instance of analysis/arora_regime.py stage by stage on the observed layer
(co-firing test, cousin rule, pair sets, fixed-point merge, explained-sets test,
second pass unless ``--first-pass-only``) and names, for each unit of the true layer above (H1) that the final sets miss, the
first stage after which no candidate set has Jaccard >= 1/2 with its excitatory children (the
score's "found at all"); units the final sets reach (by the first pass or the second) are split
into partial (final best Jaccard < 0.8) and found, and a line counts those the second pass added.  Each cause
gets its units and the true edges the final one-to-one matching (score_layer) does not recover.
``--step s`` runs step s on the true layer s - 1 above the observed one instead (the oracle input
of ``arora_regime.py --oracle``), against the true layer s above it ("H1" then reads "layer s").
``stages`` repeats ``arora.graph_neighbourhoods`` stage by stage; the shared-inputs rule of
``learn_layers`` (``arora_step(inputs=...)``) does not apply to a step run on a true layer.

The last columns test the model's assumption that hidden units are nearly independent: for each
H1 unit a, ``max_b P(b on | a on)`` over the other H1 units in the true layer.  When it is >= 3/4,
b's children fire with a pair of a's children about as often as a's own children do (the pair
set's member vote is relative), so a's pair sets hold b's children too, while b's own pairs do
not name a's: the sets of a's pairs are not a fixed point of the merge.  A line per instance
gives how well the matched units are decoded (the input of step 2).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from arora_regime import _deep_networks
from sparsenet.analyser import arora
from sparsenet.analyser.arora_layers import score_layer

# Stages in pipeline order: a unit is lost at the first whose candidates all miss it (Jaccard < 1/2).
CAUSES = ("fewer than 2 excitatory children", "never fires (no excitatory parent on)",
          "no sibling pair significant", "cousin rule removed its pairs", "no pair set at J >= 1/2",
          "merge: no fixed point at J >= 1/2", "explained-sets test",
          "explained-sets re-test with the second pass's sets", "partial (1/2 <= J < 0.8)", "found (J >= 0.8)")


def best_jaccard(true_sets, candidates, n_units: int) -> np.ndarray:
    """(n_true,) best Jaccard of each true set against the candidate sets (0 without candidates)."""
    masks = np.zeros((len(candidates), n_units), dtype=bool)
    for k, members in enumerate(candidates):
        masks[k, members] = True
    out = np.zeros(len(true_sets))
    for a, t in enumerate(true_sets):
        if len(candidates) and len(t):
            inter = masks[:, t].sum(axis=1)
            out[a] = (inter / (masks.sum(axis=1) + len(t) - inter)).max()
    return out


def stages(Y: np.ndarray, second_pass: bool = True) -> dict:
    """Each stage of arora.arora_step's neighbourhoods on the binary layer Y (and seconds);
    ``second_pass=False``: the first pass alone."""
    t = time.perf_counter()
    counts = arora.cofiring_counts(Y)
    graph = arora.cofiring_graph(counts, Y.shape[0])
    pruned = arora.drop_cousin_pairs(Y, graph, counts)
    pairs, sets = arora.pair_neighbourhoods(Y, graph, pairs_of=pruned)  # third units: tested graph
    merged, merged_support = arora.merge_neighbourhoods(pairs, sets)
    first, first_support = arora.drop_explained_sets(Y, pruned, merged, merged_support)
    final = arora.with_second_pass(Y, pruned, first, first_support)[0] if second_pass else first
    return dict(graph=graph, pruned=pruned, pairs=pairs, sets=sets, merged=merged, first=first,
                final=final, seconds=time.perf_counter() - t)


def pair_set_jaccard(true_sets, pairs: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """(n_true,) best Jaccard of the sets of the related pairs inside each true set."""
    out = np.zeros(len(true_sets))
    inside_of = np.zeros(sets.shape[1], dtype=bool)
    for a, t in enumerate(true_sets):
        inside_of[:] = False
        inside_of[t] = True
        rows = inside_of[pairs[:, 0]] & inside_of[pairs[:, 1]] if len(pairs) else np.zeros(0, dtype=bool)
        if rows.any():
            s = sets[rows]
            inter = s[:, t].sum(axis=1)
            out[a] = (inter / (s.sum(axis=1) + len(t) - inter)).max()
    return out


def layers_of(net, step: int) -> tuple[np.ndarray, np.ndarray, list]:
    """(input layer, true layer above it, the true layer's neighbourhoods) of step ``step`` on its
    true input (step 1: the observed layer)."""
    return net.layers[-step], net.layers[-step - 1], net.neighbourhoods(-step - 1)


def classify(net, st: dict, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(n_true,) index into CAUSES of each unit of the true layer, and (n_true,) true edges of it left unrecovered."""
    below, above, true = layers_of(net, step)
    fires = above.sum(axis=0)
    C = below.shape[1]
    pair_j = pair_set_jaccard(true, st["pairs"], st["sets"])
    merged_j, first_j, final_j = (best_jaccard(true, st[k], C) for k in ("merged", "first", "final"))
    score = score_layer(true, st["final"])
    matched = {int(a): st["final"][j] for j, a in enumerate(score.match) if a >= 0}
    cause, lost = np.zeros(len(true), dtype=int), np.zeros(len(true), dtype=int)
    for a, t in enumerate(true):
        lost[a] = len(t) - len(np.intersect1d(t, matched.get(a, [])))
        reached = [len(t) >= 2, fires[a] > 0, st["graph"][np.ix_(t, t)].any(), st["pruned"][np.ix_(t, t)].any(),
                   pair_j[a] >= 0.5, merged_j[a] >= 0.5, first_j[a] >= 0.5]
        if not all(reached[:2]):  # inherent: no pair rule can see it, whatever the sets
            cause[a] = reached.index(False)
        elif final_j[a] >= 0.5:  # found at all, by the first pass or the second
            cause[a] = CAUSES.index("found (J >= 0.8)" if final_j[a] >= 0.8 else "partial (1/2 <= J < 0.8)")
        elif all(reached):
            cause[a] = CAUSES.index("explained-sets re-test with the second pass's sets")
        else:
            cause[a] = reached.index(False)
    return cause, lost


def partner_rate(net, step: int = 1) -> np.ndarray:
    """(n_true,) max over the other H1 units b of P(b on | a on), in the true layer (0 if a never fires)."""
    H = layers_of(net, step)[1].astype(np.float64)
    joint = H.T @ H
    np.fill_diagonal(joint, 0)
    return (joint / np.maximum(H.sum(axis=0), 1)[:, None]).max(axis=1)


def decoding_errors(net, final, score, step: int = 1) -> str:
    """Medians over the matched units, split at best Jaccard 0.8, of the decoded unit off where the true
    one is on (share of its true firings) and on where it is off (share of its decoded firings)."""
    below, above, _ = layers_of(net, step)
    j = np.flatnonzero(score.match >= 0)
    a = score.match[j]
    truth = above[:, a] > 0
    decoded = arora.decode_hidden(below, [final[k] for k in j]).astype(bool)
    missed = (~decoded & truth).sum(axis=0) / np.maximum(truth.sum(axis=0), 1)
    extra = (decoded & ~truth).sum(axis=0) / np.maximum(decoded.sum(axis=0), 1)
    good = score.best_jaccard[a] >= 0.8
    return (f"decoding of the {good.sum()} / {(~good).sum()} matched units at J >= 0.8 / below: off where on "
            f"{np.median(missed[good]):.3f} / {np.median(missed[~good]):.3f}, on where off "
            f"{np.median(extra[good]):.3f} / {np.median(extra[~good]):.3f} (medians)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=int, action="append", required=True, help="index into DEEP (repeatable)")
    parser.add_argument("--seed", type=int, action="append", help="seeds (repeatable; default 0)")
    parser.add_argument("--step", type=int, default=1, choices=(1, 2, 3),
                        help="the step, run on its true input layer (default 1: the observed layer)")
    parser.add_argument("--first-pass-only", action="store_true",
                        help="leave out the second pass (arora.second_pass_sets), as before 2026-12-08")
    args = parser.parse_args()
    print("| network | seed | cause | H1 units | share | true edges lost | share of true edges | "
          "max_b P(b on given a on), median | share >= 3/4 |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, seed, _, net in _deep_networks(True, args.instance, args.seed or [0]):
        below, _, true = layers_of(net, args.step)
        st = stages(below.astype(np.uint8), not args.first_pass_only)
        cause, lost = classify(net, st, args.step)
        partner = partner_rate(net, args.step)
        n_edges = sum(len(t) for t in true)
        by = defaultdict(list)
        for a, c in enumerate(cause):
            by[c].append(a)
        for i, c in enumerate(sorted(by)):
            units = by[c]
            print(f"| {name if i == 0 else ''} | {seed} | {CAUSES[c]} | {len(units)} | {len(units) / len(cause):.3f} | "
                  f"{lost[units].sum()} | {lost[units].sum() / n_edges:.3f} | {np.median(partner[units]):.2f} | "
                  f"{(partner[units] >= 0.75).mean():.2f} |", flush=True)
        score = score_layer(true, st["final"])
        print(f"| | {seed} | all: {len(st['final'])} sets, P {score.precision:.3f} R {score.recall:.3f} "
              f"F1 {score.f1:.3f}, {st['seconds']:.0f} s | {len(cause)} | 1 | {lost.sum()} | {lost.sum() / n_edges:.3f} | "
              f"{np.median(partner):.2f} | {(partner >= 0.75).mean():.2f} |", flush=True)
        if not args.first_pass_only:
            first = score_layer(true, st["first"])
            added = int(((first.best_jaccard < 0.5) & (score.best_jaccard >= 0.5)).sum())
            print(f"\nfirst pass alone: {len(st['first'])} sets, P {first.precision:.3f} R {first.recall:.3f} "
                  f"F1 {first.f1:.3f}; the second pass reaches {added} more units at J >= 1/2")
        print(f"\n{decoding_errors(net, st['final'], score, args.step)}\n", flush=True)


if __name__ == "__main__":
    main()
