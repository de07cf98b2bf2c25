"""Several processes (and machines): who this process is under ``torchrun``, and its process group.

sparsenet uses PyTorch's own engine for scale-out: ``torchrun`` starts the processes (one node, or
several with ``--nnodes N --rdzv-backend c10d``) and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and ``LOCAL_WORLD_SIZE``; ``torch.distributed`` (gloo on CPU, NCCL on GPU) carries the collectives.
Without torchrun a process is rank 0 of a world of one.

:func:`world` reads the environment only (no torch import: the CLI parser stays light).
:func:`process_group` joins the group for the commands that exchange data (``discover``, and the
data-parallel trainings of ``train``, ``grow`` and ``compare``); ``compare --parallel runs`` needs
none: its ranks coordinate through claim files in the shared output directory
(:mod:`sparsenet.claims`), so a rank that dies cannot hang the others.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass

from sparsenet.errors import SparsenetError

__all__ = ["World", "world", "process_group", "threads_per_process", "shard_bounds", "shard_batches",
           "merge_stats_to_main", "gather_samples_to_main", "data_parallel", "barrier", "on_main", "all_sum",
           "all_equal", "broadcast_buffers", "per_rank_batch", "solo", "writes_here"]

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
    """Join torchrun's process group for the block (gloo for CPU; for CUDA, NCCL and gloo); yields the World.

    With one process nothing is initialised.  The group is created once per process and kept until
    it exits (destroying and re-creating it between two calls races: one rank may still be
    connecting to the old group when another builds the new one).  After an error it is destroyed
    at once, so a failing rank exits instead of leaving the others hanging in a later collective.
    """
    here = world()
    if here.world_size == 1 or _solo:
        yield here if here.world_size == 1 else World()
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise SparsenetError("this torch build has no torch.distributed; run one process")
    # with CUDA: NCCL for the GPU tensors (gradients), gloo still for the few CPU ones (counts, sums)
    backend = "cpu:gloo,cuda:nccl" if device is not None and getattr(device, "type", str(device)).startswith("cuda") \
        else "gloo"
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


_solo = 0   # > 0 inside solo(): this process works alone although torchrun started several


@contextmanager
def solo():
    """Within the block this process trains and records alone, as a world of one, although it is a
    torchrun rank: ``compare --parallel runs`` gives each rank its own runs (no group, no DDP)."""
    global _solo
    _solo += 1
    try:
        yield
    finally:
        _solo -= 1


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


# ----------------------------------------------------------------------------- data-parallel training

def per_rank_batch(batch_size: int, here: World | None = None) -> int:
    """Each rank's share of the recipe's batch: the global batch stays the single process's, so the
    SGD steps (and the learning rate that suits them) are the same with any number of processes."""
    here = here or world()
    if batch_size % here.world_size:
        raise SparsenetError(f"batch size {batch_size} cannot be shared by {here.world_size} processes: the global "
                             "batch stays the single process's, so each rank takes batch size / processes; give a "
                             f"batch size that is a multiple of {here.world_size}, or another number of processes")
    return batch_size // here.world_size


def data_parallel() -> World | None:
    """This process's World when it is one of several in a joined process group (the trainings are
    then data-parallel: every rank runs the same pipeline, rank 0 writes); None otherwise (one
    process, or ``compare --parallel runs``, whose ranks join no group)."""
    here = world()
    if here.world_size == 1 or _solo:
        return None
    import torch.distributed as dist

    return here if dist.is_available() and dist.is_initialized() else None


def writes_here() -> bool:
    """Whether this process writes results: always, but in a data-parallel job rank 0 alone."""
    here = data_parallel()
    return here is None or here.main


def barrier() -> None:
    """Wait for every rank (nothing with one process)."""
    if data_parallel() is not None:
        import torch.distributed as dist

        dist.barrier()


def on_main(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on rank 0 only (the steps that write files which every rank then
    reads: a discovery, a module spec), then a barrier, so no rank reads before rank 0 has written.
    Returns fn's value on rank 0, None on the others; with one process it is a plain call."""
    here = data_parallel()
    if here is None:
        return fn(*args, **kwargs)
    value = fn(*args, **kwargs) if here.main else None
    barrier()
    return value


def all_sum(values) -> list[float]:
    """The sums over the ranks of a few numbers (float64), in the same order on every rank."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if data_parallel() is not None:
        dist.all_reduce(t)
    return t.tolist()


def all_equal(value: int, what: str) -> None:
    """Refuse (on every rank) when the ranks hold different integers for ``what``: a rank that
    read other files would otherwise train something else and hang the others."""
    import torch
    import torch.distributed as dist

    here = data_parallel()
    if here is None:
        return
    t = torch.tensor([int(value), -int(value)], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != -int(t[1]):
        raise SparsenetError(f"the {here.world_size} processes disagree about {what} (from {-int(t[1])} to "
                             f"{int(t[0])}): every rank must see the same --out directory (a shared filesystem "
                             "when the ranks run on several machines)")


def broadcast_buffers(model) -> None:
    """Rank 0's buffers (batch-norm running statistics) copied to every rank: each rank's last
    training forward updated its own from its own batch, and every rank must evaluate the network
    rank 0 saves."""
    import torch.distributed as dist

    if data_parallel() is None:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)
