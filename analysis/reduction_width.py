"""The hardware module's per-cluster 1x1 reductions against their share of the dense 1x1, by
reduction width: the module's own 17 (not a multiple of the 8 float lanes of an AVX2 register)
and a neighbouring 16, each realised as the builder can (a fused channels-last conv per cluster,
an addmm per cluster, one batched product over stacked clusters, one grouped conv).  Ratios of
medians over interleaved rounds, in one process.

    python analysis/reduction_width.py [--threads 1] [--widths 17 16] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sparsenet.builder.cluster_conv import conv2d_fused

GROUPS, BATCH, SIZE, INPUTS = 8, 64, 14, 32  # the hardware benchmark's module (docs/performance.md, section 4)


def forms(r: int) -> dict:
    g, c = GROUPS, INPUTS
    x = torch.randn(BATCH, g * c, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    pieces = [x[:, j * c:(j + 1) * c].contiguous(memory_format=torch.channels_last) for j in range(g)]
    dense_w, grouped_w = torch.randn(g * r, g * c, 1, 1), torch.randn(g * r, c, 1, 1)
    ws, b = [torch.randn(r, c, 1, 1) for _ in range(g)], torch.randn(r)
    stacked, stacked_w = torch.randn(g, BATCH * SIZE * SIZE, c), torch.randn(g, c, r)
    return {
        "dense 1x1, every channel (fused, channels-last)": lambda: conv2d_fused(x, dense_w, None, relu=True),
        "per cluster, fused conv (the builder's form)": lambda: [conv2d_fused(p, w, b, relu=True) for p, w in zip(pieces, ws)],
        "per cluster, addmm": lambda: [torch.addmm(b, p.permute(0, 2, 3, 1).reshape(-1, c), w.view(r, c).t()).relu_()
                                       for p, w in zip(pieces, ws)],
        "all clusters, one bmm (stacked input)": lambda: torch.bmm(stacked, stacked_w).relu_(),
        "grouped conv, channels-last": lambda: F.conv2d(x, grouped_w, None, groups=g).relu_(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="+", default=[17, 16])
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in a.widths:
        fns = forms(r)
        times = {k: [] for k in fns}
        with torch.no_grad():
            for fn in fns.values():
                fn(), fn()  # warm-up: oneDNN primitive creation
            for _ in range(a.rounds):
                for k, fn in fns.items():
                    t = time.perf_counter()
                    for _ in range(5):
                        fn()
                    times[k].append((time.perf_counter() - t) / 5 * 1e3)
        dense = statistics.median(next(iter(times.values())))
        print(f"\nreduction width {r}, {a.threads} thread(s): ms per call, and x its share (dense / {GROUPS})")
        for k, v in times.items():
            m = statistics.median(v)
            print(f"  {k:50s} {m:7.2f} ms  {m / dense * GROUPS:5.2f}x")


if __name__ == "__main__":
    main()
