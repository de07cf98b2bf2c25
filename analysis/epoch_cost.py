"""Measure what one training epoch of each candidate of an experiment costs here, and the budget.

    python analysis/epoch_cost.py --config experiments/fashion-mnist.toml --steps 100

Times ``--steps`` SGD steps (after two warm-up steps) of every candidate's network on the
configuration's dataset, batch size and thread count, extrapolates to one epoch (plus one pass
over the test split), and adds it up over epochs and seeds the way ``sparsenet compare`` spends
it:

* googlenet_small / plaincnn: one training per seed;
* skeleton candidates: the shared skeleton once per seed, plus the swapped network per candidate
  (timed as the skeleton itself: same multiply-adds within a few per cent);
* grown: growth trains ``modules + 1`` steps of a growing network and then retrains the final
  one from scratch; timed as the final architecture, approximated by the growth stem plus
  ``modules`` copies of the budget's reference module, counted ``(modules + 1) / 2 + 1`` times.

Discovery, growth analysis and latency come on top (minutes at most).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    import torch
    import torch.nn.functional as F

    from sparsenet.builder.modules import build_network
    from sparsenet.compare.candidates import growth_config, load_data, registered_model, skeleton_name, skeleton_spec
    from sparsenet.data import iterate_batches
    from sparsenet.compare.experiment import load_experiment
    from sparsenet.grow import module_budget
    from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec
    from sparsenet.training.loop import build_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args(argv)
    e = load_experiment(args.config)
    torch.set_num_threads(e.threads or torch.get_num_threads())
    ds = load_data(e)
    bs = e.train["batch_size"]
    steps_per_epoch = math.ceil(len(ds.x_train) / bs)
    print(f"{e.name}: {len(ds.x_train):,} train / {len(ds.x_test):,} test, batch {bs} -> {steps_per_epoch} steps "
          f"per epoch; {torch.get_num_threads()} thread(s); timing {args.steps} steps per network", flush=True)

    def epoch_seconds(model) -> float:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(0)
        batches = iterate_batches(ds.x_train, ds.y_train, bs, shuffle=True, generator=gen)
        model.train()
        t0 = None
        for i, (xb, yb) in enumerate(batches):
            if i == 2:
                t0 = time.perf_counter()
            if i == args.steps + 2:
                break
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        train = (time.perf_counter() - t0) / args.steps * steps_per_epoch
        model.eval()
        t1 = time.perf_counter()
        with torch.no_grad():
            model(ds.x_test[:1000])
        return train + (time.perf_counter() - t1) * len(ds.x_test) / 1000

    per_seed, skeletons = 0.0, {}
    for point in e.points:
        if point.kind in ("googlenet_small", "plaincnn"):
            name, kwargs = registered_model(point)
            model, _ = build_model(name, ds, 0, kwargs)
            sec, factor = epoch_seconds(model), 1.0
        elif point.kind == "skeleton":
            key = skeleton_name(point)
            if key not in skeletons:
                skeletons[key] = epoch_seconds(build_network(skeleton_spec(point, ds)))
                per_seed += skeletons[key] * e.train["epochs"]
                print(f"  {key:<24} {skeletons[key]:7.0f} s/epoch (shared skeleton)", flush=True)
            sec, factor = skeletons[key], 1.0
        else:
            from sparsenet.builder.rules import DEFAULT_REFERENCE, fit_budget, reference_like

            g = growth_config(point)
            target = module_budget(g)
            stem = StemSpec(in_channels=ds.in_channels, widths=(g.stem_width,), kernel_sizes=(3,), strides=(1,), pool=True)
            ref = reference_like(g.budget_like or DEFAULT_REFERENCE).spec
            modules, c = [], g.stem_width
            from dataclasses import replace

            for _ in range(g.modules):
                m = replace(ref, in_channels=c)
                if target is not None:
                    m = fit_budget(m, target, (ds.image_size[0] // 2, ds.image_size[1] // 2))
                modules.append(m)
                c = m.out_channels
            net = NetworkSpec(stem=stem, modules=tuple(modules), pool_after=g.pool_after,
                              head=HeadSpec(num_classes=ds.num_classes))
            sec, factor = epoch_seconds(build_network(net)), (g.modules + 1) / 2 + 1
        cost = sec * factor * e.train["epochs"]
        per_seed += cost
        print(f"  {point.name:<24} {sec:7.0f} s/epoch" + (f" x {factor:g} (growth + retraining)" if factor != 1 else ""),
              flush=True)
    total = per_seed * len(e.seeds)
    print(f"per seed: {per_seed / 60:.1f} min for {e.train['epochs']} epoch(s); "
          f"{len(e.seeds)} seeds: {total / 60:.0f} min ({total / 3600:.2f} h) of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
