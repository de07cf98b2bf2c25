"""`sparsenet build`: a discovery to a module spec (optionally to a budget), or a spec's summary."""

from __future__ import annotations

import re

from sparsenet.builder.spec import CONNECTIVITIES, DEFAULT_CONNECTIVITY
from sparsenet.errors import SparsenetError


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
    p.add_argument("--connectivity", choices=CONNECTIVITIES, default=DEFAULT_CONNECTIVITY,
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
                   help="reference module for --picture (default: --budget-like, else googlenet_small:3a)")
    p.add_argument("--pad-tolerance", type=float, default=None,
                   help="builder: extra multiply-adds allowed to fuse unequal clusters into one grouped conv "
                        "(default 0.25; 0 = equal shapes only); affects the summary only")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.build import build

    built = build(discovery=args.discovery, spec=args.spec, out=args.out, connectivity=args.connectivity,
                  batch_norm=args.batch_norm, budget_macs=args.budget_macs, budget_like=args.budget_like,
                  input_size=_input_size(args.input_size) if args.input_size else None,
                  in_channels=args.in_channels, picture=args.picture, reference=args.reference,
                  pad_tolerance=args.pad_tolerance)
    print(built.summary)
    if (line := built.budget_line()) is not None:
        print(line)
    if built.out is not None:
        print(f"wrote {built.out}")
    if built.picture is not None:
        print(f"wrote {built.picture}")
    return 0


def _input_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", text)
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise SparsenetError(f"--input-size {text!r} is not H,W; expected two positive integers, e.g. 14,14")
    return int(m[1]), int(m[2])
