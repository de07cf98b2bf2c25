"""Latency of a network after `sparsenet apply` against the original, side by side (one run).

    python analysis/apply_latency.py BEFORE_CHECKPOINT APPLIED_CHECKPOINT [--threads N]

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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    base, info = model_from_checkpoint(a.before)
    applied, _ = model_from_checkpoint(a.applied)
    shape = tuple(info["input_shape"])
    share = count_macs(applied, shape) / count_macs(base, shape)
    forms = [m.form for m in applied.modules() if hasattr(m, "form")]
    print(f"threads {a.threads}; multiply-add share {share:.3f}; forms {forms}")
    for n in (int(b) for b in a.batches.split(",")):
        x = torch.randn(n, *shape)

        def run(model):
            def call():
                with torch.no_grad():
                    return model(x)
            return call

        t = time_side_by_side({"original": run(base), "applied": run(applied)}, repeats=a.repeats, min_time=0.02)
        r = paired_ratio(t["applied"], t["original"])
        print(f"batch {n}: applied / original time {r:.3f}; / multiply-add share {r / share:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
