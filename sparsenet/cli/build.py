"""`sparsenet build`: a discovery to a module spec (optionally to a budget), or a spec's summary."""

from __future__ import annotations

import re

DEFAULT_REFERENCE = "googlenet_small:3a"


def _macs(text: str) -> float:
    """argparse type: multiply-adds as 32000000, 3.2e7 or 32M (K, M, G suffixes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise ValueError(text)
    value = float(m[1]) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m[2].lower()]
    if value <= 0:
        raise ValueError(text)
    return value


_macs.__name__ = "multiply-add count (e.g. 32000000, 3.2e7 or 32M)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "build", help="turn a discovery into an Inception-like module spec, or summarise a spec",
        description="With --discovery: apply the rules of docs/builder.md (clusters -> branches), optionally scale "
                    "to a multiply-add budget, and write the spec. With --spec: print its branches, parameters "
                    "and multiply-adds (or rescale it to a budget with --out).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--discovery", help="DIR/discovery.json (or DIR) written by `sparsenet discover`")
    src.add_argument("--spec", help="a spec JSON file to summarise (or rescale)")
    p.add_argument("--out", help="spec file to write (default with --discovery: spec.json beside the discovery)")
    p.add_argument("--connectivity", choices=["cluster", "full"], default="cluster",
                   help="cluster: each branch reads only its cluster's channels (Arora; default); "
                        "full: one branch per kernel size reading all channels (GoogLeNet)")
    p.add_argument("--batch-norm", action="store_true", help="BatchNorm after every conv")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-macs", type=_macs, help="scale widths to this many multiply-adds (within 2%%)")
    budget.add_argument("--budget-like", metavar="MODEL[@MULT]:STAGE",
                        help="scale widths to the multiply-adds of that Inception module where it runs, "
                             "e.g. googlenet_small:3a or googlenet_small@0.5:3a")
    p.add_argument("--input-size", metavar="H,W",
                   help="the module's input size (default: the discovery's provenance.layer_shape)")
    p.add_argument("--in-channels", type=int, help="refuse unless the module reads this many channels")
    p.add_argument("--picture", metavar="PNG", help="draw the module beside the reference GoogLeNet module")
    p.add_argument("--reference", metavar="MODEL[@MULT]:STAGE",
                   help=f"reference module for --picture (default: --budget-like, else {DEFAULT_REFERENCE})")
    p.add_argument("--pad-tolerance", type=float, default=None,
                   help="builder: extra multiply-adds allowed to fuse unequal clusters into one grouped conv "
                        "(default 0.25; 0 = equal shapes only); affects the summary only")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from sparsenet.builder.modules import DEFAULT_PAD_TOLERANCE, build_module, module_summary, network_summary
    from sparsenet.discovery.value import load_discovery
    from sparsenet.errors import SparsenetError
    from sparsenet.io import atomic_savefig
    from sparsenet.builder.rules import discovery_input_size, module_from_discovery, parse_budget_like, reference_module
    from sparsenet.builder.spec import ModuleSpec, check_fits, load_spec, save_spec

    tol = DEFAULT_PAD_TOLERANCE if args.pad_tolerance is None else args.pad_tolerance
    size = _input_size(args.input_size) if args.input_size else None
    like = args.budget_like
    reference = None
    if like:
        reference = reference_module(*_swap(parse_budget_like(like)))

    if args.discovery:
        discovery = load_discovery(args.discovery)
        if args.in_channels is not None and args.in_channels != discovery.channels:
            raise SparsenetError(f"the discovery's layer has {discovery.channels} channels, but --in-channels is "
                                 f"{args.in_channels}: the module would not fit the layer it follows")
        size = size or discovery_input_size(discovery)

        def make(f: float = 1.0) -> ModuleSpec:
            return module_from_discovery(discovery, connectivity=args.connectivity,
                                         batch_norm=args.batch_norm, width_scale=f)
        spec = _fit(make, args, reference, size) if (args.budget_macs or like) else make()
        provenance = {**spec.provenance, "discovery": str(args.discovery)}
        if size is not None:
            provenance["input_size"] = list(size)
        if like:
            provenance["budget"] = {**provenance["budget"], "like": reference.name}
        spec = replace(spec, provenance=provenance)
        out = Path(args.out) if args.out else _beside(Path(args.discovery))
    else:
        spec = load_spec(args.spec)
        if args.in_channels is not None:
            if isinstance(spec, ModuleSpec):
                check_fits(spec, args.in_channels, after="the layer it follows (--in-channels)")
            elif spec.stem.in_channels != args.in_channels:
                raise SparsenetError(f"the network reads {spec.stem.in_channels} image channels, "
                                     f"but --in-channels is {args.in_channels}")
        size = size or _spec_size(spec)
        if args.budget_macs or like:
            if not isinstance(spec, ModuleSpec):
                raise SparsenetError("--budget-macs/--budget-like rescale a module spec; this is a network spec")
            spec = _fit(spec, args, reference, size)
        out = Path(args.out) if args.out else None

    # Everything that can fail happens before anything is written.
    if isinstance(spec, ModuleSpec):
        build_module(spec, pad_tolerance=tol)
        text = module_summary(spec, size, pad_tolerance=tol)
    else:
        text = network_summary(spec, size, pad_tolerance=tol)
    figure = None
    if args.picture:
        figure = _picture(spec, reference or reference_module(*_swap(parse_budget_like(args.reference or DEFAULT_REFERENCE))), size)
    if out is not None:
        save_spec(spec, out)
    if figure is not None:
        import matplotlib.pyplot as plt

        try:
            atomic_savefig(figure, args.picture, dpi=130)
        finally:
            plt.close(figure)
    print(text)
    budget = spec.provenance.get("budget") if isinstance(spec, ModuleSpec) else None
    if budget and (args.budget_macs or like):
        gap = budget["macs"] / budget["target_macs"] - 1
        print(f"budget: target {budget['target_macs']:,} multiply-adds" + (f" ({reference.name})" if like else "")
              + f", achieved {budget['macs']:,} ({gap:+.2%}) with width scale {budget['width_scale']:.4g}"
              + f" and {budget['adjust_steps']} single-width steps")
    if out is not None:
        print(f"wrote {out}")
    if figure is not None:
        print(f"wrote {args.picture}")
    return 0


def _swap(parsed):
    model, mult, stage = parsed
    return model, stage, mult


def _input_size(text: str) -> tuple[int, int]:
    from sparsenet.errors import SparsenetError

    m = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", text)
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise SparsenetError(f"--input-size {text!r} is not H,W; expected two positive integers, e.g. 14,14")
    return int(m[1]), int(m[2])


def _spec_size(spec):
    value = spec.provenance.get("input_size")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value)
    return None


def _fit(make, args, reference, size):
    from sparsenet.errors import SparsenetError
    from sparsenet.builder.rules import fit_budget

    if size is None:
        raise SparsenetError("a budget needs the module's input size: the discovery has no provenance.layer_shape; "
                             "give --input-size H,W")
    target = args.budget_macs if args.budget_macs else reference.macs
    return fit_budget(make, target, size)


def _beside(discovery: "Path"):
    return (discovery if discovery.is_dir() else discovery.parent) / "spec.json"


def _picture(spec, reference, size):
    from sparsenet.builder.drawing import comparison_figure
    from sparsenet.builder.spec import ModuleSpec, module_macs, module_params, network_macs, network_params

    if isinstance(spec, ModuleSpec):
        cost = f"{module_params(spec):,} params"
        if size is not None:
            cost += f", {module_macs(spec, size) / 1e6:.2f}M MACs at {size[0]}x{size[1]}"
        title = f"discovered ({spec.connectivity} connectivity)\n{cost}"
    else:
        cost = f"{network_params(spec):,} params"
        if size is not None:
            cost += f", {network_macs(spec, size) / 1e6:.2f}M MACs at {size[0]}x{size[1]}"
        title = f"discovered network\n{cost}"
    h, w = reference.input_size
    ref_title = (f"hand-designed: {reference.name}\n{reference.params:,} params, "
                 f"{reference.macs / 1e6:.2f}M MACs at {h}x{w}")
    return comparison_figure(spec, reference.spec, (title, ref_title))
