"""apply: permutation folding, cluster connectivity, the realisation forms, refusals, the command."""

import json

import pytest
import torch
from torch import nn

from sparsenet.apply import apply_discovery, random_groups
from sparsenet.builder.cluster_conv import FORMS, ClusterConv2d, choose_form, fallback_form
from sparsenet.builder.rewrite import assign_outputs, capacities, cluster_mass, locate, permute_channels
from sparsenet.discovery.value import from_labels
from sparsenet.errors import SparsenetError


def _stack(batch_norm: bool, head: str = "conv") -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 12, 3, padding=1)]
    layers += [nn.BatchNorm2d(12)] if batch_norm else []
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.BatchNorm2d(12)] if batch_norm else []
    if head == "conv":
        layers += [nn.Conv2d(12, 10, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 4)]
    else:  # a linear layer reading each channel's 4 x 4 block after flatten
        layers += [nn.Flatten(), nn.Linear(12 * 16, 5)]
    net = nn.Sequential(*layers)
    for m in net.modules():  # batch norms with statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return net.eval()


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("head", ["conv", "linear"])
def test_permutation_folding_is_exact(batch_norm, head):
    net = _stack(batch_norm, head)
    x = torch.randn(5, 3, 8, 8)
    before = net(x)
    layer = "2" if batch_norm else "1"  # the ReLU after the first conv (and its batch norm)
    site = locate(net, layer, (3, 8, 8))
    assert site.producer == "0" and len(site.batch_norms) == (2 if batch_norm else 0)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1)).tolist()
    permute_channels(net, site, perm)
    assert (net(x) - before).abs().max() < 1e-5
    # and it did move the weights: channel i of the producer is old channel perm[i]
    assert not torch.equal(net[0].weight, _stack(batch_norm, head)[0].weight)


def _discovery(groups, channels, layer):
    labels = [-1] * channels
    for k, g in enumerate(groups):
        for c in g:
            labels[c] = k
    return from_labels(labels, [3] * len(groups), provenance={"layer": layer})


def test_apply_with_one_cluster_of_every_channel_is_the_same_function():
    net = _stack(True)
    d = _discovery([list(range(12))], 12, "2")
    applied, record = apply_discovery(net, d, (3, 8, 8), groups=[[5, 3, 0, 1, 2, 4, 11, 6, 7, 8, 9, 10]],
                                      measure=False)
    x = torch.randn(4, 3, 8, 8)
    assert (applied(x) - net(x)).abs().max() < 1e-5
    assert record["permutation"][:3] == [0, 1, 2]  # each group sorted


def _grads_by_output(layer: nn.Module, channels: int, shape=(2, 12, 6, 6)):
    """For each output channel: the input channels its value depends on (nonzero gradient)."""
    x = torch.randn(*shape, requires_grad=True)
    y = layer(x)
    deps = []
    for o in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, o].sum(), x, retain_graph=True)
        deps.append(set(torch.nonzero(g.abs().sum((0, 2, 3)) > 0).flatten().tolist()))
    return y, deps


@pytest.mark.parametrize("rule", ["balanced", "mass"])
def test_each_output_channel_depends_only_on_its_cluster(rule):
    net = _stack(False)
    groups = [[0, 3, 5, 7], [1, 2, 4], [6, 8, 9, 10, 11]]
    applied, record = apply_discovery(net, _discovery(groups, 12, "1"), (3, 8, 8), measure=False, assign=rule)
    perm, sizes = record["permutation"], record["cluster_sizes"]
    (consumer,) = record["consumers"]
    assert record["assignment"] == rule
    layer = applied.get_submodule(consumer["name"])
    assert isinstance(layer, ClusterConv2d)
    _, deps = _grads_by_output(layer, 12, (2, 12, 4, 4))
    pos = 0
    for j, m in zip(consumer["clusters_read"], consumer["out_sizes"]):
        for o in range(pos, pos + m):
            original = {perm[i] for i in deps[o]}  # back to the producer's original channel numbers
            assert original and original <= set(groups[j]), (o, original, groups[j])
        pos += m
    w = net[3].weight.detach().pow(2).sum((2, 3))
    reads = {}
    for o_new, o_old in enumerate(consumer["output_order"]):
        j = next(j for j in range(len(consumer["out_sizes"])) if o_new < sum(consumer["out_sizes"][:j + 1]))
        reads[o_old] = consumer["clusters_read"][j]
    if rule == "mass":  # each output reads the cluster holding most of its trained weight mass
        for o, j in reads.items():
            assert j == max(range(3), key=lambda k: float(w[o, groups[k]].sum()))
    else:  # 10 outputs over clusters of 4, 3, 5 channels: 3, 3 (largest remainder), 4 readers
        assert [list(reads.values()).count(j) for j in range(3)] == capacities(10, sizes) == [3, 3, 4]


def test_capacities_follow_cluster_sizes_and_sum_to_the_outputs():
    assert capacities(64, [14, 11, 18, 21]) == [14, 11, 18, 21]
    assert capacities(10, [1, 1, 1]) == [4, 3, 3]  # equal remainders: the earlier cluster first
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        sizes = torch.randint(1, 30, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g).tolist()
        out = int(torch.randint(0, 200, (1,), generator=g))
        caps = capacities(out, sizes)
        assert sum(caps) == out and all(abs(c - out * n / sum(sizes)) < 1 for c, n in zip(caps, sizes))
    with pytest.raises(SparsenetError, match="capacities need clusters"):
        capacities(5, [0, 0])


def test_balanced_assignment_keeps_the_most_mass_any_assignment_with_those_capacities_keeps():
    import itertools

    g = torch.Generator().manual_seed(3)
    sizes, starts = [3, 2, 1], [0, 3, 5]
    for trial in range(5):
        w = torch.randn(6, 6, 3, 3, generator=g) * torch.rand(6, 6, 1, 1, generator=g)
        mass = cluster_mass(w, starts, sizes)
        caps = capacities(6, sizes)
        best = max(sum(float(mass[o, j]) for o, j in enumerate(a))
                   for a in set(itertools.permutations([j for j, c in enumerate(caps) for _ in range(c)])))
        got = assign_outputs(w, starts, sizes, rule="balanced")
        assert [got.count(j) for j in range(3)] == caps
        assert abs(sum(float(mass[o, j]) for o, j in enumerate(got)) - best) < 1e-9
        assert assign_outputs(w, starts, sizes, rule="mass") == mass.argmax(1).tolist()
    with pytest.raises(SparsenetError, match="unknown output assignment 'nearest'.*balanced, mass"):
        assign_outputs(w, starts, sizes, rule="nearest")


def test_a_planted_consumer_is_recovered_where_the_mass_rule_collapses():
    """Outputs that each read one cluster (readers in proportion to cluster size), plus weaker weights
    of every output on the largest cluster (a strong, shared signal): the balanced rule recovers the
    planted readers; the mass rule sends most outputs to the largest cluster."""
    g = torch.Generator().manual_seed(0)
    sizes = [6, 4, 8, 12]
    starts = [sum(sizes[:j]) for j in range(4)]
    planted = [j for j, c in enumerate(capacities(60, sizes)) for _ in range(c)]
    planted = [planted[i] for i in torch.randperm(60, generator=g).tolist()]
    w = torch.zeros(60, 30, 3, 3)
    for o, j in enumerate(planted):
        w[o, starts[j]:starts[j] + sizes[j]] = torch.randn(sizes[j], 3, 3, generator=g)
        if j != 3:
            w[o, starts[3]:] = 0.8 * torch.randn(sizes[3], 3, 3, generator=g)
    assert assign_outputs(w, starts, sizes, rule="balanced") == planted
    collapsed = assign_outputs(w, starts, sizes, rule="mass")
    assert collapsed.count(3) > 30 and collapsed != planted


@pytest.mark.parametrize("in_sizes,out_sizes", [([4, 4, 4], [3, 3, 3]), ([5, 3, 4], [2, 6, 1])])
def test_every_form_computes_the_same_function(in_sizes, out_sizes):
    starts = [sum(in_sizes[:j]) for j in range(3)]
    layer = ClusterConv2d(12, starts, in_sizes, out_sizes, 3, padding=1)
    with torch.no_grad():
        layer.weight.normal_(), layer.bias.normal_()
    x = torch.randn(2, 12, 6, 6)
    ref = layer.run_form(x, "per_cluster")
    for form in FORMS:
        assert (layer.run_form(x, form) - ref).abs().max() < 1e-4, form
    chosen = choose_form(layer, (2, 12, 6, 6), measure=True, repeats=1)
    assert chosen in FORMS and (layer(x) - ref).abs().max() < 1e-4
    assert choose_form(layer, (2, 12, 6, 6), measure=False) == fallback_form(layer)
    assert fallback_form(layer) == ("grouped" if len(set(in_sizes)) == 1 else "per_cluster")
    _, deps = _grads_by_output(layer, 12)
    for j, (s, n) in enumerate(zip(starts, in_sizes)):
        for o in range(sum(out_sizes[:j]), sum(out_sizes[:j + 1])):
            assert deps[o] <= set(range(s, s + n))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.relu, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1)

    def forward(self, x):
        y = self.relu(self.conv1(x))
        return self.conv2(y) + y


def test_layers_it_cannot_rewrite_are_refused_by_name():
    d = _discovery([[0, 1, 2], [3, 4, 5]], 6, "relu")
    with pytest.raises(SparsenetError, match=r"reaches call_function add.*cannot rewrite"):
        apply_discovery(_Residual(), d, (3, 8, 8), measure=False)
    grouped = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3, groups=2))
    with pytest.raises(SparsenetError, match=r"reaches layer '2' \(Conv2d\), which apply cannot rewrite"):
        apply_discovery(grouped, _discovery([[0, 1, 2], [3, 4, 5]], 6, "1"), (3, 8, 8), measure=False)
    last = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
    with pytest.raises(SparsenetError, match="reaches the network's output directly"):
        apply_discovery(last, _discovery([[0, 1, 2], [3, 4, 5]], 6, "1"), (3, 8, 8), measure=False)
    net = _stack(False)
    with pytest.raises(SparsenetError, match="the discovery has 6 channels but layer '1' comes from '0' with 12"):
        apply_discovery(net, _discovery([[0, 1, 2], [3, 4, 5]], 6, "1"), (3, 8, 8), measure=False)
    with pytest.raises(SparsenetError, match="layer 'nope' is not a layer the network's forward calls"):
        apply_discovery(net, _discovery([[0, 1], [2]], 12, "nope"), (3, 8, 8), measure=False)
    over = from_labels([0, 0, 0, 1, 1, 0] + [-1] * 6, [3, 3], neighbourhoods=[[0, 1, 2, 5], [2, 3, 4]],
                       provenance={"layer": "1"})
    with pytest.raises(SparsenetError, match="overlapping clusters"):
        apply_discovery(net, over, (3, 8, 8), measure=False)


def test_random_groups_keep_sizes_and_channels():
    groups = [[0, 3, 5, 7], [1, 2], [6, 8, 9]]
    r = random_groups(groups, seed=3)
    assert [len(g) for g in r] == [4, 2, 3]
    assert sorted(c for g in r for c in g) == sorted(c for g in groups for c in g)
    assert r != groups and r == random_groups(groups, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An (untrained-weights) plaincnn checkpoint on digits and a discovery of its relu2."""
    from sparsenet.models import get_model
    from sparsenet.training.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("apply")
    torch.manual_seed(0)
    net = get_model("plaincnn", width=4)
    save_checkpoint(root / "ck" / "checkpoint.pt", model="plaincnn",
                    model_kwargs={"width": 4, "num_classes": 10, "in_channels": 1}, state_dict=net.state_dict(),
                    dataset="digits", input_shape=[1, 8, 8])
    _discovery([[0, 1, 5, 6], [2, 3, 4, 7]], 8, "features.relu2").save(root / "disc")
    return root


def test_apply_command_writes_a_loadable_checkpoint_and_the_metrics(trained, capsys):
    from sparsenet.cli import main
    from sparsenet.training.checkpoint import model_from_checkpoint

    out = trained / "out"
    assert main(["apply", "--checkpoint", str(trained / "ck"), "--discovery", str(trained / "disc"),
                 "--out", str(out), "--finetune-epochs", "1", "--no-measure"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    keys = {"macs_before", "macs_after", "params_before", "params_after", "accuracy_before", "accuracy_applied",
            "accuracy_after"}
    assert keys <= set(m) and set(m["control"]) == keys and set(m) == keys | {"control", "provenance"}
    assert m["macs_after"] < m["macs_before"] and m["control"]["macs_after"] == m["macs_after"]
    net, ckpt = model_from_checkpoint(out / "checkpoint.pt")
    assert ckpt["model"] == "applied" and isinstance(net.features.conv3, ClusterConv2d)
    model_from_checkpoint(out / "control")  # what every command calls to load a checkpoint


@pytest.mark.parametrize("args,message", [
    (["--discovery", "{r}/disc", "--checkpoint", "{r}/missing.pt"], "checkpoint not found"),
    (["--checkpoint", "{r}/ck", "--discovery", "{r}/none"], "no discovery file at"),
    (["--checkpoint", "{r}/ck", "--discovery", "{r}/disc", "--finetune-epochs", "-1"], "finetune_epochs must be"),
    # recorded in metrics.json even without fine-tuning: refused, not written as NaN
    (["--checkpoint", "{r}/ck", "--discovery", "{r}/disc", "--lr", "nan"], "lr must be a positive number, got nan"),
    (["--checkpoint", "{r}/ck", "--discovery", "{r}/disc", "--layer", "fc"],
     "walking back to the conv"),
])
def test_apply_command_refuses_bad_inputs_by_name(trained, capsys, args, message):
    from sparsenet.cli import main

    out = trained / "refused"
    assert main(["apply", *[a.format(r=trained) for a in args], "--out", str(out), "--no-measure"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("contiguous", [False, True])
def test_the_builders_chooser_keeps_the_function_whichever_form_it_picks(contiguous):
    from sparsenet.bench.hardware import cluster_spec, contiguous_spec
    from sparsenet.builder.modules import build_module

    spec = cluster_spec(24, 3)
    spec = contiguous_spec(spec) if contiguous else spec
    torch.manual_seed(0)
    module = build_module(spec, measure_at=(2, 5, 5)).eval()
    (bucket,) = module.buckets
    assert bucket.form in FORMS and (bucket.index is None) == contiguous  # contiguous: no gather
    x = torch.randn(2, 24, 5, 5)
    with torch.no_grad():
        ref = bucket.run_form(x, "grouped")
        for form in bucket.offered_forms:
            assert (bucket.run_form(x, form) - ref).abs().max() < 1e-4, form
        assert (module(x) - ref).abs().max() < 1e-4
    plain = build_module(spec)
    assert plain.forms() == ["grouped"]  # measurement off: the deterministic fallback
