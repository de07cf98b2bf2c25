"""Contiguous clusters in grown networks (builder/layout.py): the producer emits its channels in
the order the next module reads them, so clusters are views (no gather) and the function is kept."""

import random

import pytest
import torch

from sparsenet.builder.layout import compose_output_order, contiguous_inputs, permute_stem_state
from sparsenet.builder.modules import build_network
from sparsenet.builder.rules import module_from_discovery
from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec, spec_from_dict, spec_to_dict
from sparsenet.discovery.value import from_labels
from sparsenet.errors import SparsenetError
from sparsenet.grow import GrowthConfig, _append


def _discovery(channels: int, seed: int):
    labels = [j % 4 for j in range(channels - 2)] + [-1, -1]  # 4 clusters, 2 inactive channels
    random.Random(seed).shuffle(labels)
    return from_labels(labels, [1, 3, 3, 5])


def _grown(layout: bool):
    """stem (8 ch) -> module 0 (clusters of the stem) -> module 1 (clusters of module 0), as grow appends them."""
    net = NetworkSpec(stem=StemSpec(in_channels=1, widths=(8,), kernel_sizes=(3,), strides=(1,), pool=True),
                      modules=(), head=HeadSpec(num_classes=3))
    orders = []
    for i in range(2):
        module = module_from_discovery(_discovery(net.features, seed=i), width_scale=1.0)
        if layout:
            order, module = contiguous_inputs(module)
            orders.append(order)
        net = _append(net, module, GrowthConfig(modules=2))
    return net, orders


def _gathers(model) -> int:
    return sum(b.index is not None for block in model.blocks for b in block.buckets) \
        + sum(block.pool is not None and block.pool.index is not None for block in model.blocks)


def _laid_state(state, plain, laid, orders):
    """``state`` of the plain network for the laid-out one: the stem permuted as grow does; each pool
    projection's columns follow its inputs, which the layout keeps ascending (a view) in new names."""
    state = permute_stem_state(state, laid, orders[0])
    for i, (p, q, order) in enumerate(zip(plain.modules, laid.modules, orders)):
        old = list(p.pool.inputs)
        cols = [old.index(order[c]) for c in q.pool.inputs]  # laid column j reads old channel order[inputs[j]]
        key = f"blocks.{i}.pool.proj.0.weight"
        state[key] = state[key][:, cols]
    return state


def test_a_laid_out_network_reads_slices_and_computes_the_same_function():
    plain, _ = _grown(layout=False)
    laid, orders = _grown(layout=True)
    stem_order, order0 = orders
    torch.manual_seed(0)
    a = build_network(plain).eval()
    b = build_network(laid).eval()
    b.load_state_dict(_laid_state(a.state_dict(), plain, laid, orders))
    x = torch.randn(3, 1, 12, 12)
    assert (a(x) - b(x)).abs().max() < 1e-5
    # the channels module 1 reads, renamed: module 0 emits them in the laid-out order
    ya, yb = a.blocks[0](a.stem(x)), b.blocks[0](b.stem(x))
    assert (yb - ya[:, order0]).abs().max() < 1e-5
    assert laid.modules[0].output_order == tuple(order0) and laid.modules[1].output_order is None
    # every bucket whose groups read equal numbers of channels, and the pool, read a view; the plain network gathers
    unequal = sum(len({n for n, _, _ in bk._groups}) > 1 for m in b.blocks for bk in m.buckets)
    assert _gathers(b) == unequal < _gathers(a)


def test_output_order_survives_json_and_bad_orders_are_refused():
    laid, _ = _grown(layout=True)
    again = spec_from_dict(spec_to_dict(laid))
    assert again.modules[0].output_order == laid.modules[0].output_order
    bad = spec_to_dict(laid)
    bad["modules"][0]["output_order"] = [0] * laid.modules[0].out_channels
    with pytest.raises(SparsenetError, match=r"output_order.*permutation of 0\.\."):
        spec_from_dict(bad)
    with pytest.raises(SparsenetError, match="must list each of"):
        compose_output_order(laid.modules[0], [0, 0, 1])
    full = module_from_discovery(_discovery(8, 0), connectivity="full")
    assert contiguous_inputs(full) is None  # every branch reads every channel: nothing to lay out


def test_build_network_measures_each_module_at_its_own_input_size():
    laid, _ = _grown(layout=True)
    torch.manual_seed(0)
    fallback = build_network(laid).eval()
    measured = build_network(laid, measure_at=(2, 12, 12)).eval()
    measured.load_state_dict(fallback.state_dict())
    x = torch.randn(2, 1, 12, 12)
    assert (measured(x) - fallback(x)).abs().max() < 1e-4
    assert all(f in b.offered_forms for block in measured.blocks for b, f in zip(block.buckets, block.forms()))
    with pytest.raises(SparsenetError, match=r"measure_at must be \(batch, H, W\)"):
        build_network(laid, measure_at=(2, 12))
