"""Options shared by the commands that run a model: --model (a registered name or an import
path), --model-arg, --weights, --device, --workers and the recipe's stability settings; --log / --log-file is added
to every command by ``cli/__init__``.

The choice lists come from the library (``sparsenet.device.DEVICES``); nothing here imports torch.
"""

from __future__ import annotations


def add_model_arguments(group, *, default: str | None, weights: bool = True) -> None:
    """--model (a registered name or an import path to the user's own factory), --model-arg
    and, where the command reads trained weights, --weights."""
    group.add_argument("--model", default=default,
                       help="a registered model (see `sparsenet models`), package.module:callable or "
                            "path/to/file.py:callable returning an nn.Module (an import path runs that code)"
                            + (f"; default {default}" if default else ""))
    group.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                       help="keyword argument of the model's factory, e.g. width=16 (repeatable)")
    if weights:
        group.add_argument("--weights", default=None, help="a plain state_dict file (torch.save(model.state_dict()); "
                                                           "read with weights_only=True) to load into --model")


def add_device_argument(parser) -> None:
    """--device auto|cpu|cuda[:N]|mps (default auto: CUDA when available)."""
    from sparsenet.device import DEVICES

    parser.add_argument("--device", default="auto",
                        help=f"{' | '.join(DEVICES)} (default auto: CUDA when available, else the CPU)")


def add_workers_argument(parser) -> None:
    """--workers N: the training DataLoader's worker processes."""
    from sparsenet.cli.common import bounded_int
    from sparsenet.limits import MAX_LOADER_WORKERS

    parser.add_argument("--workers", type=bounded_int(0, MAX_LOADER_WORKERS), default=0,
                        help="DataLoader worker processes (default 0: load in this process)")


def add_stability_arguments(parser, recipe) -> None:
    """--warmup-steps and --clip-grad-norm, defaults from ``recipe`` (a TrainConfig): what keeps a
    network without batch norm from diverging at a high learning rate."""
    parser.add_argument("--warmup-steps", type=int, default=recipe.warmup_steps,
                        help=f"linear learning-rate warm-up over the first N steps (default {recipe.warmup_steps})")
    parser.add_argument("--clip-grad-norm", type=float, default=recipe.clip_grad_norm,
                        help=f"clip the gradients' global norm (0: off; default {recipe.clip_grad_norm:g})")


def add_log_argument(parser) -> None:
    # --log-file too: torchrun's own parser rejects --log (and --log=FILE) anywhere on its command line
    # as an ambiguous abbreviation of its --log-dir / --logs-specs
    parser.add_argument("--log-file", "--log", dest="log", default=None, metavar="FILE",
                        help="also write a log (Python logging) to FILE (under torchrun: --log-file; every rank "
                             "appends its lines, tagged with its rank)")

