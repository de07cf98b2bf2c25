"""`sparsenet discover`: cluster a trained layer's channels by how they fire together."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace

from sparsenet.analyser.settings import DISCOVER
from sparsenet.errors import SparsenetError
from sparsenet.cli.common import add_analysis_arguments, analysis_settings, parse_key_values
from sparsenet.cli.options import add_device_argument, add_model_arguments
from sparsenet.training.config import DEFAULT_MODEL


def add_parser(sub) -> None:
    p = sub.add_parser(
        "discover", help="find groups of channels that fire together, with their spatial extent",
        description="With no arguments: train (or reuse a cached) small model on mnist5k, analyse its deepest "
                    "conv layer and write runs/discover/. Otherwise analyse --checkpoint/--layer or --activations.")
    src = p.add_argument_group("what to analyse")
    src.add_argument("--checkpoint", help="trained model checkpoint (from `sparsenet train`)")
    add_model_arguments(src, default=None)
    src.add_argument("--layer", help="layer name as model.named_modules() gives it (see --list-layers); default: the deepest conv output")
    src.add_argument("--data", help="dataset to record on (default: the checkpoint's dataset, else mnist5k)")
    src.add_argument("--data-root", help="directory of the dataset files, where it applies")
    src.add_argument("--activations", help="saved activations (.npy or .pt, N x C x H x W or N x C); no model needed")
    src.add_argument("--stats", help="saved statistics (DIR/stats.npz of an earlier run): re-analyse without recording")
    src.add_argument("--list-layers", action="store_true", help="print every hookable layer with its output shape and exit")
    src.add_argument("--input-size", default=None, help="with --list-layers: input shape C,H,W (default: the model's)")
    add_device_argument(src)
    ana = p.add_argument_group("analysis")
    add_analysis_arguments(ana, DISCOVER, samples="images to record")
    ana.add_argument("--seed", type=int, default=DISCOVER.seed)
    p.add_argument("--out", default="runs/discover", help="run directory (default runs/discover)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet import discover as d
    from sparsenet.device import resolve_device
    from sparsenet.io import check_out_dir

    if args.list_layers:
        return _list_layers(args)
    check_out_dir(args.out)
    saved = [o for o, v in (("--activations", args.activations), ("--stats", args.stats)) if v]
    if len(saved) > 1 or (saved and (args.checkpoint or args.model or args.weights or args.layer or args.data)):
        raise SparsenetError(f"{' and '.join(saved)} analyse saved data; they cannot be combined with each other or "
                             "with --checkpoint/--model/--weights/--layer/--data")
    settings = analysis_settings(args)
    resolve_device(args.device)  # a device the machine lacks is refused before any training or loading
    command = "sparsenet " + shlex.join(sys.argv[1:])
    if args.stats:
        if d.needs_samples(settings):
            print("note: significance and stability need the samples; --stats holds statistics only, so they "
                  "are not computed (--permutations 0 --resamples 0 says so explicitly)", file=sys.stderr)
        if settings.clusters == "auto":
            print(f"note: K by the {d.AUTO_K_WITHOUT_SAMPLES}", file=sys.stderr)
        discovery = d.analyse_stats(d.load_stats(args.stats), settings, {"stats": str(args.stats)})
    elif args.activations:
        acts = d.load_activations(args.activations)
        print(f"analysing {tuple(acts.values.shape)} activations")
        discovery = d.analyse(acts, settings)[1]
    else:
        checkpoint = args.checkpoint or (None if args.model else d.default_checkpoint(seed=args.seed))
        discovery = d.discover_model(checkpoint, args.model, parse_key_values(args.model_arg, "--model-arg"),
                                     args.weights, layer=args.layer, data=args.data, data_root=args.data_root,
                                     device=args.device, settings=settings)
        if discovery is None:   # a torchrun rank other than 0: its shard is merged into rank 0's discovery
            return 0
    out = replace(discovery, command=command).save(args.out)
    from sparsenet.discovery.report import summary_table

    print(summary_table(discovery))
    print(f"wrote {out}/discovery.json, report.md, plots and raw artefacts (affinity.npy, spectrum.npy, stats.npz)")
    return 0


def _list_layers(args) -> int:
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet")
    from sparsenet.discover import load_model
    from sparsenet.models import model_info
    from sparsenet.models.external import build_from_spec, parse_model_spec
    from sparsenet.recording import hookable_layers

    shape = _input_size(args.input_size) if args.input_size else None
    if args.checkpoint:
        model, info = load_model(args.checkpoint, args.model, None, None)
        shape = shape or tuple(info.get("input_shape") or ())
    else:
        name = args.model or DEFAULT_MODEL
        if not parse_model_spec(name).imported:
            shape = shape or model_info(name).default_input
        elif shape is None:
            raise SparsenetError(f"--list-layers with --model {name} needs --input-size C,H,W")
        model, _ = build_from_spec(name, parse_key_values(args.model_arg, "--model-arg"),
                                   optional={"in_channels": shape[0]})
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
