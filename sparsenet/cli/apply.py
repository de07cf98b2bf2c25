"""`sparsenet apply`: rewrite a trained network around a discovery (contiguous clusters, cluster connectivity)."""

from __future__ import annotations

import shlex
import sys

from sparsenet.apply import CONTROL_SEED, FINETUNE_LR
from sparsenet.builder.spec import ASSIGNMENTS, DEFAULT_ASSIGNMENT
from sparsenet.cli.options import add_device_argument


def add_parser(sub) -> None:
    p = sub.add_parser(
        "apply", help="apply a discovery to its trained network: permute the clusters into contiguous slices and "
                      "give the layers that read them cluster connectivity (with a random-cluster control)",
        description="Writes DIR/checkpoint.pt (loadable by every command), DIR/control/checkpoint.pt (random "
                    "clusters of the same sizes) and DIR/metrics.json.")
    p.add_argument("--checkpoint", required=True, help="the trained network (from `sparsenet train` or `grow`)")
    p.add_argument("--discovery", required=True, help="DIR/discovery.json of one of its layers (from `sparsenet discover`)")
    p.add_argument("--layer", default=None, help="the discovered layer (default: the one the discovery names)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune both arms for N epochs (default 0)")
    p.add_argument("--lr", type=float, default=FINETUNE_LR, help=f"peak fine-tuning learning rate (default {FINETUNE_LR})")
    p.add_argument("--data", default=None, help="dataset (default: the checkpoint's)")
    p.add_argument("--data-root", default=None, help="directory of the dataset files, where it applies")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed (default 0)")
    p.add_argument("--control-seed", type=int, default=CONTROL_SEED,
                   help=f"seed of the random-cluster control (default {CONTROL_SEED})")
    p.add_argument("--assign", choices=ASSIGNMENTS, default=DEFAULT_ASSIGNMENT,
                   help="which cluster each output channel of a rewritten layer reads (both arms): balanced = "
                        "readers per cluster in proportion to its size, the most squared weight mass under that; "
                        f"mass = each output's largest-mass cluster (default {DEFAULT_ASSIGNMENT}; docs/apply.md)")
    p.add_argument("--no-measure", action="store_true",
                   help="do not time the realisation forms; use the deterministic fallback")
    add_device_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.apply import run_apply

    m = run_apply(args.checkpoint, args.discovery, args.out, finetune_epochs=args.finetune_epochs, lr=args.lr,
                  layer=args.layer, data=args.data, data_root=args.data_root, device=args.device, seed=args.seed,
                  control_seed=args.control_seed, measure=not args.no_measure, assign=args.assign,
                  command="sparsenet " + shlex.join(sys.argv[1:]))
    c = m["control"]
    print(f"{'':<12}{'accuracy before':>16}{'applied':>10}{'after':>10}{'MACs kept':>11}{'params kept':>13}")
    for name, r in (("discovered", m), ("random", c)):
        print(f"{name:<12}{r['accuracy_before']:>16.4f}{r['accuracy_applied']:>10.4f}{r['accuracy_after']:>10.4f}"
              f"{r['macs_after'] / r['macs_before']:>11.3f}{r['params_after'] / r['params_before']:>13.3f}")
    print(f"wrote {args.out}/checkpoint.pt, {args.out}/control/checkpoint.pt and {args.out}/metrics.json")
    return 0
