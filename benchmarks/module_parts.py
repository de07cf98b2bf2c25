"""Where the time of one `cluster` module goes: each part timed alone (docs/performance.md, section 4).

The module of `sparsenet bench`'s hardware measurement (256 channels in 8 scattered clusters of 32,
a 1x1 reduction to 17 per cluster, a 3x3 conv to 32 per cluster, ReLUs; 14x14 maps, batch 64),
written out as its parts in channels-last (NHWC) layout, beside the dense module it keeps 1/8 of.
One torch thread; median of 9 runs after a warm-up.

    python benchmarks/module_parts.py
"""

import time

import torch

N, H, C, G, R, W = 64, 14, 256, 8, 17, 32
CL = torch.channels_last


def median_ms(f, x, repeats=9):
    with torch.inference_mode():
        f(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(x)
            times.append(time.perf_counter() - t0)
    return sorted(times)[repeats // 2] * 1e3


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    perm = torch.randperm(C)  # scattered clusters: a gather makes each one contiguous
    reduce = torch.nn.Conv2d(C, G * R, 1, groups=G).eval().to(memory_format=CL)
    conv3 = torch.nn.Conv2d(G * R, G * W, 3, padding=1, groups=G).eval().to(memory_format=CL)
    dense_reduce = torch.nn.Conv2d(C, G * R, 1).eval().to(memory_format=CL)
    dense_conv3 = torch.nn.Conv2d(G * R, G * W, 3, padding=1).eval().to(memory_format=CL)
    x = torch.randn(N, C, H, H).contiguous(memory_format=CL)
    r = reduce(x)
    parts = {
        "gather (index_select over channels)": (lambda z: z.index_select(1, perm), x),
        "grouped 1x1 reduction": (reduce, x),
        "ReLU": (torch.relu, r),
        "grouped 3x3 conv": (conv3, r),
        "whole module": (lambda z: torch.relu(conv3(torch.relu(reduce(z.index_select(1, perm))))), x),
        "dense module (same shapes, every channel)": (lambda z: torch.relu(dense_conv3(torch.relu(dense_reduce(z)))), x),
    }
    times = {name: median_ms(f, inp) for name, (f, inp) in parts.items()}
    ideal = times["dense module (same shapes, every channel)"] / G
    macs = {"grouped 1x1 reduction": N * H * H * C * R, "grouped 3x3 conv": N * H * H * G * R * W * 9,
            "dense module (same shapes, every channel)": N * H * H * (C * G * R + G * R * G * W * 9)}
    print(f"ideal (dense module / {G}): {ideal:.1f} ms")
    for name, ms in times.items():
        rate = f", {macs[name] / ms / 1e6:.1f} GMAC/s" if name in macs else ""
        print(f"{name:45s} {ms:7.1f} ms  ({ms / ideal:.2f} x ideal{rate})")


if __name__ == "__main__":
    main()
