"""GoogLeNet's hardware argument, measured: one module with ``cluster`` connectivity realised
several ways, against the full dense convolution and against the ideal.

The module: C input channels in G equal clusters, one 3x3 branch per cluster reading only its
cluster (widths by the builder's rules: width = cluster size, 1x1 reduction
``round(0.542 * size)``), no pool branch (it is the same dense 3x3 pool + 1x1 projection in
every realisation, so it would only dilute the comparison), ReLU after every conv, H x W maps,
batch N.  Realisations (all compute the same function; checked once):

``dense``
    the same two conv layers with full connectivity (1x1 C -> G r, 3x3 G r -> G w): what a
    dense-only design would run.  Timed NCHW, channels-last, and channels-last with each ReLU
    fused into its conv (``dense_channels_last_fused``, the same oneDNN call the cluster-major
    form uses); the fastest of the three is the reference.
``masked_dense``
    the cluster connectivity as a dense conv whose weight is multiplied by a 0/1 block mask in
    every forward (``MaskedConv2d``): all the zeros are computed.
``sparse_csr``
    unstructured sparsity: both weights as ``torch.sparse`` CSR matrices (only the kept
    connections stored) multiplying the unfolded input (1x1: the N H W x C positions; 3x3:
    ``F.unfold`` im2col), as a sparse-matrix library would run it.
``sparsenet``
    ``build_module(spec)``: what the builder builds (``_FusedBranches``).
``sparsenet_cluster_major``
    the contiguous module (``contiguous_spec``) built with ``choose_forms(..., cluster_major=True)``:
    it reads its input as a cluster-major producer writes it (one channels-last tensor per
    cluster, ``ClusterMajor``) and returns its clusters' outputs the same way, for the next
    cluster-major reader (no copy, no concatenation); forms measured in that layout.
``sparsenet_cluster_major_nchw_out``
    the same, its output concatenated to one NCHW tensor (for a dense consumer).
forms (how the same grouped structure can be run; the builder uses the fastest):
    ``grouped_nchw`` (one gather, grouped 1x1 and 3x3 convs, NCHW), ``grouped_channels_last``
    (the same in channels-last, in-place ReLU), ``per_cluster`` and
    ``per_cluster_channels_last`` (a loop of G small dense conv stacks), ``bmm_unfold``
    (batched matrix products over the unfolded input).

``layout_sweep`` times one grouped conv stack NCHW against channels-last (layout copies
included) over cluster sizes, kernel sizes and batch sizes: the measurement behind the
builder's choice (channels-last for grouped 5x5 buckets, NCHW for 3x3).

The clusters' channels are scattered over the layer (a random assignment, as a discovery finds
them), so every realisation that groups them pays for the gather.

Reported: each time against ``dense`` and against the ideal ``dense x kept``, ``kept`` being
the fraction of dense multiply-adds the cluster connectivity keeps (1 / G here).  Targets:
``sparse_csr / sparsenet >= 5`` and ``sparsenet / ideal <= 1.5``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from sparsenet.timing import load_average, paired_ratio, summary_row, time_side_by_side

SPARSE_TARGET = 5.0
IDEAL_TARGET = 1.5


def cluster_spec(channels: int, clusters: int, kernel_size: int = 3, seed: int = 0):
    """G equal clusters of channels scattered over the layer (as a discovery finds them), one
    k x k branch each, widths by the builder's rules, no pool branch."""
    from sparsenet.builder.rules import reduce_ratio, round_half_up
    from sparsenet.builder.spec import BranchSpec, ModuleSpec

    s = channels // clusters
    r = max(1, round_half_up(s * reduce_ratio(kernel_size)))
    order = torch.randperm(channels, generator=torch.Generator().manual_seed(seed)).tolist()
    branches = tuple(BranchSpec(kernel_size, s, r, tuple(sorted(order[g * s:(g + 1) * s])))
                     for g in range(clusters))
    return ModuleSpec(in_channels=channels, branches=branches, pool=None, connectivity="cluster")


def contiguous_spec(spec):
    """``spec`` with cluster j reading channels ``j*s .. (j+1)*s - 1`` (after a permutation of
    the producer's channels), in the same order as the gather puts them."""
    from dataclasses import replace

    pos, branches = 0, []
    for b in spec.branches:
        branches.append(replace(b, inputs=tuple(range(pos, pos + len(b.inputs)))))
        pos += len(b.inputs)
    return replace(spec, branches=tuple(branches))


def _weights(spec, module):
    """The built module's grouped weights, and the same connections as dense C x C weights."""
    (bucket,) = module.buckets
    g1 = bucket.reduce[0].weight.detach()
    g3 = bucket.conv[0].weight.detach()
    b1 = bucket.reduce[0].bias.detach()
    b3 = bucket.conv[0].bias.detach()
    G = len(spec.branches)
    r, s = g1.shape[0] // G, g1.shape[1]
    w, k = g3.shape[0] // G, g3.shape[-1]
    W1 = torch.zeros(G * r, spec.in_channels, 1, 1)
    W3 = torch.zeros(G * w, G * r, k, k)
    for j, b in enumerate(spec.branches):
        W1[j * r:(j + 1) * r, list(b.inputs)] = g1[j * r:(j + 1) * r]
        W3[j * w:(j + 1) * w, j * r:(j + 1) * r] = g3[j * w:(j + 1) * w]
    index = torch.tensor([c for b in spec.branches for c in b.inputs])
    return g1, g3, b1, b3, W1, W3, index, G, r, s, w, k


def realisations(spec, batch: int, size: int, seed: int = 0):
    """name -> zero-argument callable computing the module on one fixed input batch."""
    from sparsenet.builder.cluster_conv import ClusterMajor, as_dense, conv2d_fused
    from sparsenet.builder.modules import build_module, choose_forms

    torch.manual_seed(seed)
    module = build_module(spec).eval()
    g1, g3, b1, b3, W1, W3, index, G, r, s, w, k = _weights(spec, module)
    C = spec.in_channels
    # dense: random weights of the full shapes (values do not change the time)
    D1, D3 = torch.randn_like(W1) * 0.05, torch.randn_like(W3) * 0.05
    M1, M3 = (W1 != 0).float(), (W3 != 0).float()
    x = torch.relu(torch.randn(batch, C, size, size))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    pad = k // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        S1 = W1.view(G * r, C).to_sparse_csr()
        S3 = W3.view(G * w, G * r * k * k).to_sparse_csr()
    A1 = g1.view(G, r, s)
    A3 = g3.view(G, w, r * k * k)
    N, H = batch, size

    def dense():
        return F.relu(F.conv2d(F.relu(F.conv2d(x, D1, b1)), D3, b3, padding=pad))

    def dense_cl():
        return F.relu(F.conv2d(F.relu(F.conv2d(x_cl, D1, b1)), D3, b3, padding=pad))

    def dense_cl_fused():
        return conv2d_fused(conv2d_fused(x_cl, D1, b1, relu=True), D3, b3, padding=pad, relu=True)

    def masked_dense():
        y = F.relu(F.conv2d(x, W1 * M1, b1))
        return F.relu(F.conv2d(y, W3 * M3, b3, padding=pad))

    def sparse_csr():
        X = x.permute(1, 0, 2, 3).reshape(C, N * H * H)               # C x NHW
        y = F.relu(S1 @ X + b1[:, None])                              # Gr x NHW
        y = y.view(G * r, N, H, H).permute(1, 0, 2, 3)                # N x Gr x H x W
        u = F.unfold(y, k, padding=pad)                               # N x Gr k k x HW
        u = u.permute(1, 0, 2).reshape(G * r * k * k, N * H * H)
        z = F.relu(S3 @ u + b3[:, None])                              # Gw x NHW
        return z.view(G * w, N, H, H).permute(1, 0, 2, 3)

    def grouped_nchw():
        xg = x.index_select(1, index)                                 # clusters contiguous
        y = F.relu(F.conv2d(xg, g1, b1, groups=G))
        return F.relu(F.conv2d(y, g3, b3, padding=pad, groups=G))

    def grouped_channels_last():
        xg = x.index_select(1, index).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(xg, g1, b1, groups=G).relu_()
        return F.conv2d(y, g3, b3, padding=pad, groups=G).relu_()

    g1s = [g1[j * r:(j + 1) * r] for j in range(G)]
    g3s = [g3[j * w:(j + 1) * w] for j in range(G)]
    b1s = [b1[j * r:(j + 1) * r] for j in range(G)]
    b3s = [b3[j * w:(j + 1) * w] for j in range(G)]
    idx = [index[j * s:(j + 1) * s] for j in range(G)]

    def per_cluster():
        outs = []
        for j in range(G):
            y = F.conv2d(x.index_select(1, idx[j]), g1s[j], b1s[j]).relu_()
            outs.append(F.conv2d(y, g3s[j], b3s[j], padding=pad).relu_())
        return torch.cat(outs, 1)

    def per_cluster_channels_last():
        outs = []
        for j in range(G):
            xj = x.index_select(1, idx[j]).contiguous(memory_format=torch.channels_last)
            y = F.conv2d(xj, g1s[j], b1s[j]).relu_()
            outs.append(F.conv2d(y, g3s[j], b3s[j], padding=pad).relu_())
        return torch.cat(outs, 1)

    def bmm_unfold():
        xg = x.index_select(1, index)
        y = F.relu(torch.matmul(A1, xg.view(N, G, s, H * H)) + b1.view(G, r, 1))  # N G r HW
        u = F.unfold(y.view(N, G * r, H, H), k, padding=pad)                      # N Grkk HW
        z = torch.matmul(A3, u.view(N, G, r * k * k, H * H)) + b3.view(G, w, 1)
        return F.relu(z).view(N, G * w, H, H)

    def sparsenet():
        return module(x)

    # the builder's chooser: every bucket form timed at this shape, the fastest kept (cached)
    measured = build_module(spec, measure_at=(batch, size, size)).eval()
    measured.load_state_dict(module.state_dict())
    # the same clusters as contiguous slices (the producer permuted, as `apply` does): the input
    # arrives permuted, so no gather is left; same weights, same function
    cspec = contiguous_spec(spec)
    contiguous = build_module(cspec, measure_at=(batch, size, size)).eval()
    contiguous.load_state_dict(module.state_dict())
    x_perm = x.index_select(1, index).contiguous()  # what a permuted producer writes

    # the same, cluster-major in and out: the input as a cluster-major producer writes it
    major = build_module(cspec).eval()
    major.load_state_dict(module.state_dict())
    choose_forms(major, (batch, size, size), cluster_major=True)
    x_major = ClusterMajor.split(x_perm, [len(b.inputs) for b in cspec.branches])

    def sparsenet_measured():
        return measured(x)

    def sparsenet_contiguous():
        return contiguous(x_perm)

    def sparsenet_cluster_major():
        return major(x_major)

    def sparsenet_cluster_major_nchw_out():
        return as_dense(major(x_major))

    sparsenet_measured.forms, sparsenet_contiguous.forms = measured.forms(), contiguous.forms()
    sparsenet_cluster_major.forms = major.forms()

    fns = {"dense": dense, "dense_channels_last": dense_cl, "dense_channels_last_fused": dense_cl_fused,
           "masked_dense": masked_dense,
           "sparse_csr": sparse_csr, "sparsenet": sparsenet, "sparsenet_measured": sparsenet_measured,
           "sparsenet_contiguous": sparsenet_contiguous, "sparsenet_cluster_major": sparsenet_cluster_major,
           "sparsenet_cluster_major_nchw_out": sparsenet_cluster_major_nchw_out, "grouped_nchw": grouped_nchw,
           "grouped_channels_last": grouped_channels_last, "per_cluster": per_cluster,
           "per_cluster_channels_last": per_cluster_channels_last, "bmm_unfold": bmm_unfold}
    return fns, module


def layout_sweep(configs, channels: int, size: int, repeats: int) -> list[dict]:
    """A grouped 1x1 + k x k conv stack (C channels in C/s clusters of s, reduction 0.542 s,
    width s, gathered from scattered channels) run NCHW or channels-last (the gathered input
    converted, the output converted back): time(channels-last) / time(NCHW) per (N, s, k)."""
    cands, meta = {}, []
    for N, s, k in configs:
        G = channels // s
        r = max(1, round(s * 0.542))
        gen = torch.Generator().manual_seed(N * 1000 + s * 10 + k)
        x = torch.relu(torch.randn(N, channels, size, size, generator=gen))
        idx = torch.randperm(channels, generator=gen)
        g1 = torch.randn(G * r, s, 1, 1, generator=gen)
        g3 = torch.randn(G * s, r, k, k, generator=gen)

        def nchw(x=x, idx=idx, g1=g1, g3=g3, G=G, k=k):
            z = F.conv2d(x.index_select(1, idx), g1, groups=G).relu_()
            return F.conv2d(z, g3, padding=k // 2, groups=G).relu_()

        def channels_last(x=x, idx=idx, g1=g1, g3=g3, G=G, k=k):
            z = x.index_select(1, idx).contiguous(memory_format=torch.channels_last)
            z = F.conv2d(z, g1, groups=G).relu_()
            return F.conv2d(z, g3, padding=k // 2, groups=G).relu_().contiguous()

        cands[(N, s, k, "nchw")] = lambda f=nchw: _nograd(f)
        cands[(N, s, k, "cl")] = lambda f=channels_last: _nograd(f)
        meta.append((N, s, k))
    t = time_side_by_side(cands, repeats=repeats, warmup=1, min_time=0.02)
    return [{"batch": N, "cluster_size": s, "kernel_size": k, "clusters": channels // s,
             "channels": channels, "size": size,
             "nchw": t[(N, s, k, "nchw")].to_dict(), "channels_last": t[(N, s, k, "cl")].to_dict(),
             "channels_last_over_nchw": paired_ratio(t[(N, s, k, "cl")], t[(N, s, k, "nchw")])}
            for N, s, k in meta]


def run(*, channels: int, clusters: int, size: int, batch: int, repeats: int,
        sweep: tuple = ()) -> dict:
    from sparsenet.models.accounting import count_macs
    from sparsenet.builder.spec import module_macs

    spec = cluster_spec(channels, clusters)
    fns, module = realisations(spec, batch, size)
    from sparsenet.builder.cluster_conv import as_dense

    measured_forms, contiguous_forms = fns["sparsenet_measured"].forms, fns["sparsenet_contiguous"].forms
    major_forms = fns["sparsenet_cluster_major"].forms

    with torch.no_grad():
        ref = fns["sparsenet"]()
        max_diff = {n: float((as_dense(f()) - ref).abs().max()) for n, f in fns.items() if not n.startswith("dense")}
        timings = time_side_by_side(fns, repeats=repeats, warmup=1)
    b = module.plan[0]
    kept_macs = module_macs(spec, (size, size))
    G, r, w, s = len(b.members), b.group_reduce, b.group_width, b.group_inputs
    dense_macs = (channels * G * r + 9 * G * r * G * w) * size * size
    kept = kept_macs / dense_macs
    dense_name = min(("dense", "dense_channels_last", "dense_channels_last_fused"), key=lambda n: timings[n].median)
    dense = timings[dense_name]
    ideal_s = dense.median * kept
    rows = {}
    for n, t in timings.items():
        rel = paired_ratio(t, dense)
        rows[n] = {**t.to_dict(), "vs_dense": rel, "vs_ideal": rel / kept,
                   "max_abs_difference_to_sparsenet": max_diff.get(n)}
    forms = ["grouped_nchw", "grouped_channels_last", "per_cluster", "per_cluster_channels_last",
             "bmm_unfold"]
    fastest_form = min(forms, key=lambda n: timings[n].median)
    return {
        "module": {"in_channels": channels, "clusters": G, "cluster_size": s, "reduce": r,
                   "width": w, "kernel_size": 3, "size": size, "batch": batch, "pool": None,
                   "kept_macs_per_image": kept_macs, "dense_macs_per_image": dense_macs,
                   "kept_fraction": kept,
                   "built_macs_per_image": count_macs(module, (channels, size, size))},
        "dense_reference": dense_name, "ideal_s": ideal_s,
        "realisations": rows,
        "sparse_over_sparsenet": paired_ratio(timings["sparse_csr"], timings["sparsenet"]),
        "sparsenet_over_ideal": rows["sparsenet"]["vs_ideal"],
        "measured_over_ideal": rows["sparsenet_measured"]["vs_ideal"],
        "contiguous_over_ideal": rows["sparsenet_contiguous"]["vs_ideal"],
        "cluster_major_over_ideal": rows["sparsenet_cluster_major"]["vs_ideal"],
        "cluster_major_nchw_out_over_ideal": rows["sparsenet_cluster_major_nchw_out"]["vs_ideal"],
        "forms_chosen": {"sparsenet_measured": measured_forms, "sparsenet_contiguous": contiguous_forms,
                         "sparsenet_cluster_major": major_forms},
        "fastest_form": fastest_form,
        "sparse_target_min": SPARSE_TARGET, "ideal_target_max": IDEAL_TARGET,
        "layout_sweep": layout_sweep(sweep, channels, size, repeats) if sweep else [],
        "load_average_after": load_average(),
    }


def _nograd(f):
    with torch.no_grad():
        return f()


def summary_rows(result: dict) -> list[dict]:
    m = result["module"]
    case = (f"C={m['in_channels']}, {m['clusters']} clusters, 3x3, {m['size']}x{m['size']}, "
            f"batch {m['batch']}")
    rows = [summary_row("sparse CSR time / sparsenet time", case, result["sparse_over_sparsenet"],
                        at_least=SPARSE_TARGET),
            summary_row("sparsenet time / ideal", case, result["sparsenet_over_ideal"], at_most=IDEAL_TARGET),
            summary_row("sparsenet, measured form / ideal", case, result["measured_over_ideal"], at_most=IDEAL_TARGET),
            summary_row("sparsenet, contiguous clusters, measured form / ideal", case,
                        result["contiguous_over_ideal"], at_most=IDEAL_TARGET),
            summary_row("sparsenet, cluster-major in and out, measured form / ideal", case,
                        result["cluster_major_over_ideal"], at_most=IDEAL_TARGET),
            summary_row("sparsenet, cluster-major in, NCHW out, measured form / ideal", case,
                        result["cluster_major_nchw_out_over_ideal"], at_most=IDEAL_TARGET)]
    for n in ("masked_dense", "sparse_csr", "grouped_nchw", "grouped_channels_last", "per_cluster",
              "per_cluster_channels_last", "bmm_unfold"):
        rows.append(summary_row(f"{n} time / ideal", case, result["realisations"][n]["vs_ideal"]))
    for r in result.get("layout_sweep", []):
        rows.append(summary_row("grouped conv: channels-last / NCHW time",
                                f"{r['clusters']} clusters of {r['cluster_size']}, {r['kernel_size']}x"
                                f"{r['kernel_size']}, batch {r['batch']}", r["channels_last_over_nchw"]))
    return rows
