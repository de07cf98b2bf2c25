"""Contiguous clusters in grown networks: lay the producer's channels out in the order the next
module reads them, so each cluster is a slice (a view) instead of a gathered copy.

A module built from a discovery reads, per bucket (``modules.plan_buckets``), the channels of
its member clusters.  :func:`contiguous_inputs` orders the producer's channels bucket by bucket,
member by member (then the channels no cluster branch reads) and relabels the module's inputs
to match, so each bucket's gather becomes a ``narrow``.  The producer then emits that order:

* a module producer writes its branch outputs straight into the permuted positions
  (``ModuleSpec.output_order``; the same copies as the concatenation it replaces);
* the stem's last conv has its trained weights, bias and batch norm permuted
  (:func:`permute_stem_state`; free).

The network computes the same function (the producer's channels are only renamed); ``grow``
applies both (``sparsenet/grow.py``).  The order is stored in the new module's
``provenance["input_order"]`` so a resumed growth re-applies it.
"""

from __future__ import annotations

from dataclasses import replace

from sparsenet.builder.spec import ModuleSpec, NetworkSpec
from sparsenet.errors import SparsenetError

__all__ = ["contiguous_inputs", "compose_output_order", "permute_stem_state", "lay_out_network"]


def contiguous_inputs(spec: ModuleSpec, pad_tolerance: float | None = None) -> tuple[list[int], ModuleSpec] | None:
    """(order, relabelled spec): new producer channel i is old channel ``order[i]``; the spec's
    inputs renamed so each bucket's clusters are consecutive.  None where nothing is gained or it
    cannot be done (full connectivity; branches sharing channels, e.g. overlapping clusters)."""
    from sparsenet.builder.modules import DEFAULT_PAD_TOLERANCE, plan_buckets

    if spec.connectivity != "cluster":
        return None
    reads = [list(b.inputs) for b in spec.branches if b.inputs is not None]
    flat = [c for r in reads for c in r]
    if len(flat) != len(set(flat)):
        return None
    order: list[int] = []
    for bucket in plan_buckets(spec, DEFAULT_PAD_TOLERANCE if pad_tolerance is None else pad_tolerance):
        for i in bucket.members:
            if spec.branches[i].inputs is not None:
                order += list(spec.branches[i].inputs)
    order += [c for c in range(spec.in_channels) if c not in set(order)]
    pos = {c: i for i, c in enumerate(order)}
    branches = tuple(b if b.inputs is None else replace(b, inputs=tuple(pos[c] for c in b.inputs))
                     for b in spec.branches)
    pool = spec.pool
    if pool is not None and pool.inputs is not None:
        pool = replace(pool, inputs=tuple(sorted(pos[c] for c in pool.inputs)))
    return order, replace(spec, branches=branches, pool=pool, provenance={**spec.provenance, "input_order": order})


def compose_output_order(producer: ModuleSpec, order) -> ModuleSpec:
    """``producer`` emitting its current output channel ``order[i]`` as channel i."""
    if sorted(order) != list(range(producer.out_channels)):
        raise SparsenetError(f"an output order of {producer.out_channels} channels must list each of "
                             f"0..{producer.out_channels - 1} once")
    base = producer.output_order or tuple(range(producer.out_channels))
    return replace(producer, output_order=tuple(base[i] for i in order))


def permute_stem_state(state: dict, network: NetworkSpec, order) -> dict:
    """A copy of ``state`` whose stem's last conv (weight, bias, batch norm) emits old channel
    ``order[i]`` as channel i."""
    import torch

    n = len(network.stem.widths)
    if n == 0:
        raise SparsenetError("the stem has no conv whose channels could be permuted")
    if sorted(order) != list(range(network.stem.widths[-1])):
        raise SparsenetError(f"a stem order must list each of 0..{network.stem.widths[-1] - 1} once")
    p = torch.as_tensor(list(order), dtype=torch.long)
    prefix = f"stem.{n - 1}."
    names = ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
    return {k: (v[p] if k.startswith(prefix) and k[len(prefix):] in names else v) for k, v in state.items()}


def lay_out_network(spec: NetworkSpec) -> tuple[NetworkSpec, list[int] | None]:
    """(``spec`` with every module laid out as ``grow`` now lays it out, the stem's order or None):
    for a network grown before, e.g. to time it.  Its trained weights fit after
    :func:`permute_stem_state` with the stem's order (pool projections read their inputs in the new
    names, so a trained module's pool columns would need the same renaming)."""
    modules, stem_order = [], None
    for i, module in enumerate(spec.modules):
        laid = contiguous_inputs(module)
        if laid is not None:
            order, module = laid
            if i == 0:
                stem_order = order
            else:
                modules[-1] = compose_output_order(modules[-1], order)
        modules.append(module)
    return replace(spec, modules=tuple(modules)), stem_order
