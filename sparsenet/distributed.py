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

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass

from sparsenet.errors import SparsenetError

__all__ = ["World", "world", "process_group", "threads_per_process", "shard_bounds", "shard_batches",
           "merge_stats_to_main", "gather_samples_to_main"]

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

    With one process nothing is initialised.  The group is created once per process and kept until
    it exits (destroying and re-creating it between two calls races: one rank may still be
    connecting to the old group when another builds the new one).  After an error it is destroyed
    at once, so a failing rank exits instead of leaving the others hanging in a later collective.
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
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=here.rank, world_size=here.world_size)
        atexit.register(_destroy_group)
    try:
        yield here
    except BaseException:
        _destroy_group()
        raise


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- sharded statistics

def shard_bounds(n: int, here: World) -> tuple[int, int]:
    """[lo, hi) of ``n`` samples that rank ``here.rank`` records: contiguous blocks in rank order, so
    the shards concatenated in rank order are the samples one process reads, in its order."""
    if n < here.world_size:
        raise SparsenetError(f"{n} sample(s) cannot be shared by {here.world_size} processes; "
                             "give at least one sample per process (--max-samples, or fewer processes)")
    return n * here.rank // here.world_size, n * (here.rank + 1) // here.world_size


def shard_batches(batches, lo: int, hi: int):
    """The samples lo .. hi-1 of a stream of batches (the others are skipped, not computed on)."""
    seen = 0
    for xb in batches:
        start, stop = max(lo - seen, 0), min(hi - seen, len(xb))
        seen += len(xb)
        if start < stop:
            yield xb[start:stop]
        if seen >= hi:
            return


def _gather_to_main(array, here: World):
    """The arrays of every rank on rank 0, in rank order (one 1-d float64/int64 tensor per rank; the
    lengths may differ); None on the other ranks."""
    import torch
    import torch.distributed as dist

    t = torch.as_tensor(array).reshape(-1).contiguous()
    size = torch.tensor([t.numel()], dtype=torch.int64)
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(here.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=t.dtype)
    padded[:t.numel()] = t
    bufs = [torch.zeros(longest, dtype=t.dtype) for _ in range(here.world_size)] if here.main else None
    dist.gather(padded, bufs, dst=0)
    return [b[:int(s.item())] for b, s in zip(bufs, sizes)] if here.main else None


def merge_stats_to_main(stats, here: World):
    """Every rank's ``ChannelStats`` merged on rank 0 exactly (float64 sums, Chan's formula), in rank
    order so the result does not depend on timing; None on the other ranks.

    What travels: ``to_dict()``'s arrays, i.e. for C channels and R radii about (R + 1) C^2 float64
    numbers plus the int64 co-firing counts (C^2) per rank.
    """
    from sparsenet.stats import ChannelStats

    import numpy as np

    mine = stats.to_dict()
    numeric = sorted(k for k, v in mine.items() if v.dtype.kind in "biuf")   # the same keys on every rank
    gathered = {k: _gather_to_main(mine[k].astype(np.float64 if mine[k].dtype.kind == "f" else np.int64), here)
                for k in numeric}
    if not here.main:
        return None
    merged = None
    for r in range(here.world_size):
        d = {k: gathered[k][r].numpy().reshape(v.shape).astype(v.dtype) if k in gathered else v
             for k, v in mine.items()}
        shard = ChannelStats.from_dict(d)
        merged = shard if merged is None else merged.merge(shard)
    return merged


def gather_samples_to_main(values, here: World):
    """The recorded samples (N_r x ...) of every rank concatenated on rank 0 in rank order; None elsewhere."""
    import torch

    parts = _gather_to_main(values.float(), here)
    if not here.main:
        return None
    rest = tuple(values.shape[1:])
    return torch.cat([p.reshape(-1, *rest) for p in parts])
