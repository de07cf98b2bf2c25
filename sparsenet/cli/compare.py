"""`sparsenet compare`: train discovered and hand-designed networks with the same recipe and seeds."""

from __future__ import annotations

from sparsenet.cli.options import add_device_argument


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare discovered networks with hand-designed GoogLeNet at equal cost (from a TOML config)",
        description="Train every candidate of an experiment configuration (experiments/*.toml) once per seed "
                    "with the same data split and recipe, time CPU inference of all of them together, and write "
                    "results.json, results.csv, summary.json, report.md and plots into --out. Rerunning the same "
                    "configuration into the same --out skips finished runs and resumes interrupted ones; "
                    "another configuration is refused there.")
    p.add_argument("--config", default=None, help="experiment configuration, e.g. experiments/smoke.toml")
    p.add_argument("--summarise", metavar="DIR", default=None,
                   help="recompute the pre-registered verdict of DIR from its config.json and run records "
                        "(records/<candidate>/seed<k>.json) alone, without training, and print it")
    p.add_argument("--out", default=None, help="output directory (default runs/compare-<config name>)")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration (and that its dataset and networks load) and stop")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.add_argument("--parallel", choices=["runs"], default=None,
                   help="runs: share the candidate x seed runs out among workers (torchrun ranks, or processes on "
                        "machines that see the same --out), each run claimed in --out/claims/; the worker that "
                        "finishes last writes the summary; without --parallel, under torchrun every network is "
                        "trained data-parallel by all the ranks (docs/distributed.md)")
    add_device_argument(p)
    p.add_argument("--trust-model", action="append", default=[], metavar="IMPORT_PATH",
                   help="run the code of a model candidate's import path (package.module:callable or "
                        "file.py:callable); a configuration never runs code the command line does not name")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from sparsenet.compare.candidates import load_data, preflight
    from sparsenet.compare.report import accuracy_ci_text
    from sparsenet.compare.run import run_comparison
    from sparsenet.compare.experiment import load_experiment

    from sparsenet.device import resolve_device
    from sparsenet.errors import SparsenetError
    from sparsenet.io import check_out_dir

    if (args.config is None) == (args.summarise is None):
        raise SparsenetError("give --config FILE (run an experiment) or --summarise DIR (recompute its verdict)")
    if args.summarise:
        from sparsenet.compare.report import verdict_lines
        from sparsenet.compare.records import recompute

        print("\n".join(verdict_lines(recompute(args.summarise))))
        return 0
    device = resolve_device(args.device)  # refused before anything loads
    experiment = load_experiment(args.config)
    out = check_out_dir(Path(args.out) if args.out else Path("runs") / f"compare-{Path(args.config).stem}")
    if args.check:
        preflight(experiment, load_data(experiment), args.trust_model)
        n = len(experiment.points)
        print(f"{args.config}: valid; {n} candidate(s) x {len(experiment.seeds)} seed(s): "
              + ", ".join(p.name for p in experiment.points))
        return 0
    command = (f"sparsenet compare --config {args.config} --out {out}" + (" --quiet" if args.quiet else "")
               + "".join(f" --trust-model {m}" for m in args.trust_model)
               + (f" --parallel {args.parallel}" if args.parallel else ""))
    summary = run_comparison(experiment, out, config_text=Path(args.config).read_text(), progress=not args.quiet,
                             command=command, device=device, trusted=args.trust_model, parallel=args.parallel)
    if summary.get("data_parallel") is True:   # a rank other than 0 of a data-parallel comparison
        return 0
    if not summary.get("finished", True):
        print(f"rank {summary['rank']}/{summary['world_size']}: {summary['trained']} run(s) done here; the worker "
              f"that finishes last writes {out / 'report.md'}")
        return 0
    if args.parallel:
        print(f"rank {summary['parallel']['finished_by_rank']}/{summary['parallel']['world_size']} wrote the summary; "
              f"{summary['trained']} run(s) done by this worker, the others by other workers or earlier")
    else:
        dp = summary.get("data_parallel")
        print(f"{summary['trained']} network(s) trained now, {summary['reused']} run(s) reused"
              + (f", each data-parallel on {dp['world_size']} processes" if dp else ""))
    for c in summary["candidates"]:  # a candidate whose every run diverged has no accuracy (or cost)
        macs = "n/a" if c["macs"] is None else f"{c['macs']:,.0f}"
        print(f"  {c['candidate']:<28} {c['role']:<10} n={c['n']}  "
              f"accuracy {accuracy_ci_text(c['accuracy_mean'], c['accuracy_ci_half'])} %  mult-adds {macs}")
    for m in summary["matched"]:
        if "diff" in m:
            flag = " (extrapolated)" if m["extrapolated"] else ""
            print(f"  {m['candidate']} vs {m['compare_to']} at matched mult-adds: {100 * m['diff']:+.2f} pp, "
                  f"p = {m['p'] if m['p'] is not None else float('nan'):.3f}: {m['verdict']}{flag}")
    print(f"report: {out / 'report.md'}")
    return 0
