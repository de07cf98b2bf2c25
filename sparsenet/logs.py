"""The log file of a command (``--log FILE``): Python ``logging`` records of the ``sparsenet``
loggers at INFO and above, starting with the command line.  Modules log with
``logging.getLogger(__name__)``; long runs log their settings when they start."""

from __future__ import annotations


def start_logging(path: str | None, argv: list[str]):
    """With a --log FILE: log INFO and above there, starting with the command line; returns
    the handler (for ``stop_logging``), or None."""
    import logging

    if not path:
        return None
    from sparsenet.distributed import world

    here = world()
    tag = f"[{here.label}] " if here.world_size > 1 else ""   # torchrun ranks append to one file
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger("sparsenet")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.info("command: sparsenet %s", " ".join(argv))
    return handler


def stop_logging(handler) -> None:
    import logging

    if handler is not None:
        logging.getLogger("sparsenet").removeHandler(handler)
        handler.close()
