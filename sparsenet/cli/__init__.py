"""The ``sparsenet`` command line: a thin layer that parses arguments and calls the library.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which registers
the parser and sets ``func`` to a function taking the parsed arguments.  User errors
(``SparsenetError`` and friends) are printed as one line on stderr with exit status 2, never as a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sparsenet.version import __version__
from sparsenet.cli.options import add_log_argument
from sparsenet.logs import start_logging, stop_logging
from sparsenet.errors import SparsenetError

# Sub-command modules, in the order `sparsenet --help` lists them.  A module that is not there
# yet (work in progress) is skipped rather than breaking the whole CLI.
COMMANDS = ["datasets", "models", "train", "discover", "build", "grow", "apply", "lesion", "compare", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsenet",
        description="Discover Inception-like topology from the correlation structure of trained layers.",
    )
    parser.add_argument("--version", action="version", version=f"sparsenet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sparsenet.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sparsenet.cli.{name}":
                continue
            raise
        module.add_parser(sub)
    for command_parser in sub.choices.values():  # every command can write a log file
        add_log_argument(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    handler = None
    try:
        handler = start_logging(args.log, sys.argv[1:] if argv is None else [str(a) for a in argv])
        return int(args.func(args) or 0)
    except (SparsenetError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        if handler is not None:  # (without a log file, logging's last-resort handler would print it twice)
            logging.getLogger("sparsenet").error("%s", exc)
        print(f"sparsenet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sparsenet {args.command}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    finally:
        stop_logging(handler)


if __name__ == "__main__":
    sys.exit(main())
