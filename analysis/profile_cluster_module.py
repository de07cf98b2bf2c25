"""Where the cluster module's time goes: torch.profiler per op, for every realisation form of the
hardware benchmark's module with contiguous clusters (section 6 of docs/performance.md), beside
the dense conv stack with the same reduction and width (whose time x kept fraction is the ideal);
then (section 7) the dense stack with its ReLUs fused into the convs and the whole module
cluster-major in and out (``ClusterMajor`` input, per-cluster outputs unconcatenated).

    python analysis/profile_cluster_module.py [--threads 1] [--batch 64] [--rounds 20] [--by-shape]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from sparsenet.bench.hardware import cluster_spec, contiguous_spec
from sparsenet.builder.cluster_conv import ClusterMajor, conv2d_fused
from sparsenet.builder.modules import build_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--rows", type=int, default=8, help="ops shown per form")
    ap.add_argument("--by-shape", action="store_true", help="ops grouped by input shape (1x1 apart from 3x3)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = contiguous_spec(cluster_spec(256, 8))
    module = build_module(spec).eval()
    bucket = module.buckets[0]
    x = torch.relu(torch.randn(a.batch, 256, 14, 14))
    G, r, w = len(spec.branches), spec.branches[0].reduce, spec.branches[0].width
    w1, w3 = torch.randn(G * r, 256, 1, 1), torch.randn(G * w, G * r, 3, 3)

    def dense():
        return F.conv2d(F.conv2d(x, w1).relu_(), w3, padding=1).relu_()

    kept = (G * 32 * r + 9 * G * r * w) / (256 * G * r + 9 * G * r * G * w)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def dense_fused():
        return conv2d_fused(conv2d_fused(x_cl, w1, None, relu=True), w3, None, padding=1, relu=True)

    major = build_module(spec).eval()
    major.load_state_dict(module.state_dict())
    major.cluster_major_output = True
    major.buckets[0].form = "per_cluster_channels_last"
    x_major = ClusterMajor.split(x, [len(b.inputs) for b in spec.branches])

    cands = {"dense (same widths, every channel)": dense}
    for form in bucket.offered_forms:
        cands[form] = (lambda f=form: bucket.run_form(x, f))
    cands["dense, channels-last, ReLU fused (same widths, every channel)"] = dense_fused
    cands["module, cluster-major in and out"] = lambda: major(x_major)
    with torch.no_grad():
        for name, fn in cands.items():
            for _ in range(3):
                fn()
            with profile(activities=[ProfilerActivity.CPU], record_shapes=a.by_shape) as prof:
                for _ in range(a.rounds):
                    fn()
            total = sum(e.self_cpu_time_total for e in prof.key_averages()) / a.rounds / 1e3
            print(f"\n== {name}: {total:.2f} ms per call (self CPU, {a.threads} thread(s), batch {a.batch})"
                  + (f"; ideal = dense x {kept:.3f}" if name.startswith("dense") else ""))
            rows = sorted(prof.key_averages(group_by_input_shape=a.by_shape),
                          key=lambda e: -e.self_cpu_time_total)[:a.rows]
            for e in rows:
                shape = f"  {str(e.input_shapes[:2])[:60]}" if a.by_shape else ""
                print(f"   {e.key:<40} {e.self_cpu_time_total / a.rounds / 1e3:8.3f} ms  "
                      f"{e.count // a.rounds:4d} calls  {100 * e.self_cpu_time_total / a.rounds / 1e3 / total:5.1f} %{shape}")


if __name__ == "__main__":
    main()
