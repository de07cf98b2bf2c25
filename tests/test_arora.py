"""Arora's single-layer step, layer-wise learning, and overlapping clusters through the toolkit.

Every check is against planted truth: the generators' known excitatory children
(``AroraSample.neighbourhoods``) or independent units (no related pair exists)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparsenet.analyser import CorrelationAnalyzer
from sparsenet.analyser.arora import arora_step, cofiring_graph, decode_hidden
from sparsenet.analyser.arora_layers import bottom_regime, learn_layers, score_layer, score_network
from sparsenet.analyser.clustering import METHODS
from sparsenet.builder.modules import build_module
from sparsenet.builder.rules import fit_budget, module_from_discovery
from sparsenet.builder.spec import module_macs
from sparsenet.cli import main
from sparsenet.data.synthetic import arora_layer, arora_network
from sparsenet.discovery.value import from_labels, load_discovery, validate
from sparsenet.errors import SparsenetError


def _true_sets(sample):
    return sample.neighbourhoods(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overlapping_neighbourhoods_recovered_on_planted_layers(seed):
    sample = arora_layer(3000, 16, 64, degree=6, density=0.05, random_state=seed)
    truth = [t for t in _true_sets(sample)]
    shared_truth = np.bincount(np.concatenate(truth), minlength=64) > 1
    assert shared_truth.any()  # the planted neighbourhoods overlap: no partition can hold them
    layer = arora_step(sample.observed)
    score = score_layer([t for t in truth if len(t) >= 2], layer.neighbourhoods)
    assert score.mean_jaccard >= 0.9
    assert score.f1 >= 0.9
    counts = layer.membership.sum(axis=0)
    assert (counts > 1).any()  # a channel in several neighbourhoods
    assert (counts == 0).any()  # and some in none


def test_decoded_hidden_layer_matches_the_planted_one():
    sample = arora_layer(3000, 16, 64, degree=6, density=0.05, random_state=3)
    layer = arora_step(sample.observed)
    score = score_layer(_true_sets(sample), layer.neighbourhoods)
    matched = [(int(t), j) for j, t in enumerate(score.match) if t >= 0]
    assert len(matched) >= 12
    agree = [np.mean(layer.hidden[:, j] == sample.layers[0][:, t]) for t, j in matched]
    assert np.mean(agree) >= 0.98
    np.testing.assert_array_equal(decode_hidden(sample.observed, layer.neighbourhoods), layer.hidden)


def test_cofiring_test_false_positive_rate_on_independent_units():
    rng = np.random.default_rng(0)
    alpha, trials, C, M = 0.05, 300, 30, 1000
    with_edge = 0
    for _ in range(trials):
        Y = (rng.random((M, C)) < rng.uniform(0.02, 0.3, C)).astype(np.float64)
        with_edge += bool(cofiring_graph(Y.T @ Y, M, alpha).any())
    # family-wise error over the C(C-1)/2 pairs at most alpha (Bonferroni), up to 3 standard errors
    assert with_edge / trials <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)


def test_cofiring_threshold_grows_with_the_sample_count():
    """The smallest joint count that makes an edge follows M p_u p_v + O(sqrt(M)), not a constant."""
    p = 0.05
    needed = []
    for M in (1000, 10000):
        for n in range(int(M * p * p), M):
            counts = np.array([[M * p, n], [n, M * p]])
            if cofiring_graph(counts, M)[0, 1]:
                needed.append(n)
                break
    assert needed[1] > needed[0] > 1000 * p * p
    assert needed[1] < 10 * needed[0]  # excess ~ sqrt(M), far below proportional growth


def test_learn_layers_feeds_each_decoded_layer_to_the_next_step():
    net = arora_network(3000, 4, (12, 36), degree=2, top_sparsity=0.1, random_state=0)
    steps = learn_layers(net.observed, 3)
    assert 1 <= len(steps) <= 3
    assert all(len(s.neighbourhoods) >= 2 for s in steps[:-1])  # it goes on only from >= 2 units
    if len(steps) < 3:
        assert len(steps[-1].neighbourhoods) < 2  # and stops early only for that reason
    for below, above in zip(steps, steps[1:]):  # each step told the inputs of its decoded units
        again = arora_step(below.hidden, inputs=below.neighbourhoods)
        assert [list(m) for m in again.neighbourhoods] == [list(m) for m in above.neighbourhoods]
    with pytest.raises(SparsenetError, match="n_layers"):
        learn_layers(net.observed, 0)


def test_score_network_is_perfect_for_the_true_network():
    """The per-layer score's oracle: the true neighbourhoods, decoded as the truth, score 1."""
    from sparsenet.analyser.arora import AroraLayer

    net = arora_network(500, 6, (18, 54, 162), degree=2, top_sparsity=0.2, random_state=1)
    steps = []
    for above in (2, 1, 0):
        sets = net.neighbourhoods(above)
        keep = [np.asarray(s) for s in sets]
        C = net.layers[above + 1].shape[1]
        steps.append(AroraLayer(graph=np.zeros((C, C), bool), neighbourhoods=keep,
                                hidden=net.layers[above].astype(np.uint8), support=np.ones(len(keep), int)))
    scores = score_network(net, steps)
    assert len(scores) == 3
    for s in scores:
        assert s.precision == 1.0 and s.recall == 1.0
        nonempty = np.array([len(t) > 0 for t in net.neighbourhoods(len(net.layers) - 2 - scores.index(s))])
        assert np.all(s.best_jaccard[nonempty] == 1.0)


def test_bottom_regime_counts_against_a_loop_over_the_weights():
    """Oracle: excitatory parents, siblings and cousins counted pair by pair from the weights."""
    net = arora_network(4000, 5, (10, 20), degree=2, top_sparsity=0.1, random_state=3)
    r = bottom_regime(net)
    W_top, W_bottom = (w > 0 for w in net.weights)
    assert r.single_parent == pytest.approx(np.mean([W_top[a].sum() <= 1 for a in range(10)]))
    sib = cousin = 0
    for u in range(20):
        for v in range(20):
            if u == v:
                continue
            shared = set(np.flatnonzero(W_bottom[u])) & set(np.flatnonzero(W_bottom[v]))
            gu = {g for a in np.flatnonzero(W_bottom[u]) for g in np.flatnonzero(W_top[a])}
            gv = {g for a in np.flatnonzero(W_bottom[v]) for g in np.flatnonzero(W_top[a])}
            sib += bool(shared)
            cousin += (not shared) and bool(gu & gv)
    assert r.cousins_per_sibling == pytest.approx(cousin / sib)
    assert r.strength_gap > 1  # related siblings co-fire more than related cousins
    with pytest.raises(SparsenetError, match="at least 2"):
        bottom_regime(arora_layer(200, 4, 16, degree=4, random_state=0))


def _maps(sample, n_images):
    y = sample.observed
    side = int(np.sqrt(y.shape[0] // n_images))
    return y[: n_images * side * side].reshape(n_images, side, side, -1).transpose(0, 3, 1, 2).copy()


def test_overlapping_discovery_build_forward(tmp_path):
    sample = arora_layer(4800, 16, 48, degree=6, density=0.05, random_state=0)
    X = _maps(sample, 300)  # 300 images of 4 x 4 positions, 48 channels
    model = CorrelationAnalyzer(method="arora", n_permutations=0, n_resamples=0, random_state=0).fit(X)
    assert model.overlapping_
    discovery = from_labels(model.labels_, model.kernel_sizes_, model.spatial_profiles_,
                            neighbourhoods=model.neighbourhoods_)
    path = discovery.save(tmp_path / "discovery.json")
    loaded = load_discovery(path)
    assert loaded.overlapping and loaded.shared  # channels in several clusters survive the file
    assert [c.channels for c in loaded.clusters] == [tuple(int(i) for i in m) for m in model.neighbourhoods_]
    spec = module_from_discovery(loaded)
    reads = [set(b.inputs) for b in spec.branches]
    shared = loaded.shared[0]
    assert sum(shared in r for r in reads) >= 2  # one channel feeds several branches
    module = build_module(spec)
    out = module(torch.from_numpy(X[:2]).float())
    assert out.shape == (2, spec.out_channels, 4, 4)
    # budget fitting counts a shared channel once per branch that reads it (flat positions: all
    # branches 1x1): MACs = 16 positions x (sum over branches of inputs x width + pool inputs x proj)
    fitted = fit_budget(lambda f: module_from_discovery(loaded, width_scale=f), 200_000, (4, 4))
    assert all(b.kernel_size == 1 for b in fitted.branches)
    by_hand = 16 * (sum(len(b.inputs) * b.width for b in fitted.branches)
                    + fitted.pool.n_inputs(48) * fitted.pool.projection)
    assert module_macs(fitted, (4, 4)) == by_hand
    assert sum(len(b.inputs) for b in fitted.branches) > len(set().union(*reads))  # overlap counted
    assert abs(by_hand - 200_000) <= 0.02 * 200_000


def test_overlapping_discovery_file_is_checked(tmp_path):
    base = from_labels([0, 0, 1, -1], [1, 1], neighbourhoods=[[0, 1, 2], [1, 2]]).to_dict()
    assert base["overlapping"] is True and base["labels"] == [0, 0, 1, -1]
    validate(base)
    flat = dict(base, overlapping=False)
    with pytest.raises(SparsenetError, match="disagree with 'labels'"):
        validate(flat)
    flat["labels"] = [0, 0, 0, -1]
    with pytest.raises(SparsenetError, match="overlapping"):
        validate(flat)
    wrong = json.loads(json.dumps(base))
    wrong["labels"][0] = 1  # channel 0 is only in cluster 0 but names cluster 1 as primary
    with pytest.raises(SparsenetError, match="primary cluster"):
        validate(wrong)


def test_cli_discover_method_arora_then_build(tmp_path, capsys):
    assert "arora" in METHODS
    sample = arora_layer(4800, 16, 48, degree=6, density=0.05, random_state=1)
    acts = tmp_path / "acts.npy"
    np.save(acts, _maps(sample, 300).astype(np.float32))
    out = tmp_path / "run"
    assert main(["discover", "--activations", str(acts), "--method", "arora", "--permutations", "3",
                 "--resamples", "0", "--out", str(out)]) == 0
    data = json.loads((out / "discovery.json").read_text())
    assert data["overlapping"] is True and data["settings"]["method"] == "arora"
    assert (out / "membership.png").is_file() and "overlap" in (out / "report.md").read_text()
    truth = [t for t in sample.neighbourhoods(0) if len(t) >= 2]
    assert score_layer(truth, [c["channels"] for c in data["clusters"]]).mean_jaccard >= 0.85
    assert main(["build", "--discovery", str(out)]) == 0
    assert (out / "spec.json").is_file()
    capsys.readouterr()


def test_cli_refuses_an_unknown_method_by_name(tmp_path, capsys):
    acts = tmp_path / "acts.npy"
    np.save(acts, np.zeros((4, 3, 2, 2), np.float32))
    assert main(["discover", "--activations", str(acts), "--method", "aurora", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "aurora" in err and "arora" in err


def test_arora_refuses_channel_stats_and_structureless_data():
    from sparsenet.stats import ChannelStats

    rng = np.random.default_rng(0)
    Y = (rng.random((2000, 20)) < 0.1).astype(np.float64)
    with pytest.raises(SparsenetError, match="no neighbourhood"):
        CorrelationAnalyzer(method="arora", n_permutations=0, n_resamples=0).fit(Y)
    with pytest.raises(SparsenetError, match="needs the samples"):
        CorrelationAnalyzer(method="arora").fit(ChannelStats().partial_fit(Y))
    with pytest.raises(SparsenetError, match="cofiring_alpha"):
        CorrelationAnalyzer(method="arora", cofiring_alpha=1.5).fit(Y)


def _brute_pair_sets(Y, graph, third=None, pairs_of=None):
    """Oracle for pair_neighbourhoods: every triple counted sample by sample (the third unit's
    firing read from ``third`` when given)."""
    from sparsenet.analyser.arora import MEMBER_FRACTION, STRONGEST_FLOOR

    C = graph.shape[0]
    third = Y if third is None else third
    out = {}
    for u in range(C):
        for v in range(u + 1, C):
            if not graph[u, v] or (pairs_of is not None and not pairs_of[u, v]):
                continue
            n_uv = sum(1 for row in Y if row[u] and row[v])
            common = [w for w in range(C) if w not in (u, v) and graph[u, w] and graph[v, w]]
            n_uvw = {w: sum(1 for row, t in zip(Y, third) if row[u] and row[v] and t[w]) for w in common}
            strongest = max(n_uvw.values(), default=0)
            out[(u, v)] = {u, v} | {w for w in common if n_uvw[w] > MEMBER_FRACTION * strongest
                                    and n_uvw[w] > STRONGEST_FLOOR * n_uv}
    return out


def test_fast_counts_and_pair_sets_match_a_loop_over_samples():
    from sparsenet.analyser.arora import cofiring_counts, pair_neighbourhoods

    net = arora_network(400, 3, (6, 14), degree=2, top_sparsity=0.2, random_state=5)
    Y = net.observed.astype(np.uint8)
    counts = cofiring_counts(Y)
    loop = np.array([[sum(1 for row in Y if row[u] and row[v]) for v in range(14)] for u in range(14)])
    np.testing.assert_array_equal(counts, loop)
    graph = cofiring_graph(counts, Y.shape[0])
    pairs, sets = pair_neighbourhoods(Y, graph)
    oracle = _brute_pair_sets(Y, graph)
    assert len(pairs) == len(oracle) > 3
    assert any(len(m) > 2 for m in oracle.values())  # some sets hold a third unit: the rule is exercised
    # and some third unit joins below 3/4 of the pair's joint firings: the vote relative to the
    # pair's strongest third unit (not to n_uv) decides it
    diluted = [(u, v, w) for (u, v), m in oracle.items() for w in m - {u, v}
               if counts[u, v] and sum(1 for row in Y if row[u] and row[v] and row[w]) <= 0.75 * counts[u, v]]
    assert diluted
    for (u, v), row in zip(pairs, sets):
        assert set(np.flatnonzero(row)) == oracle[(int(u), int(v))]
    # the second pass's form: some pairs only, third units read from another firing matrix
    rng = np.random.default_rng(0)
    third = Y & (rng.random(Y.shape) < 0.7)
    some = rng.random(graph.shape) < 0.5
    pairs, sets = pair_neighbourhoods(Y, graph, pairs_of=some | some.T, third=third)
    oracle = _brute_pair_sets(Y, graph, third, some | some.T)
    assert len(pairs) == len(oracle) > 3 and any(len(m) > 2 for m in oracle.values())
    for (u, v), row in zip(pairs, sets):
        assert set(np.flatnonzero(row)) == oracle[(int(u), int(v))]


def test_group_by_leader_matches_a_sequential_loop():
    from sparsenet.analyser.arora import _group_by_leader

    rng = np.random.default_rng(0)
    base = rng.random((12, 30)) < 0.2
    rows = base[rng.integers(0, 12, 300)] ^ (rng.random((300, 30)) < 0.04)  # noisy copies
    rows = rows[rows.sum(axis=1) > 0]
    sizes = rows.sum(axis=1)
    leaders, expect = [], []
    for r, size in zip(rows, sizes):  # the rule as stated: first earlier leader with Jaccard > 1/2
        hit = [g for g, lead in enumerate(leaders) if 2 * (lead & r).sum() > (lead | r).sum()]
        if not hit:
            leaders.append(r)
        expect.append(hit[0] if hit else len(leaders) - 1)
    got = _group_by_leader(rows, sizes, block=16)  # small blocks: leaders found in earlier blocks and the same block
    np.testing.assert_array_equal(got, expect)
    assert len(leaders) > 12



def test_unique_rows_matches_numpy_unique_across_word_boundaries():
    from sparsenet.analyser.arora import _unique_rows

    rng = np.random.default_rng(1)
    for width in (3, 64, 65, 130):  # inside one 64-bit word, exactly one, and spanning words
        rows = rng.random((400, width)) < 0.05
        rows[200:300] = rows[:100]  # repeated rows
        rows[300, -1] = True  # rows differing only in the last bit
        rows[301] = rows[300]
        rows[301, -1] = False
        distinct, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        got = _unique_rows(rows)
        np.testing.assert_array_equal(got[0], distinct)
        np.testing.assert_array_equal(got[1], inverse.ravel())
        np.testing.assert_array_equal(got[2], counts)


def test_drop_cousin_pairs_matches_a_loop_and_drops_cousins():
    """Oracle: the both-sided reverse-membership test, counted triple by triple."""
    from scipy.stats import binom

    from sparsenet.analyser.arora import MEMBER_FRACTION, cofiring_counts, drop_cousin_pairs

    net = arora_network(3000, 4, (8, 24), degree=(3, 1), top_sparsity=0.05, random_state=1)
    Y = net.observed.astype(np.uint8)
    C = Y.shape[1]
    counts = cofiring_counts(Y)
    graph = cofiring_graph(counts, Y.shape[0])
    sets = _brute_pair_sets(Y, graph)
    tests = []  # (u, v, p-value) seen from u's side
    for (a, b), members in sets.items():
        for u, v in ((a, b), (b, a)):
            for w in members - {a, b}:
                n_uw = sum(1 for row in Y if row[u] and row[w])
                n_uvw = sum(1 for row in Y if row[u] and row[v] and row[w])
                tests.append((u, v, binom.cdf(n_uvw, n_uw, MEMBER_FRACTION)))
    rejected = {(u, v) for u, v, p in tests if p <= 0.05 / len(tests)}
    expect = graph.copy()
    for u, v in rejected:
        if (v, u) in rejected:
            expect[u, v] = expect[v, u] = False
    pruned = drop_cousin_pairs(Y, graph, counts)
    np.testing.assert_array_equal(pruned, expect)
    # one parent per bottom unit: siblings share a middle unit, cousins only a top unit
    mid = net.weights[1] > 0
    sib = (mid.astype(int) @ mid.T.astype(int)) > 0
    np.fill_diagonal(sib, False)
    cousins = graph & ~sib
    assert cousins.sum() > 0 and (pruned & cousins).sum() < cousins.sum() / 2  # most cousins dropped
    assert (pruned & sib).sum() == (graph & sib).sum()  # no sibling pair lost


def test_drop_explained_sets_drops_a_set_held_together_by_other_causes():
    """Three causes driven together by a grandparent make one child of each a co-firing triple
    (a fixed point of its own pairs); once the causes are kept, the triple's co-firing is
    explained and it goes, while a real three-unit cause stays.  Oracle: the test pair by pair."""
    from scipy.stats import binom

    from sparsenet.analyser.arora import drop_explained_sets

    rng = np.random.default_rng(0)
    M = 4000
    grand = rng.random(M) < 0.03
    causes = rng.random((M, 4)) < 0.04
    causes[:, :3] |= grand[:, None]  # a, b, c co-fire through the grandparent; d is alone
    real = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 12), np.arange(12, 15)]
    Y = np.zeros((M, 15), dtype=np.uint8)
    for k, members in enumerate(real):
        Y[:, members] = causes[:, [k]]
    Y |= (rng.random(Y.shape) < 0.01).astype(np.uint8)  # chance firing
    virtual = np.array([0, 4, 8])
    sets = real + [virtual]
    graph = np.ones((15, 15), dtype=bool)  # every pair of a set counts as related here
    kept, support = drop_explained_sets(Y, graph, sets, np.array([6, 6, 6, 3, 3]))
    assert [list(s) for s in kept] == [list(s) for s in real] and list(support) == [6, 6, 6, 3]

    # the virtual triple, tested by hand against the four kept causes
    on = [Y[:, s].sum(axis=1) * 2 > len(s) for s in real]
    caused = {u: on[u // 4] for u in virtual}
    n_tests = sum(len(s) * (len(s) - 1) // 2 for s in sets)  # all pairs related
    pvalues = []
    for i, u in enumerate(virtual):
        for v in virtual[i + 1:]:
            rest = ~(caused[u] & caused[v])
            m = int(rest.sum())
            yu, yv = (Y[:, u] > 0) & rest, (Y[:, v] > 0) & rest
            p = yu.sum() / m * (yv.sum() / m)
            n = int((yu & yv).sum())
            pvalues.append(binom.sf(n - 1, m, p) if n > m * p else 1.0)
    assert max(pvalues) > 0.05 / n_tests  # explained: not significant once the causes are off
    # without the real causes nothing explains it: the triple is kept
    alone, _ = drop_explained_sets(Y, graph, [virtual], np.array([3]))
    assert len(alone) == 1


def test_drop_explained_sets_tests_only_the_related_pairs_of_a_set():
    """A set's members joined by votes need not co-fire significantly with each other; only the
    pairs whose co-firing was significant (the graph's edges) are tested again."""
    from sparsenet.analyser.arora import drop_explained_sets

    rng = np.random.default_rng(1)
    M = 3000
    cause = rng.random(M) < 0.05
    Y = np.zeros((M, 4), dtype=np.uint8)
    Y[:, :3] = cause[:, None]
    Y[:, 3] = rng.random(M) < 0.3  # fires independently of the others
    members = [np.arange(4)]
    related = np.ones((4, 4), dtype=bool)
    related[3, :] = related[:, 3] = False
    assert len(drop_explained_sets(Y, related, members, np.array([3]))[0]) == 1
    assert len(drop_explained_sets(Y, np.ones((4, 4), dtype=bool), members, np.array([3]))[0]) == 0


def _pair_sets(pairs, named, n_units: int = 10) -> np.ndarray:
    """(E, n_units) bool: row e holds the units ``named(i, j)`` by the pair (i, j) = pairs[e]."""
    sets = np.zeros((len(pairs), n_units), dtype=bool)
    for row, (i, j) in enumerate(pairs):
        sets[row, named(i, j)] = True
    return sets


def test_merge_keeps_a_cause_that_holds_virtual_causes_and_no_pruned_union():
    from sparsenet.analyser.arora import merge_neighbourhoods

    # one cause {0..7}; {0, 1, 2} and {3, 4, 5} also share a second parent, so their own pairs'
    # sets name only each other (two virtual causes inside the real one, covering 6 of its 8)
    pairs = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)])
    sets = _pair_sets(pairs, lambda i, j: [0, 1, 2] if j < 3 else [3, 4, 5] if 3 <= i and j < 6 else range(8))
    merged, support = merge_neighbourhoods(pairs, sets)
    assert [tuple(m) for m in merged] == [(0, 1, 2), (0, 1, 2, 3, 4, 5, 6, 7), (3, 4, 5)]
    assert list(support) == [3, 22, 3]  # the real cause: 22 of its 28 pairs

    # two causes {0, 1, 2} and {3, 4, 5} under one grandparent; each cross pair names the union
    def grandparent(i, j):
        return [0, 1, 2] if j < 3 else [3, 4, 5] if i >= 3 else range(6)

    six = pairs[pairs[:, 1] < 6]
    # after the cousin rule left 4 of the 9 cross pairs: the union is no fixed point (4 of its 10 pairs)
    left = np.array([(i, j) for i, j in six if j < 3 or i >= 3 or (i, j) in {(0, 3), (1, 4), (2, 5), (0, 5)}])
    merged, support = merge_neighbourhoods(left, _pair_sets(left, grandparent))
    assert [tuple(m) for m in merged] == [(0, 1, 2), (3, 4, 5)] and list(support) == [3, 3]
    # with all 9 cross pairs left (no cousin pruned: units with one excitatory parent) the union is
    # a fixed point and stays beside its parts: the cost of having no composites rule
    merged, support = merge_neighbourhoods(six, _pair_sets(six, grandparent))
    assert [tuple(m) for m in merged] == [(0, 1, 2), (0, 1, 2, 3, 4, 5), (3, 4, 5)]


def _correlated_causes(seed, M=6000):
    """Six causes; a (children 10-13) fires mostly while b (children 0-9) is on, P(b | a) about
    3/4, P(a | b) about 1/10; each child misses 3 % of its cause's firings and fires by chance 1 %."""
    rng = np.random.default_rng(seed)
    b = rng.random(M) < 0.06
    a = b & (rng.random(M) < 0.1) | (rng.random(M) < 0.002)
    causes = np.column_stack([b, a, rng.random((M, 4)) < 0.05])
    true = [np.arange(0, 10), np.arange(10, 14)] + [np.arange(14 + 4 * i, 18 + 4 * i) for i in range(4)]
    Y = np.zeros((M, 30), dtype=np.uint8)
    for k, members in enumerate(true):
        Y[:, members] |= causes[:, [k]]
    Y &= (rng.random(Y.shape) >= 0.03).astype(np.uint8)
    Y |= (rng.random(Y.shape) < 0.01).astype(np.uint8)
    return Y, true


def test_third_units_come_from_the_tested_graph_not_the_pruned_one():
    """The cousin rule picks the pairs that make sets; it does not decide which units co-fire with
    a pair.  Drop every pair of one true child v except one (as the rule does when a hub third
    unit rejects real sibling pairs): with the third units read from the pruned graph v is named by
    its one remaining pair only and falls out of its cause's consensus; read from the tested graph,
    every pair of the cause names v again and the cause is recovered whole."""
    from sparsenet.analyser.arora import cofiring_counts, graph_neighbourhoods

    sample = arora_layer(3000, 16, 64, degree=6, density=0.05, random_state=0)
    Y = sample.observed.astype(np.uint8)
    tested = cofiring_graph(cofiring_counts(Y), len(Y))
    truth = _true_sets(sample)
    found, _ = graph_neighbourhoods(Y, tested)
    whole = [t for t in truth if len(t) >= 5 and any(np.array_equal(t, f) for f in found)]
    assert whole  # a cause recovered exactly from the full graph
    t = whole[0]
    v, keep = t[-1], t[0]
    pruned = tested.copy()
    for u in t[1:-1]:
        pruned[u, v] = pruned[v, u] = False
    assert pruned[keep, v]
    without, _ = graph_neighbourhoods(Y, pruned)
    with_tested, _ = graph_neighbourhoods(Y, pruned, tested=tested)
    assert not any(np.array_equal(t, f) for f in without)  # v lost: the old rule's failure
    assert any(np.array_equal(t, f) for f in with_tested)


def test_decoded_units_sharing_an_input_make_no_two_unit_cause():
    """Independent observed units, no cause above; twenty decoded units in pairs that share one
    input unit.  Each pair co-fires through the shared unit (a dependence the decoding makes), so
    the step finds ten two-unit "causes" from the decoded layer alone; told the inputs, none."""
    from sparsenet.analyser.arora import drop_shared_input_pairs

    rng = np.random.default_rng(0)
    Y = (rng.random((4000, 50)) < 0.3).astype(np.uint8)
    inputs = []
    for k in range(10):
        inputs += [np.array([5 * k, 5 * k + 1, 5 * k + 2]), np.array([5 * k + 2, 5 * k + 3, 5 * k + 4])]
    H = decode_hidden(Y, inputs)
    blind = arora_step(H)
    assert sorted(map(tuple, blind.neighbourhoods)) == [(2 * k, 2 * k + 1) for k in range(10)]
    assert arora_step(H, inputs=inputs).neighbourhoods == []
    # the rule itself: only two-unit sets with overlapping inputs go
    sets, support = [np.array([0, 1]), np.array([2, 4]), np.array([0, 2, 3])], np.array([5, 4, 3])
    kept, kept_support = drop_shared_input_pairs(sets, support, inputs)
    assert [tuple(m) for m in kept] == [(2, 4), (0, 2, 3)] and list(kept_support) == [4, 3]
    with pytest.raises(SparsenetError, match="one per column"):
        arora_step(H, inputs=inputs[:5])


def test_second_pass_recovers_a_cause_that_fires_mostly_with_another():
    """a's pair sets hold b's children (they fire in most of a's firings), so the first pass keeps
    b and no set of a; with b's children counted as third units only where b is off, a's pairs
    name a's children: the second pass adds exactly a, and nothing else."""
    from sparsenet.analyser.arora import cofiring_counts, drop_cousin_pairs, graph_neighbourhoods

    Y, true = _correlated_causes(0)
    counts = cofiring_counts(Y)
    graph = drop_cousin_pairs(Y, cofiring_graph(counts, len(Y)), counts)
    first, _ = graph_neighbourhoods(Y, graph, second_pass=False)
    both, _ = graph_neighbourhoods(Y, graph, second_pass=True)
    truth = {tuple(t) for t in true}
    assert sorted(map(tuple, first)) == sorted(truth - {tuple(true[1])})  # a is missed
    assert sorted(map(tuple, both)) == sorted(truth)
    assert sorted(map(tuple, arora_step(Y).neighbourhoods)) == sorted(truth)  # on in the step


def test_second_pass_adds_no_two_unit_fragment_of_a_recovered_cause():
    """b recovered without its child 9: each pair (x, 9), x in b, fires together exactly where b is
    on, so once b's members are masked there it has no third unit left.  Such two-unit sets (what
    an explained pair looks like in the second pass) are made but not returned."""
    from sparsenet.analyser.arora import cofiring_counts, pair_neighbourhoods, second_pass_sets

    Y, true = _correlated_causes(0)
    Y, true = Y[:, np.r_[0:10, 14:30]], [np.arange(0, 10)] + [np.arange(10 + 4 * i, 14 + 4 * i) for i in range(4)]
    graph = cofiring_graph(cofiring_counts(Y), len(Y))
    kept = [true[0][:-1]] + true[1:]
    assert second_pass_sets(Y, graph, kept)[0] == []
    b_on = decode_hidden(Y, [true[0][:-1]])[:, 0] > 0
    third = (Y > 0) & ~(b_on[:, None] & np.isin(np.arange(Y.shape[1]), true[0][:-1])[None, :])
    only = np.zeros_like(graph)
    only[true[0][:-1], 9] = only[9, true[0][:-1]] = True
    pairs, sets = pair_neighbourhoods(Y, graph, pairs_of=only, third=third)
    assert len(pairs) == 9 and (sets.sum(axis=1) == 2).all()  # the fragments the size rule drops
    pairs, sets = pair_neighbourhoods(Y, graph, pairs_of=only)  # unmasked: b's children vote
    assert (sets.sum(axis=1) == 10).all()


def test_explained_sets_either_mode_drops_a_set_explained_by_one_members_cause():
    """Units 4, 5 are missed children of the kept cause b = {0..3}: the set {0, 4, 5} co-fires
    only while b is on.  Masked where causes of u *and* v are on (4 and 5 have no kept cause)
    nothing is masked and it stays; masked where a cause of u *or* v is on (the second pass's
    sets) it is explained by b and goes, while b itself stays either way."""
    from sparsenet.analyser.arora import cofiring_counts, drop_explained_sets

    rng = np.random.default_rng(1)
    M = 3000
    b = rng.random(M) < 0.05
    Y = (rng.random((M, 6)) < 0.01).astype(np.uint8)  # independent noise
    Y[b] = 1
    graph = cofiring_graph(cofiring_counts(Y), M)
    sets, support = [np.arange(4), np.array([0, 4, 5])], np.array([6, 3])
    assert graph[np.ix_(sets[1], sets[1])].sum() == 6  # the candidate's pairs are all related
    both, _ = drop_explained_sets(Y, graph, sets, support)
    assert [tuple(s) for s in both] == [(0, 1, 2, 3), (0, 4, 5)]
    kept, _ = drop_explained_sets(Y, graph, sets, support, either_from=1)
    assert [tuple(s) for s in kept] == [(0, 1, 2, 3)]
