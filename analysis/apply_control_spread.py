"""Accuracy right after `apply` (no fine-tuning) of the discovered clusters against random-cluster
controls over several seeds, the same rule and sizes (the spread behind one control seed).

    python analysis/apply_control_spread.py TRAIN_DIR DISCOVER_DIR [--seeds 10] [--assign balanced]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import TensorDataset

from sparsenet.apply import apply_discovery, discovered_groups, random_groups
from sparsenet.builder.spec import ASSIGNMENTS, DEFAULT_ASSIGNMENT
from sparsenet.data import load_dataset, normalize
from sparsenet.discovery.value import load_discovery
from sparsenet.training.checkpoint import load_checkpoint, model_from_checkpoint
from sparsenet.training.loop import evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train")
    p.add_argument("discovery")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--assign", choices=ASSIGNMENTS, default=DEFAULT_ASSIGNMENT)
    a = p.parse_args()
    torch.set_num_threads(1)
    net, _ = model_from_checkpoint(a.train)
    ckpt = load_checkpoint(a.train)
    d = load_discovery(a.discovery)
    groups = discovered_groups(d)
    ds = load_dataset(ckpt["dataset"], None, seed=0)
    norm = ckpt["normalization"]
    test = TensorDataset(normalize(ds.x_test, norm["mean"], norm["std"]), ds.y_test)
    shape = tuple(ds.input_shape)
    applied, _ = apply_discovery(net, d, shape, measure=False, assign=a.assign)
    found = evaluate(applied, test)
    accs = []
    for seed in range(a.seeds):
        applied, _ = apply_discovery(net, d, shape, groups=random_groups(groups, seed), measure=False, assign=a.assign)
        accs.append(evaluate(applied, test))
    print(f"discovered: {found:.3f}")
    print(f"random, seeds 0-{a.seeds - 1}: {', '.join(f'{x:.3f}' for x in accs)}")
    print(f"random mean {sum(accs) / len(accs):.3f}, range {min(accs):.3f}-{max(accs):.3f}; "
          f"{sum(x < found for x in accs)} of {len(accs)} below the discovered clusters")


if __name__ == "__main__":
    main()
