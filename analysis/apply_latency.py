"""Latency of a network after `sparsenet apply` against the original, side by side (one run).

    python analysis/apply_latency.py BEFORE_CHECKPOINT APPLIED_CHECKPOINT [--threads N] [--remeasure]

``--breakdown`` also times, side by side, each network with its rewritten layers replaced by an
identity (where the layer keeps its channel count: the rest of the network, which the rewrite
does not shrink) and the applied layers' group convolutions alone on inputs already split per
group (no copy, no concatenation): the bound on what any realisation of those groups could reach.

``--remeasure`` times the applied layers' realisation forms again on this machine, at every
batch size timed here (what `sparsenet apply` now does at apply time, at batch 1 and 64), for a
checkpoint written before forms were chosen per batch size.

Prints, per batch size, time(applied) / time(original) and the applied network's share of the
original's multiply-adds; the issue's target is time ratio <= 1.1 x that share.
"""

from __future__ import annotations

import argparse

import torch

from sparsenet.timing import paired_ratio, time_side_by_side
from sparsenet.models.accounting import count_macs
from sparsenet.training.checkpoint import model_from_checkpoint


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("before")
    p.add_argument("applied")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", default="1,64")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--remeasure", action="store_true", help="choose the forms again here, per batch size")
    p.add_argument("--breakdown", action="store_true", help="also time the rest of the network and the bare group convs")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    base, info = model_from_checkpoint(a.before)
    applied, _ = model_from_checkpoint(a.applied)
    base.eval(), applied.eval()
    shape = tuple(info["input_shape"])
    share = count_macs(applied, shape) / count_macs(base, shape)
    batches = [int(b) for b in a.batches.split(",")]
    if a.remeasure:
        from sparsenet.builder.cluster_conv import ClusterConv2d, choose_form
        from sparsenet.builder.rewrite import _input_shape_of

        for name, m in applied.named_modules():
            if isinstance(m, ClusterConv2d):
                at = _input_shape_of(applied, name, shape, max(batches))
                choose_form(m, at, batches=tuple(b for b in batches if b != max(batches)))
    forms = [getattr(m, "batch_forms", None) or m.form for m in applied.modules() if hasattr(m, "form")]
    print(f"threads {a.threads}; multiply-add share {share:.3f}; forms {forms}")
    for n in batches:
        x = torch.randn(n, *shape)

        def run(model):
            def call():
                with torch.no_grad():
                    return model(x)
            return call

        cands = {"original": run(base), "applied": run(applied)}
        if a.breakdown:
            cands.update(_breakdown(base, applied, x, run))
        t = time_side_by_side(cands, repeats=a.repeats, min_time=0.02)
        r = paired_ratio(t["applied"], t["original"])
        rmin = t["applied"].min / t["original"].min
        print(f"batch {n}: applied / original time {r:.3f}; / multiply-add share {r / share:.3f} (target <= 1.1); "
              f"ratio of the fastest rounds {rmin:.3f} -> {rmin / share:.3f}")
        if a.breakdown:
            parts = {k: v.median for k, v in t.items()}
            print("   medians (ms): " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in parts.items()))
            rest = paired_ratio(t["original without the rewritten layers"], t["original"])  # paired, per round
            bare = paired_ratio(t["applied group convs alone"], t["original"])
            best = rest + bare
            print(f"   rewritten layers in the original: {1 - rest:.1%} of its time; the rest {rest:.1%}; "
                  f"bare group convs / original layers {bare / (1 - rest):.3f}")
            print(f"   bound with the bare group convs: (rest + bare) / original {best:.3f} -> / share "
                  f"{best / share:.3f}; with the rewritten layers free: rest / original {rest:.3f} -> / share "
                  f"{rest / share:.3f}")


def _breakdown(base, applied, x, run):
    """Candidates: the original with its rewritten layers replaced by identities (same channel
    counts only), and the applied layers' group convs alone on pre-split contiguous inputs."""
    import copy

    import torch.nn.functional as F
    from torch import nn

    from sparsenet.builder.cluster_conv import ClusterConv2d
    from sparsenet.builder.rewrite import _input_shape_of, _replace

    rest = copy.deepcopy(base)
    convs = []
    for name, m in applied.named_modules():
        if isinstance(m, ClusterConv2d):
            old = base.get_submodule(name)
            if old.in_channels != old.out_channels or old.stride not in (1, (1, 1)):
                raise SystemExit(f"--breakdown: {name} changes the channel count or size; no identity stand-in")
            _replace(rest, name, nn.Identity())
            shape = _input_shape_of(applied, name, tuple(x.shape[1:]), x.shape[0])
            z = torch.randn(*shape)
            pieces = [z.narrow(1, s, n).contiguous() for s, n in zip(m.starts, m.in_sizes)]
            weights = [(m.weight[r, :nj].detach().contiguous(), None if m.bias is None else m.bias[r].detach().contiguous())
                       for r, nj in zip(m.rows, m.in_sizes)]
            convs.append((m, pieces, weights))

    def bare():
        with torch.no_grad():
            return [F.conv2d(p, w, b, m.stride, m.padding, m.dilation)
                    for m, pieces, weights in convs for p, (w, b) in zip(pieces, weights)]

    return {"original without the rewritten layers": run(rest), "applied group convs alone": bare}


if __name__ == "__main__":
    main()
