"""`sparsenet bench` (and `python -m benchmarks`): run the performance benchmarks, every stage
against its limit, as ratios."""

from __future__ import annotations

import argparse
import shlex
import sys

from sparsenet.bench import runner
from sparsenet.bench.runner import MEASUREMENTS
from sparsenet.cli.common import parse_key_values
from sparsenet.cli.options import add_device_argument, add_model_arguments
from sparsenet.errors import SparsenetError



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer repeats (a minute or two on a busy 2-core CPU)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite's sizes
    p.add_argument("--out", default="benchmarks/results",
                   help="directory of the results JSON (default benchmarks/results)")
    p.add_argument("--name", default=None, help="results file name without .json (default: the mode)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's default, recorded in the JSON)")
    p.add_argument("--figures", default=None, help="also write the perf_*.png plots into this directory")
    p.add_argument("--grown", default=None,
                   help="network spec of the discovered network for 'inference' (default "
                        "docs/examples/grow-mnist5k/network.json when present, else a planted one)")
    p.add_argument("--plot", default=None, metavar="RESULTS_JSON",
                   help="only draw the plots of an existing results file into --figures")
    p.add_argument("--before", default=None, metavar="RESULTS_JSON",
                   help="with --plot: an earlier results file drawn faded beside it (clustering)")
    add_model_arguments(p, default=None)
    p.add_argument("--input-size", default=None, help="with --model: the input shape C,H,W")
    add_device_argument(p)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="performance benchmarks: statistics, clustering, realisation, inference",
        description="Run every performance measurement side by side, print a table of ratios "
                    "against their targets and write OUT/NAME.json (see docs/performance.md).")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args, command: str | None = None) -> int:
    if args.plot:
        if not args.figures:
            raise SparsenetError("--plot needs --figures DIR")
        for path in runner.replot(args.plot, args.figures, before=args.before):
            print(f"wrote {path}")
        return 0
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only is not None else None
    if only == []:
        raise SparsenetError(f"--only {args.only!r} names no measurement; accepted: a comma-separated subset of "
                             f"{', '.join(runner.MEASUREMENTS)}")
    user = _user_model(args)
    runner.run(mode=mode, only=only, out=args.out, name=args.name, threads=args.threads, figures=args.figures,
               grown=args.grown, command=command or "sparsenet " + shlex.join(sys.argv[1:]), user=user)
    return 0


def _user_model(args) -> dict | None:
    """--model and its options as bench.model's arguments (None without --model)."""
    from sparsenet.device import resolve_device

    device = resolve_device(args.device)  # refused before anything runs
    if not args.model:
        given = [o for o, v in (("--input-size", args.input_size), ("--weights", args.weights),
                                ("--model-arg", args.model_arg)) if v]
        if given:
            raise SparsenetError(f"{given[0]} is only used with --model (a model of yours to measure); "
                                 "without --model the benchmarks use their own networks")
        return None
    try:
        shape = tuple(int(v) for v in (args.input_size or "").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise SparsenetError(f"--model needs --input-size C,H,W such as 1,28,28; got {args.input_size!r}")
    return {"model": args.model, "model_args": parse_key_values(args.model_arg, "--model-arg"),
            "weights": args.weights, "input_size": shape, "device": device}


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """``python -m benchmarks``: the same options as ``sparsenet bench``."""
    ap = argparse.ArgumentParser(prog=prog, description="sparsenet's performance benchmarks (as `sparsenet bench`).")
    add_arguments(ap)
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(args, command=" ".join([prog] + [shlex.quote(a) for a in argv]))
    except SparsenetError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
