"""Discovered against hand-designed at inference: latency per image per multiply-add of a grown
network and of ``googlenet_small`` at matched multiply-adds, batch 1 and 64.

The discovered network is a ``NetworkSpec`` (by default the one ``sparsenet grow`` wrote to
``docs/examples/grow-mnist5k/network.json``; without it, a network built from planted
discoveries at ``googlenet_small``'s stage budgets, see ``planted_network``).  The hand design
is ``googlenet_small`` with as many Inception modules as the discovered network and the
``width_mult`` (found by bisection) that matches its multiply-adds within 2 %.  Both run in eval
mode under ``torch.no_grad()`` on random images of the network's input size; each latency is
timed side by side (interleaved rounds).  The figure is

    (latency_discovered / MACs_discovered) / (latency_hand / MACs_hand)

per batch size; target <= 1.10 (the discovered network is not slower per multiply-add than the
hand design by more than 10 %).  MACs are the connections each network has (the spec's for the
discovered one, ``accounting.count_macs`` for googlenet_small); the discovered network's built
MACs (with the builder's zero-weight padding) are reported beside them.

Beside the network as written, ``discovered_laid_out`` times the same network laid out as
``grow`` now builds it (``builder/layout.py``: each producer emits its channels in the order the
next module reads them, so clusters are views, not gathers) with every module's realisation
form measured at that batch (``build_network(measure_at=...)``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sparsenet.timing import load_average, paired_ratio, summary_row, time_side_by_side

TARGET = 1.10
DEFAULT_GROWN = Path("docs/examples/grow-mnist5k/network.json")


def planted_network(n_modules: int = 3, width_mult: float = 0.25, seed: int = 0):
    """A network like ``sparsenet grow`` makes, without training: the growth stem (32-wide 3x3
    conv and a 3x3/2 max pool), then modules built by the rules from planted discoveries (5
    clusters of kernel sizes 1, 3, 3, 5, 3 over the previous layer's channels, 2 inactive),
    each fitted to the multiply-adds of ``googlenet_small@width_mult``'s stage 3a, a pool after
    the second module."""
    import random

    from sparsenet.discovery.value import from_labels
    from sparsenet.builder.rules import fit_budget, module_from_discovery, reference_module
    from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec, module_input_sizes

    stem = StemSpec(in_channels=1, widths=(32,), kernel_sizes=(3,), strides=(1,), pool=True)
    target = reference_module("googlenet_small", "3a", width_mult).macs
    net = NetworkSpec(stem=stem, modules=(), head=HeadSpec(num_classes=10))
    rng = random.Random(seed)
    pool_after = (1,) if n_modules > 1 else ()
    for i in range(n_modules):
        c = net.features
        kernels = [1, 3, 3, 5, 3]
        labels = [j % 5 for j in range(c - 2)] + [-1, -1]
        rng.shuffle(labels)
        d = from_labels(labels, kernels, provenance={"layer_shape": [c, 1, 1], "note": "planted"})
        trial = NetworkSpec(stem=stem, modules=net.modules + (module_from_discovery(d),),
                            pool_after=tuple(p for p in pool_after if p <= i), head=net.head)
        size = module_input_sizes(trial, (28, 28))[-1]
        module = fit_budget(lambda f: module_from_discovery(d, width_scale=f), target, size)
        net = NetworkSpec(stem=stem, modules=net.modules + (module,),
                          pool_after=tuple(p for p in pool_after if p <= i), head=net.head)
    return net


def matched_googlenet(macs: int, n_modules: int, input_shape, num_classes: int):
    """googlenet_small with ``n_modules`` modules and the width_mult matching ``macs``."""
    from sparsenet.models.accounting import count_macs
    from sparsenet.models import get_model

    def build(m):
        return get_model("googlenet_small", width_mult=m, num_modules=n_modules,
                         in_channels=input_shape[0], num_classes=num_classes)

    def cost(m):
        return count_macs(build(m), input_shape)

    (lo, c_lo), (hi, c_hi) = (0.01, cost(0.01)), (4.0, cost(4.0))
    for _ in range(40):
        mid = (lo * hi) ** 0.5
        c_mid = cost(mid)
        if c_mid < macs:
            lo, c_lo = mid, c_mid
        else:
            hi, c_hi = mid, c_mid
        if hi / lo < 1.001:
            break
    best, got = (lo, c_lo) if abs(c_lo - macs) <= abs(c_hi - macs) else (hi, c_hi)
    return build(best).eval(), best, got


def run(*, grown: str | Path | None, batches: tuple[int, ...], repeats: int,
        input_shape=(1, 28, 28), planted_modules: int = 3) -> dict:
    from sparsenet.models.accounting import count_macs
    from sparsenet.builder.layout import lay_out_network
    from sparsenet.builder.modules import build_network
    from sparsenet.builder.spec import load_spec, network_macs

    if grown is not None and Path(grown).is_file():
        spec, source = load_spec(grown, kind="network"), str(grown)
    else:
        spec = planted_network(planted_modules)
        source = "planted discoveries at googlenet_small@0.25:3a budgets"
    torch.manual_seed(0)
    disc = build_network(spec).eval()
    macs_d = network_macs(spec, input_shape[1:])
    built_d = count_macs(disc, input_shape)
    hand, mult, macs_h = matched_googlenet(macs_d, len(spec.modules), input_shape,
                                           spec.head.num_classes)
    laid, _ = lay_out_network(spec)  # as grow now builds it: clusters contiguous, no gather
    rows = {}
    for b in batches:
        x = torch.randn(b, *input_shape, generator=torch.Generator().manual_seed(b))
        torch.manual_seed(0)
        # forms timed at this batch; cluster-major activations between modules where a module can emit them
        fast = build_network(laid, measure_at=(b, *input_shape[1:]), cluster_major=True).eval()

        def run_d(x=x):
            with torch.no_grad():
                return disc(x)

        def run_f(x=x, fast=fast):
            with torch.no_grad():
                return fast(x)

        def run_h(x=x):
            with torch.no_grad():
                return hand(x)

        t = time_side_by_side({"discovered": run_d, "discovered_laid_out": run_f, "googlenet_small": run_h},
                              repeats=repeats, warmup=2, min_time=0.05)
        ratio = paired_ratio(t["discovered"], t["googlenet_small"])
        ratio_f = paired_ratio(t["discovered_laid_out"], t["googlenet_small"])
        rows[str(b)] = {
            "discovered_laid_out": {**t["discovered_laid_out"].to_dict(),
                                    "ms_per_image": t["discovered_laid_out"].median / b * 1e3,
                                    "forms": [blk.forms() for blk in fast.blocks],
                                    "per_mac_ratio": ratio_f * macs_h / macs_d},
            "batch": b,
            "discovered": {**t["discovered"].to_dict(),
                           "ms_per_image": t["discovered"].median / b * 1e3},
            "googlenet_small": {**t["googlenet_small"].to_dict(),
                                "ms_per_image": t["googlenet_small"].median / b * 1e3},
            "latency_ratio": ratio,
            "per_mac_ratio": ratio * macs_h / macs_d,
        }
    return {
        "discovered": {"source": source, "modules": len(spec.modules), "macs": macs_d,
                       "built_macs": built_d, "out_channels": [m.out_channels for m in spec.modules]},
        "googlenet_small": {"num_modules": len(spec.modules), "width_mult": mult, "macs": macs_h},
        "input_shape": list(input_shape), "batches": rows, "target_max": TARGET,
        "load_average_after": load_average(),
    }


def summary_rows(result: dict) -> list[dict]:
    d, h = result["discovered"], result["googlenet_small"]
    rows = []
    for b, r in result["batches"].items():
        rows.append(summary_row("discovered / googlenet_small, latency per MAC",
                                f"batch {b}, {d['macs'] / 1e6:.1f}M vs {h['macs'] / 1e6:.1f}M MACs "
                                f"(width_mult {h['width_mult']:.3f})", r["per_mac_ratio"], at_most=TARGET))
        if "discovered_laid_out" in r:  # results written before the layout have no such row
            rows.append(summary_row("discovered laid out, measured forms / googlenet_small, latency per MAC",
                                    f"batch {b}, clusters contiguous, forms {r['discovered_laid_out']['forms']}",
                                    r["discovered_laid_out"]["per_mac_ratio"], at_most=TARGET))
    return rows
