"""Rewrite a trained network around one discovered layer: permute, then cluster connectivity.

Three steps, each a plain function on an ``nn.Module`` (weights change in place):

1. :func:`locate` traces the network with ``torch.fx`` and finds the **producer** (the
   ``Conv2d`` whose output the discovered layer is, or passes through channel-wise layers) and
   its **consumers**: every ``Conv2d`` or ``Linear`` reached from the producer through layers
   that act on each channel alone (activations, dropout, batch norm, pooling, ``flatten``).
   Anything else on the way (an addition, a concatenation, a reshape, a grouped conv) is refused
   by name: permuting channels through it would change the function.
2. :func:`permute_channels` reorders the producer's output channels (conv weight and bias, and
   every batch norm on the way: weight, bias, running mean and variance) and every consumer's
   input channels (for a ``Linear`` after ``flatten``, each channel's block of H*W features) by
   the same permutation.  The network computes the same function (to float rounding).
3. :func:`cluster_consumers` gives each consumer cluster connectivity.  With the clusters in
   contiguous slices, each output channel reads one cluster; its weights on the other clusters
   are dropped.  Which cluster (:func:`assign_outputs`, rule ``balanced``, the default): each
   cluster gets a number of readers in proportion to its size (:func:`capacities`, the builder's
   rule that widths follow cluster sizes), and under those numbers the outputs are assigned so
   the squared weight mass kept is largest (the least-squares change of the weights), an
   assignment problem solved exactly.  Rule ``mass``: each output reads the cluster holding most
   of its own squared weight mass, with no numbers imposed; on trained networks that sends most
   outputs to one large cluster (docs/apply.md).  Channels in no cluster (inactive, label -1)
   are put after the clusters and read by no one.  The consumer's output channels are then
   permuted so each cluster's readers are adjacent (propagated into the consumer's own
   consumers, as in step 2); where that is refused the original order is restored by one gather
   at the output.  The consumer becomes a ``ClusterConv2d`` (in the form
   :func:`~sparsenet.builder.cluster_conv.choose_form` measures fastest) or ``ClusterLinear``.

The structural part of step 3 (which module becomes what shape) is a plain JSON value
(:func:`rewrite_record`), so :func:`rebuild` reproduces the applied network from its base model
for the ``applied`` registry entry (``builder/applied.py``) and every command loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sparsenet.builder.cluster_conv import ClusterConv2d, ClusterLinear, choose_form
from sparsenet.builder.spec import ASSIGNMENTS, DEFAULT_ASSIGNMENT
from sparsenet.errors import SparsenetError

__all__ = ["Site", "locate", "cluster_order", "permute_channels", "capacities", "assign_outputs", "cluster_consumers",
           "rebuild", "Reordered"]

# layers that act on each channel alone: a permutation of channels commutes with them
_CHANNELWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                        nn.Hardswish, nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d,
                        nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_CHANNELWISE_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, torch.sigmoid, torch.tanh,
                          F.dropout, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_CHANNELWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous"}


@dataclass
class Site:
    """Where a permutation of one conv's output channels must be applied."""

    producer: str                                  # the Conv2d whose output channels are permuted
    channels: int                                  # its output channels
    batch_norms: list[str] = field(default_factory=list)              # BatchNorm2d layers on the way
    consumers: list[tuple[str, int]] = field(default_factory=list)    # (Conv2d/Linear name, features per channel)


def _trace(model: nn.Module, input_shape):
    from torch.fx import Tracer, GraphModule
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        graph = Tracer().trace(model)
        gm = GraphModule(model, graph)
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds for untraceable code
        raise SparsenetError(f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); apply rewrites networks whose forward "
                             "torch.fx can trace (no data-dependent control flow)") from None
    param = next(model.parameters())
    ShapeProp(gm).propagate(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    return gm


def _describe(node, modules) -> str:
    if node.op == "call_module":
        return f"layer {node.target!r} ({type(modules[node.target]).__name__})"
    return f"{node.op} {getattr(node.target, '__name__', node.target)!s} ({node.name})"


def _channelwise(node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _CHANNELWISE_MODULES)
    if node.op == "call_function":
        return node.target in _CHANNELWISE_FUNCTIONS
    return node.op == "call_method" and node.target in _CHANNELWISE_METHODS


def _is_flatten(node) -> bool:
    start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else None)
    if node.op == "call_function" and node.target is torch.flatten:
        return start == 1 and node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1) == -1
    if node.op == "call_method" and node.target == "flatten":
        return start == 1 and node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1) == -1
    return False


def _site_from(gm, node, channels: int, what: str) -> Site:
    """The batch norms and consumers reached from ``node`` (the producer conv's output)."""
    modules = dict(gm.named_modules())
    site = Site(node.target, channels)
    todo, seen = list(node.users), set()
    while todo:
        user = todo.pop(0)
        if user in seen:
            continue
        seen.add(user)
        if user.op == "call_module":
            mod = modules[user.target]
            if isinstance(mod, nn.BatchNorm2d):
                site.batch_norms.append(user.target)
                todo += list(user.users)
                continue
            if isinstance(mod, nn.Conv2d) and mod.groups == 1 and mod.in_channels == channels:
                site.consumers.append((user.target, 1))
                continue
            if isinstance(mod, nn.Linear) and user.args[0].meta.get("tensor_meta") is not None:
                feats = mod.in_features
                shape = user.args[0].meta["tensor_meta"].shape
                if len(shape) == 2 and feats % channels == 0 and feats == shape[1]:
                    site.consumers.append((user.target, feats // channels))
                    continue
            if isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1:
                todo += list(user.users)
                continue
        if _channelwise(user, modules) or _is_flatten(user):
            todo += list(user.users)
            continue
        if user.op == "output":
            raise SparsenetError(f"{what}: the output of {node.target!r} reaches the network's output directly; "
                                 "permuting its channels would change what the network returns")
        raise SparsenetError(f"{what}: the output of {node.target!r} reaches {_describe(user, modules)}, which apply "
                             "cannot rewrite; accepted on the way: channel-wise layers (activations, dropout, "
                             "batch norm, pooling, flatten) ending in Conv2d (groups=1) or Linear layers")
    if not site.consumers:
        raise SparsenetError(f"{what}: no Conv2d or Linear layer reads the output of {node.target!r}")
    return site


def locate(model: nn.Module, layer: str, input_shape) -> Site:
    """The producer conv of ``layer`` and everything a permutation of its channels touches."""
    gm = _trace(model, input_shape)
    modules = dict(gm.named_modules())
    nodes = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == layer]
    if layer not in modules or not nodes:
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        raise SparsenetError(f"layer {layer!r} is not a layer the network's forward calls; its conv layers: "
                             f"{', '.join(convs[:12]) or '(none)'}")
    if len(nodes) > 1:
        raise SparsenetError(f"layer {layer!r} is called {len(nodes)} times in the forward; apply needs one call")
    node = nodes[0]
    while not (node.op == "call_module" and isinstance(modules[node.target], nn.Conv2d)):
        if not (_channelwise(node, modules) or (node.op == "call_module"
                                                and isinstance(modules[node.target], nn.BatchNorm2d))):
            raise SparsenetError(f"layer {layer!r}: walking back to the conv that makes its channels, met "
                                 f"{_describe(node, modules)}; accepted: a Conv2d, or channel-wise layers after one")
        node = node.args[0]
    conv = modules[node.target]
    if conv.groups != 1:
        raise SparsenetError(f"layer {layer!r} comes from {node.target!r}, a grouped Conv2d (groups={conv.groups}); "
                             "its output channels cannot be permuted freely")
    return _site_from(gm, node, conv.out_channels, f"layer {layer!r}")


def cluster_order(discovery) -> tuple[list[int], list[int], list[int]]:
    """(permutation: new channel i is old channel ``perm[i]``, cluster sizes, slice starts).
    Clusters in discovery order, each cluster's channels ascending; inactive channels last."""
    if discovery.overlapping:
        raise SparsenetError("the discovery has overlapping clusters (method 'arora'): a channel in two clusters "
                             "cannot sit in two contiguous slices; apply needs a partition (method 'spectral')")
    perm = [c for cl in discovery.clusters for c in sorted(cl.channels)]
    perm += [c for c in range(discovery.channels) if c not in set(perm)]
    sizes = [cl.size for cl in discovery.clusters]
    starts = [sum(sizes[:j]) for j in range(len(sizes))]
    return perm, sizes, starts


def _get(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


@torch.no_grad()
def permute_channels(model: nn.Module, site: Site, perm) -> None:
    """Reorder the producer's output channels by ``perm`` (new i = old perm[i]) and every batch
    norm and consumer input on the way (in place; the function is unchanged)."""
    p = torch.as_tensor(list(perm), dtype=torch.long)
    if sorted(p.tolist()) != list(range(site.channels)):
        raise SparsenetError(f"a permutation of {site.channels} channels must list each of 0..{site.channels - 1} once")
    conv = _get(model, site.producer)
    conv.weight.copy_(conv.weight[p.to(conv.weight.device)])
    if conv.bias is not None:
        conv.bias.copy_(conv.bias[p.to(conv.bias.device)])
    for name in site.batch_norms:
        bn = _get(model, name)
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            if t is not None:
                t.copy_(t[p.to(t.device)])
    for name, per in site.consumers:
        mod = _get(model, name)
        cols = (p[:, None] * per + torch.arange(per)[None, :]).reshape(-1).to(mod.weight.device)
        mod.weight.copy_(mod.weight[:, cols])


def capacities(outputs: int, sizes) -> list[int]:
    """Readers per cluster in proportion to its size, summing to ``outputs`` (largest remainder:
    each cluster gets the floor of its share, the outputs left go to the largest remainders,
    ties to the earlier cluster)."""
    total = sum(sizes)
    if total <= 0 or outputs < 0:
        raise SparsenetError(f"capacities need clusters with channels and outputs >= 0; got sizes {list(sizes)}, "
                             f"outputs {outputs}")
    share = [outputs * n / total for n in sizes]
    caps = [int(q) for q in share]
    left = outputs - sum(caps)
    for j in sorted(range(len(sizes)), key=lambda j: (-(share[j] - caps[j]), j))[:left]:
        caps[j] += 1
    return caps


def cluster_mass(weight: torch.Tensor, starts, sizes, per: int = 1) -> torch.Tensor:
    """(outputs x clusters) squared weight mass of each output on each cluster's input channels
    (``weight`` is the consumer's, input channels already in cluster order)."""
    w = weight.detach().double().reshape(weight.shape[0], -1, per * (weight[0, 0].numel() if weight.dim() > 2 else 1))
    return torch.stack([w[:, s:s + n].pow(2).sum((1, 2)) for s, n in zip(starts, sizes)], 1)


def assign_outputs(weight: torch.Tensor, starts, sizes, per: int = 1, rule: str = DEFAULT_ASSIGNMENT) -> list[int]:
    """The cluster each output channel reads, by ``rule`` (see the module docstring): ``balanced``
    keeps the most squared weight mass with :func:`capacities` readers per cluster; ``mass`` gives
    each output the cluster holding most of its own mass (ties: the first cluster)."""
    if rule not in ASSIGNMENTS:
        raise SparsenetError(f"unknown output assignment {rule!r}; accepted: {', '.join(ASSIGNMENTS)}")
    mass = cluster_mass(weight, starts, sizes, per)
    if rule == "mass":
        return mass.argmax(1).tolist()  # argmax keeps the first of ties
    from scipy.optimize import linear_sum_assignment

    # one column per reader slot of each cluster: a square assignment problem, solved exactly
    slots = [j for j, c in enumerate(capacities(weight.shape[0], sizes)) for _ in range(c)]
    rows, cols = linear_sum_assignment(mass[:, slots].numpy(), maximize=True)
    out = [0] * weight.shape[0]
    for r, c in zip(rows.tolist(), cols.tolist()):
        out[r] = slots[c]
    return out


class Reordered(nn.Module):
    """A cluster-connectivity layer followed by one gather restoring the original output order
    (used only where the consumer's output channels cannot be permuted downstream)."""

    def __init__(self, inner: nn.Module, order):
        super().__init__()
        self.inner = inner
        self.register_buffer("order", torch.as_tensor(list(order), dtype=torch.long), persistent=False)

    def forward(self, x):
        y = self.inner(x)
        return y.index_select(1 if y.dim() > 2 else -1, self.order)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(_get(model, parent) if parent else model, leaf, new)


def _cluster_layer(old: nn.Module, starts, in_sizes, out_sizes, per: int, form: str) -> nn.Module:
    starts = [s * per for s in starts]
    in_sizes = [n * per for n in in_sizes]
    if isinstance(old, nn.Linear):
        return ClusterLinear(old.in_features, starts, in_sizes, out_sizes, bias=old.bias is not None)
    return ClusterConv2d(old.in_channels, starts, in_sizes, out_sizes, old.kernel_size, stride=old.stride,
                         padding=old.padding, dilation=old.dilation, bias=old.bias is not None, form=form)


def rebuild(model: nn.Module, record: dict) -> nn.Module:
    """Apply the structural part of a rewrite (``record`` from :func:`cluster_consumers`) to a
    freshly built base model: each consumer becomes its cluster layer, weights left to a state dict."""
    for r in record["consumers"]:
        old = _get(model, r["name"])
        if not isinstance(old, (nn.Conv2d, nn.Linear)):
            raise SparsenetError(f"applied network: {r['name']!r} is a {type(old).__name__} in the base model, "
                                 "not the Conv2d or Linear the rewrite was made for")
        new = _cluster_layer(old, r["starts"], r["in_sizes"], r["out_sizes"], r["per"], r.get("form", "grouped"))
        if r.get("batch_forms") and isinstance(new, ClusterConv2d):  # [[batch, form], ...] as measured
            new.batch_forms = {int(b): str(f) for b, f in r["batch_forms"]}
        if r.get("restore") is not None:
            new = Reordered(new, r["restore"])
        _replace(model, r["name"], new.to(old.weight.device))
    return model


def cluster_consumers(model: nn.Module, site: Site, sizes, starts, input_shape, *, measure: bool = True,
                      batch: int = 64, assign: str = DEFAULT_ASSIGNMENT) -> dict:
    """Step 3 (see the module docstring), in place; returns the rewrite record (plain values)."""
    if assign not in ASSIGNMENTS:  # before any layer is changed
        raise SparsenetError(f"unknown output assignment {assign!r}; accepted: {', '.join(ASSIGNMENTS)}")
    consumers = []
    for name, per in site.consumers:
        old = _get(model, name)
        reads = assign_outputs(old.weight, starts, sizes, per, assign)
        read = [j for j in range(len(sizes)) if j in reads]         # clusters some output reads
        order = [o for j in read for o in range(len(reads)) if reads[o] == j]
        out_sizes = [reads.count(j) for j in read]
        new = _cluster_layer(old, [starts[j] for j in read], [sizes[j] for j in read], out_sizes, per, "grouped")
        new.load_dense(old.weight.detach(), None if old.bias is None else old.bias.detach(), order)
        new.to(old.weight.device)
        restore = None
        if isinstance(old, nn.Conv2d):
            try:  # the consumer's outputs in cluster order: the layers after it read them permuted
                gm_site = locate(model, name, input_shape)
            except SparsenetError:
                gm_site = None
            if gm_site is not None:
                permute_channels(model, gm_site, order)
            else:
                restore = [order.index(o) for o in range(len(order))]
        elif order != list(range(len(order))):
            restore = [order.index(o) for o in range(len(order))]
        layer = new if restore is None else Reordered(new, restore)
        _replace(model, name, layer)
        if isinstance(new, ClusterConv2d):
            shape = _input_shape_of(model, name, input_shape, batch)
            choose_form(new, shape, measure=measure)  # at this batch and at batch 1 (form_for_batch)
        batch_forms = getattr(new, "batch_forms", None)
        consumers.append({"name": name, "kind": "conv" if isinstance(old, nn.Conv2d) else "linear",
                          "starts": [starts[j] for j in read], "in_sizes": [sizes[j] for j in read],
                          "out_sizes": out_sizes, "clusters_read": read, "per": per, "form": new.form,
                          "batch_forms": None if not batch_forms else [[b, f] for b, f in sorted(batch_forms.items())],
                          "restore": restore, "output_order": order})
    return {"producer": site.producer, "batch_norms": site.batch_norms, "assignment": assign, "consumers": consumers}


def _input_shape_of(model: nn.Module, name: str, input_shape, batch: int) -> tuple[int, ...]:
    """The shape of what ``name`` reads when the network runs at ``batch`` x ``input_shape``."""
    seen = {}

    def hook(module, args):  # returns None: the inputs pass unchanged
        seen.setdefault("shape", tuple(args[0].shape))

    handle = _get(model, name).register_forward_pre_hook(hook)
    param = next(model.parameters())
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    finally:
        handle.remove()
        model.train(was)
    return (batch,) + seen["shape"][1:]

