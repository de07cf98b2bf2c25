"""Layer-wise learning with Arora's step, and how well recovered layers match a known network.

:func:`learn_layers` applies :func:`sparsenet.analyser.arora.arora_step` to the observed layer,
decodes the hidden layer and repeats on it.  :func:`score_layer` compares one step's
neighbourhoods with the true excitatory children of each unit of the layer above (a planted
network, e.g. ``sparsenet.data.synthetic.arora_network``): each true unit's best Jaccard, and
edge precision / recall / F1 after matching recovered to true units one-to-one (Hungarian
assignment on the Jaccard).  :func:`score_network` walks the steps up a planted network, naming
each recovered unit by the true unit it was matched to, so that the next step's neighbourhoods
(sets of recovered units) can be compared with the true children (sets of true units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from sparsenet.analyser.arora import AroraLayer, arora_step, cofiring_graph
from sparsenet.errors import SparsenetError

__all__ = ["learn_layers", "iter_layers", "LayerScore", "score_layer", "score_network", "Regime", "bottom_regime"]


def learn_layers(Y, n_layers: int, alpha: float = 0.05) -> list[AroraLayer]:
    """Up to ``n_layers`` steps of Arora's algorithm from the binary (M, C) bottom layer ``Y``
    (all the steps of :func:`iter_layers`)."""
    return list(iter_layers(Y, n_layers, alpha))


def iter_layers(Y, n_layers: int, alpha: float = 0.05):
    """The steps of :func:`learn_layers`, each yielded as soon as it is learned (so a caller can
    time or report each one).

    Step i + 1 reads the hidden layer decoded by step i, and step i's neighbourhoods (with them it
    drops the two-unit sets whose members' inputs overlap: ``arora_step(inputs=...)``); it stops
    early when a step recovers fewer than two units (nothing left to relate).
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
        raise SparsenetError(f"n_layers={n_layers!r}; accepted: an integer >= 1")
    return _steps(np.asarray(Y), int(n_layers), alpha)  # checked now, not at the first step


def _steps(current: np.ndarray, n_layers: int, alpha: float):
    inputs = None
    for _ in range(n_layers):
        step = arora_step(current, alpha, inputs=inputs)
        yield step
        if len(step.neighbourhoods) < 2:
            return
        current, inputs = step.hidden, step.neighbourhoods


@dataclass(frozen=True)
class LayerScore:
    """One step's recovery against the true layer above."""

    n_true: int                 # units of the true layer above
    n_recovered: int            # neighbourhoods recovered
    best_jaccard: np.ndarray    # (n_true,) best Jaccard of each true unit's children set
    precision: float            # recovered edges that are true excitatory edges (after matching)
    recall: float               # true excitatory edges recovered (after matching)
    match: np.ndarray           # (n_recovered,) true unit matched to each recovered one, -1 none

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total > 0 else 0.0

    @property
    def mean_jaccard(self) -> float:
        return float(self.best_jaccard.mean()) if self.best_jaccard.size else 0.0

    def share_at_least(self, jaccard: float = 0.8) -> float:
        """Fraction of true units whose best Jaccard is at least ``jaccard``."""
        return float((self.best_jaccard >= jaccard).mean()) if self.best_jaccard.size else 0.0

    def to_dict(self) -> dict:
        return {"n_true": self.n_true, "n_recovered": self.n_recovered,
                "mean_best_jaccard": self.mean_jaccard, "share_jaccard_0.8": self.share_at_least(0.8),
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def score_layer(true_sets, recovered_sets) -> LayerScore:
    """Compare recovered neighbourhoods with true children sets (both: sequences of unit ids)."""
    true = [set(int(i) for i in t) for t in true_sets]
    rec = [set(int(i) for i in r) for r in recovered_sets]
    J = np.zeros((len(true), len(rec)))
    for i, t in enumerate(true):
        for j, r in enumerate(rec):
            union = len(t | r)
            J[i, j] = len(t & r) / union if union else 1.0  # two empty sets are the same set
    best = J.max(axis=1) if rec else np.zeros(len(true))
    match = np.full(len(rec), -1)
    tp = 0
    if rec and true:
        rows, cols = linear_sum_assignment(-J)
        for i, j in zip(rows, cols):
            if J[i, j] > 0:
                match[j] = i
                tp += len(true[i] & rec[j])
    n_rec, n_true = sum(len(r) for r in rec), sum(len(t) for t in true)
    return LayerScore(n_true=len(true), n_recovered=len(rec), best_jaccard=best,
                      precision=tp / n_rec if n_rec else 0.0, recall=tp / n_true if n_true else 0.0,
                      match=match)


def score_network(sample, layers: list[AroraLayer]) -> list[LayerScore]:
    """Score each step of :func:`learn_layers` on a planted ``AroraSample``, bottom step first.

    Step s recovers ``sample.layers[-2 - s]`` from the layer below it.  Its neighbourhoods are
    sets of the previous step's recovered units, renamed by the true units they were matched to
    (an unmatched recovered unit matches no true unit, so its edges count as false).
    """
    names = np.arange(sample.observed.shape[1])  # true id of each current observed unit
    scores = []
    for s, step in enumerate(layers):
        above = len(sample.layers) - 2 - s
        if above < 0:
            break
        true_sets = sample.neighbourhoods(above)
        recovered = [[int(names[c]) for c in members if names[c] >= 0] for members in step.neighbourhoods]
        score = score_layer(true_sets, recovered)
        scores.append(score)
        names = score.match
    return scores


@dataclass(frozen=True)
class Regime:
    """What decides whether the bottom step of a planted network can name the layer directly above.

    Two bottom units are *siblings* if they share an excitatory parent and *cousins* if they
    share an excitatory grandparent but no excitatory parent (docs/arora.md, "The regime").
    """

    single_parent: float  # share of the units above the bottom with <= 1 excitatory parent
    cousins_per_sibling: float  # cousin pairs per sibling pair among the bottom units
    strength_gap: float  # median n_uv / min(n_u, n_v): related siblings over related cousins


def bottom_regime(sample, alpha: float = 0.05) -> Regime:
    """Measure :class:`Regime` on a planted ``AroraSample`` with at least two generated layers.

    A unit above the bottom with one excitatory parent fires almost exactly when that parent does,
    so its children co-fire with its siblings' children as with each other (not identifiable from
    the layer below); with k >= 2 excitatory parents, cousins co-fire about k times less than
    siblings, which is the only margin a rule on co-firing strength can use.
    """
    if len(sample.weights) < 2:
        raise SparsenetError(f"a network with {len(sample.weights)} generated layer(s); accepted: "
                             f"at least 2 (cousins need a grandparent)")
    plus = [(w > 0).astype(np.int64) for w in sample.weights]
    k_plus = plus[-2].sum(axis=1)  # excitatory parents of each unit directly above the bottom
    sib = (plus[-1] @ plus[-1].T) > 0
    grand = ((plus[-1] @ plus[-2]) > 0).astype(np.int64)  # bottom unit -> excitatory grandparents
    cousin = ((grand @ grand.T) > 0) & ~sib
    np.fill_diagonal(sib, False)
    np.fill_diagonal(cousin, False)
    Y = np.asarray(sample.observed, dtype=np.float64)
    counts = Y.T @ Y
    graph = cofiring_graph(counts, Y.shape[0], alpha)
    rate = np.diag(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        strength = counts / np.minimum.outer(rate, rate)
    related_sib, related_cousin = strength[graph & sib], strength[graph & cousin]
    gap = (float(np.median(related_sib) / np.median(related_cousin))
           if related_sib.size and related_cousin.size else float("nan"))
    return Regime(single_parent=float((k_plus <= 1).mean()),
                  cousins_per_sibling=float(cousin.sum() / max(sib.sum(), 1)), strength_gap=gap)
