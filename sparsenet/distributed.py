"""Several processes (and machines): who this process is under ``torchrun``, and its process group.

sparsenet uses PyTorch's own engine for scale-out: ``torchrun`` starts the processes (one node, or
several with ``--nnodes N --rdzv-backend c10d``) and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and ``LOCAL_WORLD_SIZE``; ``torch.distributed`` (gloo on CPU, NCCL on GPU) carries the collectives.
Without torchrun a process is rank 0 of a world of one.

:func:`world` reads the environment only (no torch import: the CLI parser stays light).
:func:`process_group` joins the group for the commands that exchange data (``discover``,
``train``); ``compare --parallel runs`` needs none: its ranks coordinate through claim files in
the shared output directory (:mod:`sparsenet.claims`), so a rank that dies cannot hang the others.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from sparsenet.errors import SparsenetError

__all__ = ["World", "world", "process_group", "threads_per_process"]

_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    rank: int = 0              # this process, 0 .. world_size - 1 (torchrun's RANK)
    world_size: int = 1        # processes in the job, over every machine
    local_rank: int = 0        # this process on its machine
    local_world_size: int = 1  # processes on this machine

    @property
    def main(self) -> bool:
        """The process that writes a command's results (rank 0)."""
        return self.rank == 0

    @property
    def label(self) -> str:
        return f"rank {self.rank}/{self.world_size}"


def _int(name: str, low: int) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise SparsenetError(f"environment variable {name}={text!r}: expected an integer >= {low} "
                             "(torchrun sets it; unset it to run a single process)")
    return value


def world() -> World:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""
    size = _int("WORLD_SIZE", 1)
    rank = _int("RANK", 0)
    if size is None:
        if rank not in (None, 0):
            raise SparsenetError(f"RANK={rank} is set without WORLD_SIZE; start several processes with torchrun")
        return World()
    rank = 0 if rank is None else rank
    if rank >= size:
        raise SparsenetError(f"RANK={rank} is not below WORLD_SIZE={size}")
    local_size = _int("LOCAL_WORLD_SIZE", 1) or size
    local_rank = _int("LOCAL_RANK", 0)
    return World(rank, size, rank if local_rank is None else local_rank, local_size)


def threads_per_process(requested: int | None, here: World | None = None) -> int | None:
    """Torch threads per process: ``requested`` when given, else this machine's cores shared by its
    processes (None with one process: torch's own default), so several ranks do not oversubscribe."""
    here = here or world()
    if requested is not None or here.local_world_size == 1:
        return requested
    return max(1, (os.cpu_count() or 1) // here.local_world_size)


@contextmanager
def process_group(device=None):
    """Join torchrun's process group for the block (gloo for CPU, NCCL for CUDA); yields the World.

    With one process nothing is initialised.  The group is destroyed on the way out, also after an
    error, so a failing rank exits instead of hanging in a later collective.
    """
    here = world()
    if here.world_size == 1:
        yield here
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise SparsenetError("this torch build has no torch.distributed; run one process")
    backend = "nccl" if device is not None and getattr(device, "type", str(device)).startswith("cuda") else "gloo"
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise SparsenetError(f"WORLD_SIZE={here.world_size} but {name} is not set: start the processes with "
                                 "torchrun (it sets both), e.g. torchrun --nproc_per_node 2 -m sparsenet ...")
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, rank=here.rank, world_size=here.world_size)
    try:
        yield here
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()
