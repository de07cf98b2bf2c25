"""Built modules: connections restricted as specified, trainable, saveable, exportable, counted."""

import pytest
import torch

from sparsenet.models.accounting import count_macs, count_params
from sparsenet.builder.modules import MaskedConv2d, build_module, build_network, module_summary, plan_buckets
from sparsenet.errors import SparsenetError
from sparsenet.models.inception import GOOGLENET_INCEPTION, Inception
from sparsenet.builder.rules import module_from_inception
from sparsenet.builder.spec import (BranchSpec, HeadSpec, ModuleSpec, NetworkSpec, PoolSpec, StemSpec, module_macs,
                            module_params, network_macs, network_params)


def cluster_spec(batch_norm=False):
    # a 1x1 cluster, three 3x3 clusters of unequal sizes (padded into one grouped conv), a 5x5
    # cluster of one channel; channel 15 is inactive (read by nobody; the pool reads 0..13)
    return ModuleSpec(
        in_channels=16,
        branches=(BranchSpec(1, 4, None, (0, 5, 9)), BranchSpec(3, 5, 3, (1, 2, 3, 4)),
                  BranchSpec(3, 4, 2, (6, 7, 8)), BranchSpec(3, 5, 3, (10, 11, 12, 13)),
                  BranchSpec(5, 2, 1, (14,))),
        pool=PoolSpec(3, inputs=tuple(range(14))), connectivity="cluster", batch_norm=batch_norm)


def reached_channels(module, x, i):
    x = x.clone().requires_grad_(True)
    out = module._forward(x)[i]
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    return set((grad.abs().sum((0, 2, 3)) > 0).nonzero().flatten().tolist())


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cluster_connectivity_by_gradients(batch_norm):
    torch.manual_seed(0)
    spec = cluster_spec(batch_norm)
    module = build_module(spec)
    assert any(b.padded for b in module.plan), "the test should exercise a padded grouped conv"
    x = torch.randn(4, 16, 6, 6)
    for i, branch in enumerate(spec.branches):
        reached = reached_channels(module, x, i)
        assert reached == set(branch.inputs), (i, reached)   # exactly its cluster, nothing outside
    assert reached_channels(module, x, len(spec.branches)) == set(range(14))
    outs = module._forward(x)
    assert [o.shape[1] for o in outs] == [4, 5, 4, 5, 2, 3]
    assert torch.equal(module(x), torch.cat(outs, 1))


def test_full_connectivity_reads_everything():
    module = build_module(module_from_inception(12, 4, 3, 6, 2, 3, 2))
    x = torch.randn(2, 12, 5, 5)
    for i in range(4):
        assert reached_channels(module, x, i) == set(range(12))


def test_bucketing():
    equal = ModuleSpec(8, tuple(BranchSpec(3, 4, 2, (2 * j, 2 * j + 1)) for j in range(4)), connectivity="cluster")
    (bucket,) = plan_buckets(equal)
    assert bucket.groups == 4 and not bucket.padded          # one grouped conv, no waste
    conv = build_module(equal).buckets[0].conv[0]
    assert conv.groups == 4 and conv.mask is None
    spec = cluster_spec()
    assert [b.members for b in plan_buckets(spec, pad_tolerance=0)] == [(0,), (1, 3), (2,), (4,)]
    assert [b.members for b in plan_buckets(spec)] == [(0,), (1, 3, 2), (4,)]
    for b in plan_buckets(spec):
        assert b.padded_macs_per_pixel <= 1.25 * b.exact_macs_per_pixel
    with pytest.raises(SparsenetError, match="pad_tolerance must be a number >= 0"):
        plan_buckets(spec, pad_tolerance=-1)


def test_counts_match_accounting_and_googlenet():
    spec = module_from_inception(*GOOGLENET_INCEPTION["3a"])
    module = build_module(spec)
    reference = Inception(in_channels=192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    assert count_params(module) == module_params(spec) == count_params(reference)
    assert count_macs(module, (192, 7, 7)) == module_macs(spec, (7, 7)) == count_macs(reference, (192, 7, 7))
    equal = ModuleSpec(8, tuple(BranchSpec(3, 4, 2, (2 * j, 2 * j + 1)) for j in range(4)),
                       pool=PoolSpec(3, inputs=(0, 1, 2)), connectivity="cluster", batch_norm=True)
    built = build_module(equal)
    assert count_params(built) == module_params(equal)
    assert count_macs(built, (8, 5, 5)) == module_macs(equal, (5, 5))
    padded = build_module(cluster_spec())   # padding costs extra, as plan_buckets says
    extra = sum(b.padded_macs_per_pixel - b.exact_macs_per_pixel for b in padded.plan)
    assert count_macs(padded, (16, 5, 5)) == module_macs(cluster_spec(), (5, 5)) + 25 * extra


def small_network():
    first = ModuleSpec(8, (BranchSpec(1, 4), BranchSpec(3, 6, 3)), pool=PoolSpec(2))
    second = ModuleSpec(12, (BranchSpec(1, 3, None, (0, 1, 2, 3)), BranchSpec(3, 5, 2, (4, 5, 6, 7)),
                             BranchSpec(3, 5, 2, (8, 9, 10, 11))), pool=PoolSpec(2), connectivity="cluster",
                        batch_norm=True)
    return NetworkSpec(StemSpec(1, (8,), (3,), (1,), pool=True), (first, second), pool_after=(0,),
                       head=HeadSpec(num_classes=3, dropout=0.1))


def test_network_trains_and_masks_stay_zero():
    torch.manual_seed(0)
    spec = small_network()
    net = build_network(spec)
    assert count_params(net) == network_params(spec)
    assert count_macs(net, (1, 12, 12)) == network_macs(spec, (12, 12))
    x, y = torch.randn(8, 1, 10, 10), torch.randint(0, 3, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    module = build_module(cluster_spec())
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        module(torch.randn(2, 16, 5, 5)).sum().backward()
        opt.step()
    masked = [m for m in module.modules() if isinstance(m, MaskedConv2d) and m.mask is not None]
    assert masked and all(torch.all(m.weight[m.mask == 0] == 0) for m in masked)


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = cluster_spec(batch_norm=True)
    module = build_module(spec)
    module.train()
    module(torch.randn(8, 16, 5, 5))   # move BN running statistics
    torch.save(module.state_dict(), tmp_path / "m.pt")
    fresh = build_module(spec)
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    module.eval(), fresh.eval()
    x = torch.randn(3, 16, 5, 5)
    assert torch.equal(module(x), fresh(x))


def test_torch_export():
    torch.manual_seed(0)
    module = build_module(cluster_spec(batch_norm=True)).eval()
    x = torch.randn(2, 16, 6, 6)
    exported = torch.export.export(module, (x,))
    assert torch.allclose(exported.module()(x), module(x))


def test_placement_checks():
    spec = small_network()
    object.__setattr__(spec, "modules", (spec.modules[1], spec.modules[0]))   # bypass validation
    with pytest.raises(SparsenetError, match=r"modules\[0\]\.in_channels is 12; it must equal stem\.out_channels"):
        build_network(spec)
    with pytest.raises(SparsenetError, match=r"in_channels is 16; it must equal the channels of the layer it follows, which is 32"):
        build_module(cluster_spec(), in_channels=32)


def test_summary_text():
    text = module_summary(cluster_spec(), (6, 6))
    assert "16 -> 23 channels, connectivity cluster" in text
    assert f"multiply-adds at 6x6: {module_macs(cluster_spec(), (6, 6)):,}" in text
    assert "incl. zero-weight padding" in text and "3x3: 3 groups padded" in text


def test_draw_network_beside_reference(tmp_path):
    from sparsenet.builder.drawing import draw_comparison

    reference = module_from_inception(*GOOGLENET_INCEPTION["3a"])
    path = draw_comparison(small_network(), reference, tmp_path / "net.png", titles=("grown", "GoogLeNet 3a"))
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SparsenetError, match="titles must be two strings"):
        draw_comparison(cluster_spec(), reference, tmp_path / "x.png", titles=("one",))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_grouped_5x5_buckets_run_channels_last_with_the_same_result(batch_norm):
    """The speed path (grouped 5x5 buckets in channels-last, in-place ReLU) computes what the
    NCHW path computes, keeps cluster connectivity exact, trains, and returns NCHW."""
    torch.manual_seed(1)
    spec = ModuleSpec(
        in_channels=14,
        branches=(BranchSpec(3, 4, 2, (0, 1, 2)), BranchSpec(3, 4, 2, (3, 4, 5)),
                  BranchSpec(5, 3, 2, (6, 7, 8)), BranchSpec(5, 3, 2, (9, 10, 11)),
                  BranchSpec(5, 3, 2, (12, 13))),  # one padded grouped 5x5 bucket
        pool=PoolSpec(2), connectivity="cluster", batch_norm=batch_norm)
    module = build_module(spec)
    layouts = {(b.kernel_size, b.groups): fb.channels_last for b, fb in zip(module.plan, module.buckets)}
    assert layouts == {(3, 2): False, (5, 3): True}
    assert any(b.padded for b in module.plan if b.kernel_size == 5)
    x = torch.randn(3, 14, 7, 7)
    for i, branch in enumerate(spec.branches):
        assert reached_channels(module, x, i) == set(branch.inputs), i
    module.eval()
    with torch.no_grad():
        fast = module(x)
        for fb in module.buckets:
            fb.channels_last = False
        plain = module(x)
    assert fast.is_contiguous() and fast.shape == (3, spec.out_channels, 7, 7)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for fb in module.buckets:
        fb.channels_last = fb.conv[0].groups > 1 and fb.conv[0].kernel_size[0] >= 5
    module.train()
    loss = module(x).square().mean()
    loss.backward()  # in-place ReLUs leave autograd intact
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def test_init_is_googlenets_then_masked_weights_zeroed():
    """The builder initialises as GoogLeNet (``init_weights``, the same RNG draws), then zeroes
    the masked (padding) weights."""
    import copy

    from sparsenet.builder.modules import init_masked_weights
    from sparsenet.models.googlenet import init_weights

    torch.manual_seed(0)
    built = build_network(small_network())
    built.blocks.append(build_module(cluster_spec(batch_norm=True)))  # padded buckets too
    by_hand = copy.deepcopy(built)
    torch.manual_seed(7)
    init_masked_weights(built)
    torch.manual_seed(7)
    init_weights(by_hand)
    masked = [m for m in by_hand.modules() if isinstance(m, MaskedConv2d) and m.mask is not None]
    assert masked
    with torch.no_grad():
        for m in masked:
            m.weight.mul_(m.mask)
    expected = by_hand.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in built.state_dict().items())
