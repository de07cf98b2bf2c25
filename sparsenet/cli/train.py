"""`sparsenet train`: train a registered or user-defined model on a dataset, with metrics and a checkpoint."""

from __future__ import annotations

from sparsenet.cli.common import parse_key_values, positive_int
from sparsenet.cli.options import add_device_argument, add_model_arguments, add_stability_arguments, add_workers_argument
from sparsenet.training.config import DEFAULT_DATA, DEFAULT_MODEL, TrainConfig

RECIPE = TrainConfig()  # the library's defaults


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset (writes metrics.json and checkpoint.pt)")
    add_model_arguments(p, default=DEFAULT_MODEL, weights=False)
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"dataset name or FORMAT:PATH (see `sparsenet datasets`); default {DEFAULT_DATA}")
    p.add_argument("--data-root", default=None, help="directory of the dataset files, where it applies")
    p.add_argument("--image-size", type=positive_int, default=None, help="resize images to this many pixels square")
    p.add_argument("--epochs", type=positive_int, default=RECIPE.epochs)
    p.add_argument("--batch-size", type=positive_int, default=RECIPE.batch_size)
    p.add_argument("--lr", type=float, default=RECIPE.lr)
    add_stability_arguments(p, RECIPE)
    p.add_argument("--seed", type=int, default=RECIPE.seed)
    p.add_argument("--augment", action="store_true", help="random crop (padding 2) and, where sensible, horizontal flip")
    p.add_argument("--out", default="runs/train", help="output directory (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    add_device_argument(p)
    add_workers_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.data import load_dataset
    from sparsenet.device import resolve_device
    from sparsenet.distributed import per_rank_batch, world
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet")
    from sparsenet.io import check_out_dir
    from sparsenet.models import model_info
    from sparsenet.models.external import load_factory, parse_model_spec
    from sparsenet.training.loop import train_named

    check_out_dir(args.out)
    source = parse_model_spec(args.model)  # an unknown model or bad import path is refused before any data loads
    load_factory(source) if source.imported else model_info(source.target)
    device = resolve_device(args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         augment=args.augment, warmup_steps=args.warmup_steps,
                         clip_grad_norm=args.clip_grad_norm).validate()
    model_kwargs = parse_key_values(args.model_arg, "--model-arg")  # refused before any data is loaded
    per_rank_batch(config.batch_size)  # under torchrun: a batch the ranks cannot share is refused now
    dataset = load_dataset(args.data, args.data_root, seed=args.seed, image_size=args.image_size)
    here = world()
    if here.main:
        print(f"training {args.model} on {dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test "
              f"images of {'x'.join(map(str, dataset.input_shape))}, {config.epochs} epochs"
              + (f", data-parallel on {here.world_size} processes (batch {config.batch_size // here.world_size} each)"
                 if here.world_size > 1 else ""))
    _, metrics = train_named(args.model, dataset, config, model_kwargs,
                             out_dir=args.out, resume=args.resume, progress=not args.quiet, device=device,
                             num_workers=args.workers)
    if not here.main:
        return 0   # rank 0 reports and writes
    print(f"final test accuracy {metrics['final_test_accuracy']:.4f}  params {metrics['params']:,}  "
          f"mult-adds {metrics['macs']:,}  wall {metrics['wall_time_s']:.1f}s"
          + (f"  ({metrics['world_size']} processes)" if metrics.get("world_size", 1) > 1 else ""))
    print(f"wrote {args.out}/metrics.json and {args.out}/checkpoint.pt")
    return 0
