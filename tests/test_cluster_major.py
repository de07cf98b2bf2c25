"""The cluster-major layout, the fused conv + ReLU, batch-norm folding at inference and forms
chosen per batch size (builder/cluster_conv.py, builder/modules.py): every path computes the
same function as the reference forms, to float tolerance."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from sparsenet.bench.hardware import cluster_spec, contiguous_spec
from sparsenet.builder.cluster_conv import ClusterConv2d, ClusterMajor, as_dense, choose_form, conv2d_fused, form_for_batch
from sparsenet.builder.modules import build_module, build_network, choose_forms
from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec
from sparsenet.errors import SparsenetError


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_conv_equals_conv_then_relu(channels_last, relu):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 7, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(6, 5, 3, 3, generator=g), torch.randn(6, generator=g)
    ref = F.conv2d(x, w, b, padding=1)
    ref = ref.relu() if relu else ref
    with torch.no_grad():
        assert (conv2d_fused(x, w, b, padding=1, relu=relu) - ref).abs().max() < 1e-4
    # with autograd: the plain calls, gradients flow
    w.requires_grad_(True)
    y = conv2d_fused(x, w, b, padding=1, relu=relu)
    y.sum().backward()
    assert w.grad is not None and (y.detach() - ref).abs().max() < 1e-4


def test_cluster_major_split_and_dense():
    x = torch.randn(2, 10, 4, 4)
    cm = ClusterMajor.split(x, [3, 3, 4])
    assert cm.sizes == (3, 3, 4) and cm.shape == x.shape
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in cm)
    assert torch.equal(cm.dense(), x) and cm.dense().is_contiguous()
    assert cm.slices() == {(0, 3): 0, (3, 3): 1, (6, 4): 2}
    with pytest.raises(SparsenetError, match="do not add up"):
        ClusterMajor.split(x, [3, 3])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cluster_major_module_keeps_the_function_in_every_form(batch_norm):
    spec = replace(contiguous_spec(cluster_spec(24, 3)), batch_norm=batch_norm)
    torch.manual_seed(0)
    module = build_module(spec)
    if batch_norm:  # non-trivial running statistics, then eval: folded into the convs
        module.train()
        with torch.no_grad():
            for _ in range(3):
                module(torch.randn(4, 24, 5, 5) * 2 + 1)
    module.eval()
    x = torch.randn(2, 24, 5, 5)
    (bucket,) = module.buckets
    ref = bucket.run_form(x, "grouped").detach()  # autograd on: the unfolded reference path
    cm = ClusterMajor.split(x, [8, 8, 8])
    with torch.no_grad():
        for form in bucket.offered_forms:
            bucket.form = form
            assert (module(x) - ref).abs().max() < 1e-4, form
            module.cluster_major_output = True
            y = module(cm)
            module.cluster_major_output = False
            if form.startswith("per_cluster"):
                assert isinstance(y, ClusterMajor) and y.sizes == (8, 8, 8)
                assert bucket.pieces_of(cm) == [0, 1, 2]
                y = y.dense()
            else:
                assert isinstance(y, torch.Tensor)
            assert (y - ref).abs().max() < 1e-4, form
            assert (module(cm) - ref).abs().max() < 1e-4, form  # cluster-major in, NCHW out
    # measured in the cluster-major layout: whichever form is chosen, the same function
    choose_forms(module, (2, 5, 5), cluster_major=True)
    assert module.cluster_major_output and bucket.reads_cluster_major and bucket.writes_cluster_major
    with torch.no_grad():
        y = module(cm)
    y = as_dense(y)
    assert (y - ref).abs().max() < 1e-4


def test_folded_weights_follow_training_updates():
    spec = replace(contiguous_spec(cluster_spec(24, 3)), batch_norm=True)
    torch.manual_seed(0)
    module = build_module(spec).eval()
    (bucket,) = module.buckets
    bucket.form = "per_cluster_channels_last"
    x = torch.randn(2, 24, 5, 5)
    with torch.no_grad():
        before = module(x)
        bucket.conv[0].weight.mul_(2.0)  # an in-place update: the cache must notice
        bucket.conv[1].running_mean.add_(0.5)
        after = module(x)
    ref = bucket.run_form(x, "grouped").detach()
    assert (after - ref).abs().max() < 1e-4 and (after - before).abs().max() > 1e-3


def test_unmatched_cluster_major_input_is_used_dense():
    spec = contiguous_spec(cluster_spec(24, 3))
    torch.manual_seed(0)
    module = build_module(spec).eval()
    (bucket,) = module.buckets
    bucket.form = "per_cluster_channels_last"
    x = torch.randn(2, 24, 5, 5)
    cm = ClusterMajor.split(x, [12, 12])  # pieces that are not the bucket's clusters
    assert bucket.pieces_of(cm) is None
    with torch.no_grad():
        assert (module(cm) - module(x)).abs().max() < 1e-5


def test_forms_chosen_per_batch_size():
    layer = ClusterConv2d(12, [0, 5, 8], [5, 3, 4], [2, 6, 1], 3, padding=1)
    with torch.no_grad():
        layer.weight.normal_(), layer.bias.normal_()
    form = choose_form(layer, (4, 12, 6, 6), batches=(1,), repeats=1)
    assert set(layer.batch_forms) == {1, 4} and form == layer.batch_forms[4] == layer.form
    layer.batch_forms = {1: "per_cluster", 4: "grouped_channels_last"}
    assert form_for_batch(layer, 1) == "per_cluster" and form_for_batch(layer, 3) == "per_cluster"
    assert form_for_batch(layer, 4) == form_for_batch(layer, 64) == "grouped_channels_last"
    with torch.no_grad():
        for n in (1, 3, 5):
            x = torch.randn(n, 12, 6, 6)
            assert (layer(x) - layer.run_form(x, "per_cluster")).abs().max() < 1e-4
    # torch.fx traces with a proxy for the batch size: the main form, and the trace still runs
    from torch import fx

    traced = fx.symbolic_trace(layer)
    with torch.no_grad():
        x = torch.randn(2, 12, 6, 6)
        assert (traced(x) - layer.run_form(x, "per_cluster")).abs().max() < 1e-4
    choose_form(layer, (4, 12, 6, 6), measure=False)
    assert layer.batch_forms is None and form_for_batch(layer, 1) == layer.form


def test_network_passes_cluster_major_between_modules():
    stage = contiguous_spec(cluster_spec(24, 3))  # 3 clusters of 8 -> 3 outputs of 8: the next one's clusters
    net = NetworkSpec(stem=StemSpec(in_channels=1, widths=(24,), kernel_sizes=(3,), strides=(1,), pool=False),
                      modules=(stage, stage, stage), pool_after=(0,), head=HeadSpec(num_classes=3))
    torch.manual_seed(0)
    plain = build_network(net).eval()
    major = build_network(net, cluster_major=True).eval()
    major.load_state_dict(plain.state_dict())
    for block in major.blocks:
        for bucket in block.buckets:
            bucket.form = "per_cluster_channels_last"
    x = torch.randn(2, 1, 9, 9)
    seen = []
    hooks = [b.register_forward_hook(lambda m, a, y: seen.append(type(y).__name__)) for b in major.blocks]
    with torch.no_grad():
        assert (major(x) - plain(x)).abs().max() < 1e-4
    for h in hooks:
        h.remove()
    assert seen == ["ClusterMajor", "ClusterMajor", "Tensor"]  # the last block feeds the head: NCHW


def test_threaded_form_keeps_the_function_and_restores_the_thread_count():
    was = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        spec = contiguous_spec(cluster_spec(24, 3))
        torch.manual_seed(0)
        module = build_module(spec).eval()
        (bucket,) = module.buckets
        assert "per_cluster_threads" in bucket.offered_forms
        x = torch.randn(2, 24, 5, 5)
        ref = bucket.run_form(x, "grouped").detach()
        with torch.no_grad():
            assert (bucket.run_form(x, "per_cluster_threads") - ref).abs().max() < 1e-4
            module.cluster_major_output = True
            bucket.form = "per_cluster_threads"
            y = module(ClusterMajor.split(x, [8, 8, 8]))
            assert isinstance(y, ClusterMajor) and (y.dense() - ref).abs().max() < 1e-4
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(was)


def test_a_module_that_cannot_emit_cluster_major_is_not_timed_as_if_it_did():
    # an output order (or a pool branch) means the output is not the bucket's clusters in order:
    # forward concatenates, so the forms must be timed concatenating too
    spec = contiguous_spec(cluster_spec(24, 3))
    ordered = replace(spec, output_order=tuple(reversed(range(spec.out_channels))))
    torch.manual_seed(0)
    for s, emits in ((spec, True), (ordered, False)):
        module = build_module(s).eval()
        choose_forms(module, (2, 5, 5), cluster_major=True)
        (bucket,) = module.buckets
        assert module.can_emit_cluster_major is emits and bucket.writes_cluster_major is emits
        bucket.form, bucket.batch_forms = "per_cluster_channels_last", None
        x = torch.randn(2, 24, 5, 5)
        with torch.no_grad():
            y = module(ClusterMajor.split(x, [8, 8, 8]))
        assert isinstance(y, ClusterMajor) is emits and module.emits_cluster_major(2) is emits


def test_network_times_each_block_reading_what_its_producer_writes():
    stage = contiguous_spec(cluster_spec(24, 3))
    net = NetworkSpec(stem=StemSpec(in_channels=1, widths=(24,), kernel_sizes=(3,), strides=(1,), pool=False),
                      modules=(stage, stage, stage), pool_after=(), head=HeadSpec(num_classes=3))
    torch.manual_seed(0)
    major = build_network(net, measure_at=(2, 5, 5), cluster_major=True)
    reads = [b.buckets[0].reads_cluster_major for b in major.blocks]
    writes = [b.buckets[0].writes_cluster_major for b in major.blocks]
    # the stem writes NCHW; a block reads cluster-major only where the one before it chose a form
    # that emits so; the last block feeds the head, so it writes NCHW
    assert reads == [False] + [major.blocks[i - 1].emits_cluster_major(2) for i in (1, 2)]
    assert writes == [True, True, False]
    plain = build_network(net, measure_at=(2, 5, 5))
    assert all(not (b.buckets[0].reads_cluster_major or b.buckets[0].writes_cluster_major) for b in plain.blocks)
    # one cluster: no per-cluster form is offered, so no block can emit, and none is timed reading so
    one = contiguous_spec(cluster_spec(24, 1))
    single = build_network(replace(net, modules=(one, one, one)), measure_at=(2, 5, 5), cluster_major=True)
    assert not any(b.can_emit_cluster_major or b.buckets[0].reads_cluster_major or b.buckets[0].writes_cluster_major
                   for b in single.blocks)


@pytest.mark.parametrize("cluster_major", [False, True])
def test_hooks_on_a_bucket_see_its_output(cluster_major):
    # discover, record and lesion hook any named layer: a bucket is one (called as a module)
    from sparsenet.recording import iter_activations

    stage = contiguous_spec(cluster_spec(24, 3))
    net = NetworkSpec(stem=StemSpec(in_channels=1, widths=(24,), kernel_sizes=(3,), strides=(1,), pool=False),
                      modules=(stage, stage), pool_after=(), head=HeadSpec(num_classes=3))
    torch.manual_seed(0)
    model = build_network(net, cluster_major=cluster_major).eval()
    for block in model.blocks:
        block.buckets[0].form = "per_cluster_channels_last"
    with torch.no_grad():
        (act,) = list(iter_activations(model, "blocks.1.buckets.0", [torch.randn(2, 1, 5, 5)]))
    assert tuple(act.shape) == (2, 24, 5, 5)


def test_threaded_form_is_offered_by_the_thread_count_when_timed():
    was = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        module = build_module(contiguous_spec(cluster_spec(24, 3))).eval()
        (bucket,) = module.buckets
        assert "per_cluster_threads" not in bucket.offered_forms
        torch.set_num_threads(2)  # built with one thread, timed with two: offered
        assert "per_cluster_threads" in bucket.offered_forms
    finally:
        torch.set_num_threads(was)


def test_forms_are_timed_at_batch_one_too_unless_told_otherwise():
    layer = ClusterConv2d(12, [0, 5, 8], [5, 3, 4], [2, 6, 1], 3, padding=1)
    choose_form(layer, (3, 12, 6, 6), repeats=1)
    assert set(layer.batch_forms) == {1, 3}
    choose_form(layer, (3, 12, 6, 6), repeats=1, batches=())
    assert layer.batch_forms is None
    choose_form(layer, (1, 12, 6, 6), repeats=1)  # batch 1 already: one size, no table
    assert layer.batch_forms is None
