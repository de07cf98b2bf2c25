"""`sparsenet lesion`: zero each discovered cluster and measure the accuracy drop against random channel sets."""

from __future__ import annotations

import shlex
import sys

from sparsenet.cli.common import positive_int
from sparsenet.cli.options import add_device_argument
from sparsenet.lesion import NULL_SEED, NULL_SETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lesion", help="does each cluster matter? zero its channels and compare the accuracy drop with random "
                       "channel sets of the same size",
        description="Writes DIR/lesion.json (drop overall and per class, z and p per cluster) and DIR/lesion.png.")
    p.add_argument("--checkpoint", required=True, help="the trained network (from `sparsenet train`, `grow` or `apply`)")
    p.add_argument("--discovery", required=True, help="DIR/discovery.json of one of its layers")
    p.add_argument("--layer", default=None, help="the discovered layer (default: the one the discovery names)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--null-sets", type=positive_int, default=NULL_SETS,
                   help=f"random channel sets per cluster size (default {NULL_SETS}; the smallest p is 1/(N+1))")
    p.add_argument("--seed", type=int, default=NULL_SEED, help=f"seed of the random sets (default {NULL_SEED})")
    p.add_argument("--data", default=None, help="dataset (default: the checkpoint's)")
    p.add_argument("--data-root", default=None, help="directory of the dataset files, where it applies")
    add_device_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.lesion import run_lesion

    r = run_lesion(args.checkpoint, args.discovery, args.out, layer=args.layer, n_null=args.null_sets,
                   seed=args.seed, data=args.data, data_root=args.data_root, device=args.device,
                   command="sparsenet " + shlex.join(sys.argv[1:]))
    print(f"accuracy {r['accuracy']:.4f}; zeroing each cluster of {r['layer']}:")
    print(f"{'cluster':>8}{'size':>6}{'drop':>9}{'per ch':>9}{'null mean':>11}{'z':>8}{'p':>8}")
    for c in r["clusters"]:
        print(f"{c['cluster']:>8}{c['size']:>6}{c['drop']:>9.4f}{c['drop_per_channel']:>9.4f}{c['null_mean']:>11.4f}"
              f"{c['z']:>8.2f}{c['p']:>8.3f}")
    print(f"wrote {args.out}/lesion.json and {args.out}/lesion.png")
    return 0
