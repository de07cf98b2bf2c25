"""Where the cluster module's time goes: torch.profiler per op, for every realisation form of the
hardware benchmark's module with contiguous clusters (section 6 of docs/performance.md), beside
the dense conv stack with the same reduction and width (whose time x kept fraction is the ideal).

    python analysis/profile_cluster_module.py [--threads 1] [--batch 64] [--rounds 20]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from sparsenet.bench.hardware import cluster_spec, contiguous_spec
from sparsenet.builder.cluster_conv import FORMS
from sparsenet.builder.modules import build_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--rows", type=int, default=8, help="ops shown per form")
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
    cands = {"dense (same widths, every channel)": dense}
    for form in bucket.FORMS:
        cands[form] = (lambda f=form: bucket.run_form(x, f))
    with torch.no_grad():
        for name, fn in cands.items():
            for _ in range(3):
                fn()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(a.rounds):
                    fn()
            total = sum(e.self_cpu_time_total for e in prof.key_averages()) / a.rounds / 1e3
            print(f"\n== {name}: {total:.2f} ms per call (self CPU, {a.threads} thread(s), batch {a.batch})"
                  + (f"; ideal = dense x {kept:.3f}" if name.startswith("dense") else ""))
            rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:a.rows]
            for e in rows:
                print(f"   {e.key:<40} {e.self_cpu_time_total / a.rounds / 1e3:8.3f} ms  "
                      f"{e.count // a.rounds:4d} calls  {100 * e.self_cpu_time_total / a.rounds / 1e3 / total:5.1f} %")


if __name__ == "__main__":
    main()
