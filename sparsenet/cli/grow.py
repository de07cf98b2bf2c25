"""`sparsenet grow`: grow a network module by module from the clusters of its newest layer."""

from __future__ import annotations

from sparsenet.analyser.settings import GROW
from sparsenet.builder.spec import CONNECTIVITIES
from sparsenet.errors import SparsenetError
from sparsenet.cli.common import add_analysis_arguments, analysis_settings, positive_int
from sparsenet.cli.options import add_device_argument, add_stability_arguments, add_workers_argument
from sparsenet.grow import MODES, STEP_TRAINING, GrowthConfig
from sparsenet.training.config import DEFAULT_DATA, TrainConfig

SHAPE = GrowthConfig()  # the library's defaults


def add_parser(sub) -> None:
    p = sub.add_parser("grow", help="grow a network layer by layer: train, discover, build, append, repeat",
                       description="Start from a stem, train, record the newest layer, discover its clusters, "
                                   "build the next module from them, append it and train again; repeat.")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset name or FORMAT:PATH (default {DEFAULT_DATA})")
    p.add_argument("--data-root", default=None, help="directory of the dataset files, where it applies")
    p.add_argument("--modules", type=positive_int, default=SHAPE.modules, help=f"modules to grow (default {SHAPE.modules})")
    p.add_argument("--mode", choices=MODES, default=SHAPE.mode,
                   help="greedy: train only the new module and the head each step; end2end: the whole network")
    p.add_argument("--connectivity", choices=CONNECTIVITIES, default=SHAPE.connectivity,
                   help="cluster: each branch reads its own cluster (Arora); full: every branch reads all (GoogLeNet)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-macs", type=float, default=None, help="multiply-adds per module")
    budget.add_argument("--budget-like", default=None, help="per-module budget of a hand-designed module, e.g. googlenet_small:3a")
    p.add_argument("--width-scale", type=float, default=SHAPE.width_scale,
                   help="without a budget: branch width = cluster size x this")
    p.add_argument("--stem-width", type=positive_int, default=SHAPE.stem_width)
    p.add_argument("--pool-after", default="", help="comma-separated module indices followed by a stride-2 max pool")
    p.add_argument("--epochs", type=positive_int, default=STEP_TRAINING.epochs,
                   help=f"training epochs per step (default {STEP_TRAINING.epochs})")
    p.add_argument("--batch-size", type=positive_int, default=STEP_TRAINING.batch_size)
    p.add_argument("--lr", type=float, default=STEP_TRAINING.lr)
    p.add_argument("--seed", type=int, default=STEP_TRAINING.seed)
    add_stability_arguments(p, STEP_TRAINING)
    add_analysis_arguments(p, GROW, samples="images recorded per discovery")
    p.add_argument("--out", default="runs/grow", help="output directory (default runs/grow); rerun to resume")
    p.add_argument("--quiet", action="store_true")
    add_device_argument(p)
    add_workers_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.data import load_dataset
    from sparsenet.device import resolve_device
    from sparsenet.distributed import per_rank_batch
    from sparsenet.grow import grow
    from sparsenet.io import check_out_dir

    check_out_dir(args.out)
    device = resolve_device(args.device)  # refused before anything loads
    per_rank_batch(args.batch_size)       # under torchrun: a batch the ranks cannot share is refused now

    try:
        pool_after = tuple(int(v) for v in args.pool_after.split(",") if v.strip())
    except ValueError:
        raise SparsenetError(f"--pool-after expects module indices like 0,2; got {args.pool_after!r}") from None
    if args.budget_macs is not None and not 1 <= args.budget_macs < float("inf"):
        raise SparsenetError(f"--budget-macs must be a positive number of multiply-adds, got {args.budget_macs!r}")
    config = GrowthConfig(modules=args.modules, mode=args.mode, connectivity=args.connectivity,
                          budget_macs=int(args.budget_macs) if args.budget_macs is not None else None,
                          budget_like=args.budget_like, width_scale=args.width_scale,
                          stem_width=args.stem_width, pool_after=pool_after).validate()
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               warmup_steps=args.warmup_steps, clip_grad_norm=args.clip_grad_norm).validate()
    analysis = analysis_settings(args)
    dataset = load_dataset(args.data, args.data_root, seed=args.seed)
    summary = grow(dataset, config, train_config, analysis, args.out, progress=not args.quiet, device=device,
                   num_workers=args.workers)
    if summary is None:   # a torchrun rank other than 0: rank 0 wrote the growth and reports it
        return 0
    print(f"grown {summary['modules']} modules on {summary['data']}: test accuracy "
          f"{summary['final_test_accuracy']:.4f}, params {summary['params']:,}, mult-adds {summary['macs']:,}")
    for s in summary["steps"]:
        print(f"  step {s['step']}: accuracy {s['test_accuracy']:.4f}  params {s['params']:,}  mult-adds {s['macs']:,}")
    print(f"wrote {args.out}/network.json, checkpoint.pt, metrics.json, network.png")
    return 0
