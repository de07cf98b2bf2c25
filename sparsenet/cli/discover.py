"""`sparsenet discover`: cluster a trained layer's channels by how they fire together."""

from __future__ import annotations

import shlex
import sys

from sparsenet.analyser.settings import DISCOVER
from sparsenet.errors import SparsenetError
from sparsenet.cli.common import add_analysis_arguments, analysis_settings


def add_parser(sub) -> None:
    p = sub.add_parser(
        "discover", help="find groups of channels that fire together, with their spatial extent",
        description="With no arguments: train (or reuse a cached) small model on mnist5k, analyse its deepest "
                    "conv layer and write runs/discover/. Otherwise analyse --checkpoint/--layer or --activations.")
    src = p.add_argument_group("what to analyse")
    src.add_argument("--checkpoint", help="trained model checkpoint (from `sparsenet train`)")
    src.add_argument("--layer", help="layer name as model.named_modules() gives it (see --list-layers); default: the deepest conv output")
    src.add_argument("--data", help="dataset to record on (default: the checkpoint's dataset)")
    src.add_argument("--data-root", help="directory of the dataset files, where it applies")
    src.add_argument("--activations", help="saved activations (.npy or .pt, N x C x H x W or N x C); no model needed")
    src.add_argument("--list-layers", action="store_true", help="print every hookable layer with its output shape and exit")
    src.add_argument("--model", default=None, help="with --list-layers and no checkpoint: a registered model (default plaincnn)")
    src.add_argument("--input-size", default=None, help="with --list-layers: input shape C,H,W (default: the model's)")
    ana = p.add_argument_group("analysis")
    add_analysis_arguments(ana, DISCOVER, samples="images to record")
    ana.add_argument("--seed", type=int, default=DISCOVER.seed)
    p.add_argument("--out", default="runs/discover", help="run directory (default runs/discover)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet import discover as d
    from sparsenet.io import check_out_dir

    if args.list_layers:
        return _list_layers(args)
    check_out_dir(args.out)
    if args.activations and (args.checkpoint or args.layer or args.data):
        raise SparsenetError("--activations analyses a saved array; it cannot be combined with --checkpoint/--layer/--data")
    settings = analysis_settings(args)
    if args.activations:
        acts = d.load_activations(args.activations)
    else:
        checkpoint = args.checkpoint or d.default_checkpoint(seed=args.seed)
        acts = d.record_checkpoint(checkpoint, args.layer, args.data, args.data_root, args.max_samples, args.seed)
    print(f"analysing {tuple(acts.values.shape)} activations"
          + (f" of layer {acts.provenance['layer']}" if "layer" in acts.provenance else ""))
    analyzer, discovery = d.analyse(acts, settings)
    out = d.write_run(analyzer, discovery, args.out, command="sparsenet " + shlex.join(sys.argv[1:]))
    from sparsenet.discovery.report import summary_table

    print(summary_table(discovery))
    print(f"wrote {out}/discovery.json, report.md and plots")
    return 0


def _list_layers(args) -> int:
    from sparsenet.training.checkpoint import model_from_checkpoint
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet")
    from sparsenet.models import get_model, model_info
    from sparsenet.recording import hookable_layers

    if args.checkpoint:
        model, ckpt = model_from_checkpoint(args.checkpoint)
        shape = tuple(ckpt.get("input_shape") or ())
    else:
        name = args.model or "plaincnn"
        shape = _input_size(args.input_size) if args.input_size else model_info(name).default_input
        model = get_model(name, in_channels=shape[0])
    if args.input_size:
        shape = _input_size(args.input_size)
    for name, kind, out_shape in hookable_layers(model, shape):
        print(f"{name:<40} {kind:<20} {'x'.join(map(str, out_shape))}")
    return 0


def _input_size(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise SparsenetError(f"--input-size expects C,H,W such as 1,28,28; got {text!r}")
    from sparsenet.limits import check_input_size

    check_input_size(shape, "--input-size")
    return shape
