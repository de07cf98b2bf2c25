"""Arora et al.'s single-layer step: co-firing graph -> overlapping neighbourhoods -> hidden layer.

Arora, Bhaskara, Ge and Ma (2014), *Provable Bounds for Learning Some Deep Representations*:
a sparse binary hidden layer ``h`` drives an observed layer ``y = 1[W h > 0]`` through a random
sparse bipartite graph with +-1 weights.  Observed units that share an excitatory parent fire
together whenever that parent is on, so (1) the co-firing graph of the observed layer is
(nearly) the union of one clique per hidden unit, (2) each clique is recovered from a related
pair and the units that fire with it (three-wise co-firing), and (3) each hidden unit is decoded
as "on" when most of its neighbourhood fires; the decoded layer is observed data for the next
step up.  docs/arora.md states the model, the rules below and where they depart from the paper.

The rules, each derived from the model (no constant tuned to a generator):

* **Related pair** (:func:`cofiring_graph`): a one-sided exact binomial test of the joint
  count ``n_uv`` against independence, ``n_uv ~ Binomial(M, p_u p_v)`` with the marginal rates
  ``p`` estimated from the same M samples; an edge iff ``P(X >= n_uv) <= alpha / (C(C-1)/2)``
  (Bonferroni over all pairs).  The smallest count that makes an edge therefore grows with M
  like ``M p_u p_v + O(sqrt(M p_u p_v log C))``; independent units make an edge with
  probability at most ``alpha`` over the whole layer.
* **Cousins dropped** (:func:`drop_cousin_pairs`): in a deep network a pair that shares only a
  grandparent is genuinely dependent; for it, a sibling w of u in the pair's set fires with u
  far more often than v does (v would not join the set of (u, w)), tested from both sides with
  the member fraction below (exact binomial, Bonferroni over the tests).
* **Neighbourhood of a pair** (:func:`pair_neighbourhoods`): for a related pair (u, v), the
  set ``{u, v} + {w related to both : n_uvw > 3/4 max_w' n_uvw' and n_uvw > n_uv / 2}``, "related"
  read in the co-firing graph before the cousin rule in the first pass (that rule picks the pairs
  that make sets, not the units that co-fire with them; :func:`graph_neighbourhoods`; the second
  pass reads the pruned graph, :func:`second_pass_sets`).  In the
  model u and v fire together mostly when a shared parent is on; given that parent, each of its
  other excitatory children fires unless an inhibiting co-parent is also on (probability about
  1 - rho d_in), a child of a sibling cause with probability at most about 1/2, any other unit
  about rho d_in.  The pair's joint firings through other routes dilute all these rates alike,
  so the vote is relative to the pair's most frequent third unit (3/4: the midpoint of [1/2, 1]),
  which must itself fire in more than half of them.
* **One cause per set** (:func:`merge_neighbourhoods`): sets of the same cause come from every
  pair inside it, so sets are grouped (Jaccard > 1/2 to the group's first, most supported,
  set: two different causes share about d^2 / C units, far below half) and each group's
  consensus is the members named by more than half of its pairs.  A consensus is kept only if
  it is a fixed point: more than half of its own related pairs produced it.  A pair that shares
  two parents (or fires together through a grandparent) yields a set whose own pairs point at
  other, smaller sets, and it is dropped.
* **Sets explained away** (:func:`drop_explained_sets`): units whose own causes co-fire (through
  a shared ancestor further up) form small sets that are their own fixed points; largest first,
  a set is kept only if its related pairs still co-fire where no kept cause of one member is on
  together with a kept cause of the other (the binomial test above, Bonferroni over the pairs).
* **Second pass** (:func:`second_pass_sets`): a cause that fires mostly together with another
  gets pair sets that hold the other's children too, and no fixed point; with the recovered
  causes decoded, a third unit is counted only where no recovered cause containing it is on,
  the sets of the pairs no recovered set contains are made again and merged, and the new sets of
  three or more units are tested with the first pass's (masking leaves a pair that the recovered
  causes explain with no third unit, so a new two-unit set is unconfirmed by construction).
  The new sets are tested against the kept causes of *either* member of each pair (a pair that
  co-fires only while a recovered cause of one member is on is explained by it).
* **Shared inputs** (:func:`drop_shared_input_pairs`, steps above the first): two decoded units
  whose neighbourhoods share a member co-fire through it, so a two-unit set (one pair's evidence)
  is kept only when its members' neighbourhoods in the layer below are disjoint.
* **Decoding** (:func:`decode_hidden`): a cause is on in a sample iff more than half of its
  neighbourhood fires (strict majority): with on-firing near 1 and off-firing near 0 this is the
  maximum-likelihood rule for symmetric error rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import binom

from sparsenet.errors import SparsenetError

# A unit joins a related pair's neighbourhood when it fires in more than this fraction of the
# samples where the pair fires together: children of the pair's cause fire then with
# probability about 1 - rho d_in (no inhibiting co-parent on), children of a sibling cause
# (reached through a shared grandparent) with at most about 1/2 when the cause has two or more
# excitatory parents, and unrelated units about rho d_in.  3/4 is the midpoint of [1/2, 1].
MEMBER_FRACTION = 0.75
# In a deep network a pair also fires together through its members' other parents (cousins under
# a common grandparent), which lowers every third unit's rate n_uvw / n_uv by the same factor; so
# a pair's vote is taken relative to its most frequent third unit, and that unit must itself fire
# in more than this fraction of the pair's joint firings: a child of a *sibling* cause does so with
# probability at most about 1/k <= 1/2 (k >= 2 excitatory parents of the cause).
STRONGEST_FLOOR = 0.5

__all__ = ["AroraLayer", "cofiring_counts", "cofiring_graph", "pair_neighbourhoods", "merge_neighbourhoods",
           "decode_hidden", "arora_step", "binarise", "primary_labels",
           "drop_explained_sets", "drop_cousin_pairs", "fixed_point_sets", "second_pass_sets",
           "graph_neighbourhoods", "with_second_pass", "drop_shared_input_pairs",
           "check_alpha"]


@dataclass(frozen=True)
class AroraLayer:
    """One step of Arora's layer-wise learning (see :func:`arora_step`)."""

    graph: np.ndarray  # (C, C) bool: related pairs (co-firing test, then the cousin rule), diagonal False
    neighbourhoods: list  # K sorted int arrays: observed units each recovered cause drives
    hidden: np.ndarray  # (M, K) uint8: decoded hidden layer (input of the next step)
    support: np.ndarray  # (K,) int: related pairs whose pair set voted for each neighbourhood

    @property
    def membership(self) -> np.ndarray:
        """(K, C) bool: ``membership[k, c]`` iff channel c is in neighbourhood k."""
        out = np.zeros((len(self.neighbourhoods), self.graph.shape[0]), dtype=bool)
        for k, members in enumerate(self.neighbourhoods):
            out[k, members] = True
        return out


def binarise(X, threshold=0.0) -> np.ndarray:
    """(M, C) uint8 firing matrix: ``X > threshold``; maps N x C x H x W become positions x C."""
    X = np.asarray(X)
    if X.ndim == 4:
        X = np.moveaxis(X, 1, -1).reshape(-1, X.shape[1])
    if X.ndim != 2:
        raise SparsenetError(f"activations of shape {X.shape}; accepted: M x C or N x C x H x W")
    return (X > np.asarray(threshold)).astype(np.uint8)


def cofiring_graph(cofiring: np.ndarray, n_samples: int, alpha: float = 0.05) -> np.ndarray:
    """Related pairs: joint firing significantly above independence (Bonferroni over pairs).

    ``cofiring`` is the C x C matrix of joint firing counts (its diagonal: each unit's count).
    Edge u-v iff ``P(Binomial(M, p_u p_v) >= n_uv) <= alpha / (C (C - 1) / 2)``.
    """
    check_alpha(alpha)
    counts = np.asarray(cofiring, dtype=np.float64)
    C = counts.shape[0]
    m = float(n_samples)
    rate = np.clip(np.diag(counts) / m, 0.0, 1.0)
    graph = _cofire_beyond_chance(counts, int(n_samples), np.outer(rate, rate), alpha / max(C * (C - 1) // 2, 1))
    np.fill_diagonal(graph, False)
    return graph & graph.T


def _cofire_beyond_chance(n_uv, m, p_joint, level: float) -> np.ndarray:
    """The co-firing test: ``n_uv`` joint firings in ``m`` samples above independence's
    ``m p_joint`` with ``P(Binomial(m, p_joint) >= n_uv) <= level`` (elementwise)."""
    # sf(k - 1) = P(X >= k); exact binomial upper tail, vectorised
    return (n_uv > m * p_joint) & (binom.sf(np.asarray(n_uv, dtype=np.float64) - 1.0, m, p_joint) <= level)


def cofiring_counts(Y) -> np.ndarray:
    """(C, C) int64 joint firing counts ``n_uv`` (diagonal: each unit's count ``n_u``).

    Computed as a sparse product over the firing entries only: cost about ``M (C p)^2`` for
    firing density p, instead of ``M C^2`` for the dense product.
    """
    Ys = sparse.csr_matrix(np.asarray(Y) > 0, dtype=np.int64)
    return np.asarray((Ys.T @ Ys).toarray(), dtype=np.int64)


def pair_neighbourhoods(Y: np.ndarray, graph: np.ndarray, pairs_of=None, third=None):
    """For each related pair (u < v): its set ``{u, v} + {w ~ u, w ~ v : n_uvw > f s_uv, n_uvw > g n_uv}``.

    ``f`` is ``MEMBER_FRACTION``, ``g`` is ``STRONGEST_FLOOR``, ``n_uvw`` counts the samples where
    u, v and w all fire and ``s_uv`` is the largest ``n_uvw`` over the w related to both (the
    pair's most frequent third unit: joint firings of the pair through other routes dilute every
    third unit's rate alike, so the vote is relative to it).
    Returns ``(pairs, sets)``: an (E, 2) int array and an (E, C) bool array.  The triple
    counts of all pairs (u, .) come from the samples where u fires, restricted to the units
    related to u (a common neighbour of u and v is one of them): cost about
    ``sum_u deg(u)^2 n_u`` instead of ``sum_u deg(u) n_u C``.

    ``pairs_of`` (a (C, C) bool mask inside ``graph``) restricts the pairs whose sets are made;
    ``third`` (an (M, C) firing matrix) replaces the third units' firing in ``n_uvw`` (the pair's
    own ``n_uv`` and the common neighbours stay those of ``Y`` and ``graph``): the second pass
    (:func:`second_pass_sets`) counts a third unit only where no recovered cause of it is on.
    """
    Y = np.asarray(Y)
    upper = np.triu(graph if pairs_of is None else graph & pairs_of, 1)
    pairs = np.argwhere(upper)
    C = graph.shape[0]
    sets = np.zeros((len(pairs), C), dtype=bool)
    if not len(pairs):
        return pairs, sets
    by_unit = sparse.csc_matrix(Y > 0)  # rows where each unit fires
    row = 0
    for u in np.unique(pairs[:, 0]):
        partners = np.flatnonzero(upper[u])
        related = np.flatnonzero(graph[u])  # partners are among them
        sub = _firing_with(Y, by_unit, u, related)
        local = np.searchsorted(related, partners)
        n_pair = sub[:, local].sum(axis=0)  # n_uv: rows of sub are the samples where u fires
        # (deg+, deg): n_uvw for v in partners, w related to u; with ``third``, w's firing where no
        # recovered cause of w is on
        thirds = sub if third is None else _firing_with(third, by_unit, u, related)
        triple = sub[:, local].T @ thirds
        common = graph[np.ix_(partners, related)]  # w related to v (and to u); u, v not among them
        strongest = np.where(common, triple, 0).max(axis=1, initial=0)  # s_uv
        member = np.zeros((len(partners), C), dtype=bool)
        member[:, related] = (common & (triple > MEMBER_FRACTION * strongest[:, None])
                              & (triple > STRONGEST_FLOOR * n_pair[:, None]))
        member[:, u] = True
        member[np.arange(len(partners)), partners] = True
        sets[row:row + len(partners)] = member
        row += len(partners)
    return pairs, sets


def _firing_with(Y: np.ndarray, by_unit: sparse.csc_matrix, u: int, units: np.ndarray) -> np.ndarray:
    """0/1 float32 firing of ``units`` in the samples where u fires (``by_unit``: ``Y > 0`` as
    CSC); ``sub.T @ sub`` gives the triple counts ``n_uvw`` among them (exact below 2^24)."""
    fired = by_unit.indices[by_unit.indptr[u]:by_unit.indptr[u + 1]]
    return (Y[np.ix_(fired, units)] > 0).astype(np.float32)


def drop_cousin_pairs(Y: np.ndarray, graph: np.ndarray, counts: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """The related pairs whose co-firing is not explained by a unit closer to one of them.

    In a deep network two bottom units that share only a grandparent g (*cousins*, through
    parents a != a') co-fire when g is on, which the co-firing test rightly calls related.  The
    pair's set T_uv (:func:`pair_neighbourhoods`) then holds the descendants of g, among them a
    sibling w of u (through a).  Given u and w firing (a on, about ``M rho_a`` samples), v fires
    only when g is on: with probability about ``rho_g / rho_a = 1 / k_a`` (k_a >= 2 excitatory
    parents of a), at most 1/2, so v would *not* join the set of the pair (u, w).  For a sibling
    pair (u, v) through a, every w of T_uv is another child of a and v fires with u and w unless
    an inhibiting parent of v is on (about 1 - rho d_in): v joins T_uw.  So for each pair and
    each w of T_uv the rule of :func:`pair_neighbourhoods` is tested the other way round, with
    the exact binomial test of ``n_uvw`` against ``Binomial(n_uw, f)`` (f = MEMBER_FRACTION,
    lower tail, Bonferroni over all the (pair, w) tests).  The pair is dropped if a test rejects
    from u's side *and* one rejects from v's side: each cousin has its own siblings in T_uv,
    while in a sibling pair a w that shares a second parent with u fails the test from u's side
    only.

    Returns the pruned graph (a copy).  Cost: one (deg x n_u) by (n_u x deg) product per unit.
    """
    check_alpha(alpha)
    Y = np.asarray(Y)
    C = graph.shape[0]
    by_unit = sparse.csc_matrix(Y > 0)
    counts = np.asarray(counts, dtype=np.float64)
    worst = np.ones((C, C))  # smallest p-value over the w of each directed pair (u, v)
    n_tests = 0
    for u in range(C):
        related = np.flatnonzero(graph[u])
        if len(related) < 2:
            continue
        sub = _firing_with(Y, by_unit, u, related)
        triple = (sub.T @ sub).astype(np.float64)  # [v, w]: n_uvw; diagonal n_uv
        n_pair = np.diag(triple)
        member = graph[np.ix_(related, related)] & (triple > MEMBER_FRACTION * n_pair[:, None])
        vi, wi = np.nonzero(member)
        if not len(vi):
            continue
        n_tests += len(vi)
        # v would not join the set of the pair (u, w): n_uvw significantly below f n_uw
        pvalue = binom.cdf(triple[vi, wi], counts[u, related[wi]], MEMBER_FRACTION)
        np.minimum.at(worst, (np.full(len(vi), u), related[vi]), pvalue)
    if n_tests == 0:
        return graph.copy()
    explained = worst <= alpha / n_tests
    explained = explained & explained.T  # from u's side and from v's
    return graph & ~explained


def merge_neighbourhoods(pairs: np.ndarray, sets: np.ndarray):
    """One consensus set per cause, kept only if its own pairs reproduce it (see module doc,
    :func:`fixed_point_sets`).

    There is no separate rule against a grandparent's descendants (the union of its children's
    sets; ``drop_composites`` until 2026-12-08): where the cousin rule prunes the cross pairs
    (units with several excitatory parents), such a union is a fixed point only if the cross pairs
    left outnumber its children's sibling pairs among its own related pairs, and a set that more
    than half of its own pairs name is not outvoted by any parts inside it.  The rule dropped
    real causes that hold small virtual causes (units sharing a second parent, whose pair sets
    name only each other).  With one or two parents per unit (one excitatory) the cousin rule
    cannot prune, such unions stay, and recovery is worse than with the rule (measured in
    docs/arora.md, "The composites rule removed").

    Returns ``(neighbourhoods, support)``: sorted int arrays and the votes of each.
    """
    out, support = fixed_point_sets(pairs, sets)
    order = sorted(range(len(out)), key=lambda k: (out[k][0], len(out[k])))
    return [out[k] for k in order], np.asarray([support[k] for k in order], dtype=int)


def fixed_point_sets(pairs: np.ndarray, sets: np.ndarray):
    """The pair sets grouped (Jaccard > 1/2 to the group's most supported set), each group's
    consensus (members named by more than half of its pairs), kept if more than half of the
    consensus' own related pairs are in the group.  Returns ``(consensus sets, support)``.
    """
    if len(pairs) == 0:
        return [], []
    distinct, inverse, counts = _unique_rows(sets)
    sizes = distinct.sum(axis=1)
    order = np.lexsort((-sizes, -counts))  # most supported first, larger on ties
    group_of = _group_by_leader(distinct[order], sizes[order])
    group_of = group_of[np.argsort(order)]  # back to the rows of ``distinct``
    n_groups = int(group_of.max()) + 1 if len(group_of) else 0
    pair_group = group_of[inverse]  # group of each related pair's set
    C = sets.shape[1]
    pair_index = np.full((C, C), -1, dtype=np.int64)
    pair_index[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    by_group = np.argsort(pair_group, kind="stable")
    bounds = np.searchsorted(pair_group[by_group], np.arange(n_groups + 1))
    out, support = [], []
    for g in range(n_groups):
        voters = by_group[bounds[g]:bounds[g + 1]]
        votes = sets[voters].sum(axis=0)
        consensus = votes * 2 > len(voters)
        members = np.flatnonzero(consensus)
        if len(members) < 2:
            continue
        inside = pair_index[np.ix_(members, members)][np.triu_indices(len(members), 1)]
        own = inside[inside >= 0]  # the related pairs among the consensus' own members
        if not len(own) or np.count_nonzero(pair_group[own] == g) * 2 <= len(own):
            continue
        out.append(members)
        support.append(len(voters))
    return out, support


def _unique_rows(rows: np.ndarray):
    """``np.unique(rows, axis=0, return_inverse=True, return_counts=True)`` for a bool matrix.

    Same rows in the same (lexicographic) order, but sorted on the rows packed into big-endian
    64-bit words (one ``lexsort`` over C / 64 keys) instead of numpy's field-by-field comparison
    of C bool fields, which dominated the merge on thousands of units.
    """
    n, width = rows.shape
    packed = np.packbits(rows, axis=1)  # big-endian bits: byte order = lexicographic order
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    words = packed.view(">u8").astype(np.uint64)  # (n, ceil(C / 64)), same order as the bits
    order = np.lexsort(words.T[::-1])  # last key is primary: the first word decides first
    ordered = words[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    first = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    counts = np.diff(np.append(first, n))
    return rows[order[first]], inverse, counts


def _group_by_leader(rows: np.ndarray, sizes: np.ndarray, block: int = 1024) -> np.ndarray:
    """Greedy grouping of bool set rows, taken in the given order.

    A row joins the first (earliest) leader it has Jaccard > 1/2 with, else it becomes a new
    leader.  Equivalent to comparing each row with every earlier leader in turn; the rows are
    compared in blocks with one sparse product against the leaders found before the block, and
    the rows that match none of them are compared, one by one, with the block's new leaders
    through the block's own intersection matrix (one sparse product, not one per row).
    """
    n = len(rows)
    group_of = np.full(n, -1, dtype=np.int64)
    lead_blocks: list = []  # sparse rows of the leaders, block by block
    lead_sizes = np.zeros(0)
    for start in range(0, n, block):
        part = sparse.csr_matrix(rows[start:start + block], dtype=np.float64)
        psize = sizes[start:start + block].astype(np.float64)
        n_old = len(lead_sizes)
        first = np.full(part.shape[0], -1, dtype=np.int64)
        if n_old:
            leaders = sparse.vstack(lead_blocks, format="csr")
            inter = np.asarray((part @ leaders.T).toarray(), dtype=np.float64)
            match = inter * 2 > lead_sizes[None, :] + psize[:, None] - inter
            has = match.any(axis=1)
            first[has] = match[has].argmax(axis=1)
        matched = first >= 0
        group_of[start:start + part.shape[0]][matched] = first[matched]
        pending = np.flatnonzero(~matched)
        if not len(pending):
            continue
        own = np.asarray((part[pending] @ part[pending].T).toarray())
        size_p = psize[pending]
        leader = np.zeros(len(pending), dtype=bool)  # the block's new leaders, in pending order
        rank = np.zeros(len(pending), dtype=np.int64)  # their group numbers within the block
        n_new = 0
        for j in range(len(pending)):
            inter = own[:j, j]
            joined = np.flatnonzero(leader[:j] & (inter * 2 > size_p[:j] + size_p[j] - inter))
            if len(joined):  # the earliest new leader it matches
                group_of[start + pending[j]] = n_old + rank[joined[0]]
                continue
            group_of[start + pending[j]] = n_old + n_new
            leader[j], rank[j] = True, n_new
            n_new += 1
        lead_blocks.append(part[pending[leader]])
        lead_sizes = np.concatenate([lead_sizes, size_p[leader]])
    return group_of


def drop_explained_sets(Y: np.ndarray, graph: np.ndarray, neighbourhoods, support, alpha: float = 0.05,
                        either_from: int | None = None):
    """Keep a neighbourhood only if each related pair in it co-fires beyond what other causes explain.

    Units that share a cause co-fire whenever it is on.  Units whose *own, different* causes
    co-fire (through a shared ancestor one layer further up: cousins, or units sharing several
    grandparents) also co-fire, and a handful of them can form a small set that is its own
    fixed point (a *virtual* cause: with d parents per unit and (d/2)^2 excitatory grandparents,
    two units share some when (d/2)^4 approaches the width of the layer two steps up).  So the
    sets are taken largest first (a real cause has about d_c / 2 excitatory children; a chance
    overlap of grandparents names few units), each decoded (:func:`decode_hidden`) once kept,
    and a set is kept only if each of its related pairs u, v (``graph``: the pairs whose co-firing
    was significant; a set's other pairs joined it by votes) still co-fires significantly on the
    samples where no kept cause of u is on together with a kept cause of v: the one-sided
    binomial test of :func:`cofiring_graph` on those samples, Bonferroni over all the pairs
    tested.  A real cause of the set still makes each pair co-fire there; a set held together by
    other causes does not.  (For a two-unit set this is the explained-away test of the earlier
    code.)

    ``either_from``: the sets from this index on (the second pass's, :func:`second_pass_sets`) are
    tested on the samples where no kept cause of u *and* none of v is on.  Those sets come from
    pairs no recovered set contains, with third units counted where their own causes are off; a
    pair that co-fires only while a kept cause of one member is on (v a missed child of u's
    cause, or u firing with v's cause) is explained by that cause, while a missed cause's pairs
    still co-fire outside the (nearly independent) other causes' firings.
    """
    Y = np.asarray(Y)
    if not neighbourhoods:
        return neighbourhoods, support
    related = [graph[np.ix_(members, members)] for members in neighbourhoods]
    n_tests = max(sum(int(r.sum()) // 2 for r in related), 1)
    fires = np.ascontiguousarray(Y.T > 0)  # unit-major: where each unit fires
    caused = np.zeros_like(fires)  # where a kept cause of each unit is on
    order = sorted(range(len(neighbourhoods)), key=lambda k: (-len(neighbourhoods[k]), -support[k]))
    keep = []
    for k in order:
        members = neighbourhoods[k]
        either = either_from is not None and k >= either_from
        if _some_pair_explained(fires[members], caused[members], related[k], alpha / n_tests, either):
            continue
        keep.append(k)
        caused[members] |= decode_hidden(Y, [members])[:, 0].astype(bool)[None, :]
    keep.sort()
    return [neighbourhoods[k] for k in keep], np.asarray([support[k] for k in keep], dtype=int)


def _some_pair_explained(fires: np.ndarray, caused: np.ndarray, related: np.ndarray, level: float,
                         either: bool = False) -> bool:
    """Whether some ``related`` pair of the (s, M) firing rows fails the co-firing test on its
    unexplained samples (those where the two units' ``caused`` rows are not both on; with
    ``either``, where neither is on).

    Every count is a product of the rows: with A = fires, B = caused and AB = A and B,
    samples kept ``M - B B^T``, joint firings there ``A A^T - AB AB^T``, each unit's firings
    there ``n_u - AB_u . B_v``; with ``either``, N = not B and AN = A and N: ``N N^T``,
    ``AN AN^T``, ``AN_u . N_v``.
    """
    A, B = fires.astype(np.float64), caused.astype(np.float64)
    if either:
        N = 1.0 - B
        AN = A * N
        m, n_uv, n_u = N @ N.T, AN @ AN.T, AN @ N.T
    else:
        AB = A * B
        m = A.shape[1] - B @ B.T
        n_uv = A @ A.T - AB @ AB.T
        n_u = A.sum(axis=1)[:, None] - AB @ B.T  # [u, v]: firings of u where (u, v) is unexplained
    iu = np.nonzero(np.triu(related, 1))
    m, n_uv = np.rint(m[iu]).astype(np.int64), n_uv[iu]
    p_u, p_v = n_u[iu] / np.maximum(m, 1), n_u.T[iu] / np.maximum(m, 1)
    passed = (m >= 2) & _cofire_beyond_chance(n_uv, m, p_u * p_v, level)
    return not passed.all()


def second_pass_sets(Y: np.ndarray, graph: np.ndarray, neighbourhoods):
    """Sets of the causes the first pass missed because their pairs' sets held another cause's units.

    A cause a that fires mostly together with another cause b (a violation of the independence of
    causes, e.g. a's firings coming from one parent that also drives b) gives its pairs sets that
    hold b's children too (they fire in most of the pair's joint firings), so they are no fixed
    point.  With the recovered causes decoded, each unit's firing is counted as a *third* unit
    only where no recovered cause containing it is on: b's children then vote for a's pairs only
    where b is not on.  The sets of the related pairs that no recovered set contains are made
    again this way (:func:`pair_neighbourhoods` with ``third``; the pair's own joint firings are
    all counted) and merged (:func:`merge_neighbourhoods`).

    Only sets of three or more units are returned.  The masking removes the third units of a pair
    exactly where a recovered cause explains their firing, so a pair whose co-firing the recovered
    causes explain (a unit and a missed child of its cause, or a unit firing with another unit's
    cause) is left with no third unit: in this pass a two-unit set is what an explained pair
    looks like, and with one pair as its only evidence no fixed-point test can confirm it (a set
    of three or more is reproduced by at least two of its own pairs).  Causes with exactly two
    excitatory children are therefore found only by the first pass.  The third units are the
    common neighbours in ``graph`` (after the cousin rule), not in the tested graph as in the
    first pass: the vote is relative to the strongest *masked* third unit, which for a pair whose
    co-members' causes are kept is weak, so every extra candidate (a cousin the rule removed)
    is one more that can pass it.  Returns ``(sets, support)``.
    """
    Y = np.asarray(Y)
    if not neighbourhoods:
        return [], np.zeros(0, dtype=int)
    member = np.zeros((len(neighbourhoods), Y.shape[1]), dtype=bool)
    for k, members in enumerate(neighbourhoods):
        member[k, members] = True
    member = sparse.csr_matrix(member, dtype=np.int32)
    on = sparse.csr_matrix(decode_hidden(Y, neighbourhoods).astype(bool), dtype=np.int32)  # (M, K)
    third = (Y > 0) & ~((on @ member).toarray() > 0)  # each unit's firing where no recovered cause of it is on
    named = (member.T @ member).toarray() > 0  # pairs some recovered set contains
    pairs, sets = pair_neighbourhoods(Y, graph, pairs_of=~named, third=third)
    found, found_support = merge_neighbourhoods(pairs, sets)
    keep = [k for k in range(len(found)) if len(found[k]) >= 3]
    return [found[k] for k in keep], np.asarray([found_support[k] for k in keep], dtype=int)


def primary_labels(neighbourhoods, support, n_units: int) -> np.ndarray:
    """(C,) int: each unit's primary neighbourhood (the most supported one it is in), -1 for none."""
    labels = np.full(n_units, -1, dtype=int)
    best = np.full(n_units, -1)
    for k, members in enumerate(neighbourhoods):
        better = support[k] > best[members]
        labels[members[better]] = k
        best[members[better]] = support[k]
    return labels


def decode_hidden(Y: np.ndarray, neighbourhoods) -> np.ndarray:
    """(M, K) uint8: cause k is on where more than half of its neighbourhood fires."""
    Y = np.asarray(Y)
    out = np.zeros((Y.shape[0], len(neighbourhoods)), dtype=np.uint8)
    for k, members in enumerate(neighbourhoods):
        fired = Y[:, members].sum(axis=1, dtype=np.int64)
        out[:, k] = fired * 2 > len(members)
    return out


def graph_neighbourhoods(Y: np.ndarray, graph: np.ndarray, alpha: float = 0.05, second_pass: bool = True,
                         tested: np.ndarray | None = None):
    """The causes of ``Y`` from its related-pair graph (after the cousin rule): pair sets, merge,
    explained-sets test, then (``second_pass``) the sets of :func:`second_pass_sets`, tested
    together with the first pass's (largest first; the new ones against the causes of either
    member, ``drop_explained_sets(either_from=...)``).  Returns ``(neighbourhoods, support)``.

    ``tested``: the co-firing graph before the cousin rule (default ``graph``).  In the first
    pass the pairs of ``graph`` make the sets and their third units are the common neighbours in
    ``tested`` (the second pass keeps ``graph``'s: :func:`second_pass_sets`).  The
    cousin rule decides which pairs name a cause; whether w co-fires with u and v is what the
    co-firing test measured, and the member vote on the pair's joint firings then keeps a
    cousin out.  A child of the pair's cause whose own pair with u the cousin rule dropped (a
    hub third unit, with many parents, can reject a real sibling pair) still joins the set.
    """
    pairs, sets = pair_neighbourhoods(Y, graph if tested is None else tested, pairs_of=graph)
    neighbourhoods, support = merge_neighbourhoods(pairs, sets)
    neighbourhoods, support = drop_explained_sets(Y, graph, neighbourhoods, support, alpha)
    return with_second_pass(Y, graph, neighbourhoods, support, alpha) if second_pass else (neighbourhoods, support)


def with_second_pass(Y: np.ndarray, graph: np.ndarray, neighbourhoods, support, alpha: float = 0.05):
    """The first pass's kept sets plus those of :func:`second_pass_sets`, all through the
    explained-sets test again (largest first; the new ones against the causes of either member)."""
    more, more_support = second_pass_sets(Y, graph, neighbourhoods)
    if not more:
        return neighbourhoods, support
    return drop_explained_sets(Y, graph, list(neighbourhoods) + more, np.concatenate([support, more_support]),
                               alpha, either_from=len(neighbourhoods))


def drop_shared_input_pairs(neighbourhoods, support, inputs):
    """Drop the two-unit sets whose members were decoded from overlapping ``inputs``.

    ``inputs[c]``: the units of the layer below that decoded unit c (the previous step's
    neighbourhoods).  Two decoded units whose neighbourhoods share a member fire together
    whenever that member and one more of each fire: a dependence the decoding makes, not a cause
    above.  A set of three or more is reproduced by several of its own pairs (the fixed point);
    a two-unit set has its one pair as the only evidence, so it is kept only when its members'
    inputs are disjoint.  Returns ``(neighbourhoods, support)``.
    """
    keep = [k for k, members in enumerate(neighbourhoods)
            if len(members) != 2 or not np.intersect1d(inputs[members[0]], inputs[members[1]]).size]
    return [neighbourhoods[k] for k in keep], np.asarray([support[k] for k in keep], dtype=int)


def arora_step(Y, alpha: float = 0.05, inputs=None) -> AroraLayer:
    """One layer of Arora's algorithm on a binary (M, C) firing matrix ``Y``.

    ``inputs``: when ``Y`` was decoded by a step below, that step's neighbourhoods (one per
    column of ``Y``); then :func:`drop_shared_input_pairs` applies.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] < 2 or Y.shape[1] < 2:
        raise SparsenetError(f"firing matrix of shape {Y.shape}; accepted: M x C binary with "
                             f"M >= 2 samples and C >= 2 units")
    if inputs is not None and len(inputs) != Y.shape[1]:
        raise SparsenetError(f"{len(inputs)} input neighbourhoods for {Y.shape[1]} units; accepted: "
                             f"one per column of the firing matrix (the step below's neighbourhoods)")
    cofiring = cofiring_counts(Y)
    tested = cofiring_graph(cofiring, Y.shape[0], alpha)
    graph = drop_cousin_pairs(Y, tested, cofiring, alpha)
    neighbourhoods, support = graph_neighbourhoods(Y, graph, alpha, tested=tested)
    if inputs is not None:
        neighbourhoods, support = drop_shared_input_pairs(neighbourhoods, support, inputs)
    hidden = decode_hidden(Y, neighbourhoods)
    return AroraLayer(graph=graph, neighbourhoods=neighbourhoods, hidden=hidden, support=support)


def check_alpha(alpha, name: str = "alpha") -> float:
    """The family-wise error rate of the co-firing test must be a number in (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
            or not 0 < alpha < 1:
        raise SparsenetError(f"{name}={alpha!r}; accepted: a number in (0, 1) (the family-wise "
                             f"false-edge rate of the co-firing test)")
    return float(alpha)
