"""A small, deterministic training loop (nanoGPT style: explicit seeds, plain SGD, no magic).

Determinism on CPU: the model is built under ``torch.manual_seed(seed)``; every epoch re-seeds the
global RNG (dropout) and the shuffling generator from ``(seed, epoch)``, and the learning rate is
a pure function of the epoch.  So an interrupted run resumed from its last epoch checkpoint ends
bit-identical to an uninterrupted one.

Model selection: when the dataset carries a validation split (``x_val``, see
:mod:`sparsenet.data.splits`) every epoch records ``val_accuracy`` beside ``test_accuracy``, the
selected epoch is the first with the highest validation accuracy (:func:`select_epoch`), and with
``patience`` > 0 training stops once that many epochs have passed without a new best.  The
selection reads validation only; the test accuracy reported for the run is the selected epoch's.

Data-parallel under ``torchrun`` (:func:`train` joins the process group): the model is wrapped in
``DistributedDataParallel``; a ``DistributedSampler`` seeded like the single process's shuffle
deals rank r the positions r, r + W, ... of the same permutation, and each rank's batch is
batch_size / W, so each SGD step averages the gradient of the same global batch one process
would use (only dropout and augmentation draw differently: each rank from its own seed).
Evaluation is sharded and reduced: each rank counts the correct predictions on a contiguous block
of the split with rank 0's weights and buffers, and the counts are summed, so every rank holds the
same metrics (``compare`` and ``grow`` decide from them on every rank).  Only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sparsenet.version import __version__
from sparsenet.distributed import World, all_equal, all_sum, barrier, broadcast_buffers, data_parallel, per_rank_batch
from sparsenet.models.state import load_state
from sparsenet.training.checkpoint import load_checkpoint, save_checkpoint
from sparsenet.training.config import TrainConfig
from sparsenet.errors import CheckpointError, SparsenetError, TrainingDiverged
from sparsenet.io import atomic_write_json

log = logging.getLogger(__name__)


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Cosine schedule evaluated per epoch (stateless, so resume needs no scheduler state)."""
    return 0.5 * config.lr * (1 + math.cos(math.pi * epoch / config.epochs))


def warmup_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of the learning rate at global SGD step ``step`` (0-based): linear warm-up."""
    return 1.0 if step >= config.warmup_steps else (step + 1) / config.warmup_steps


def _logits(output):
    # GoogLeNet with auxiliary classifiers returns (main, aux1, aux2) in train mode.
    return output[0] if isinstance(output, (tuple, list)) else output


def _loss(output, y):
    if isinstance(output, (tuple, list)):  # the paper weights each auxiliary loss by 0.3
        return F.cross_entropy(output[0], y) + 0.3 * sum(F.cross_entropy(o, y) for o in output[1:])
    return F.cross_entropy(output, y)


@torch.no_grad()
def evaluate(model: torch.nn.Module, split, batch_size: int = 500, *, num_workers: int = 0,
             pin_memory: bool = False) -> float:
    """Accuracy of ``model`` on ``split`` (a ``Dataset`` of (image, label), read in order, or a
    ``DataLoader`` of (images, labels)), in eval mode, on the model's device; the previous
    mode is restored.  In a data-parallel job each rank reads a contiguous block of a ``Dataset``
    and the counts are summed over the ranks (a ``DataLoader`` is read whole by every rank)."""
    from torch.utils.data import DataLoader

    from sparsenet.data.training_data import pairs, split_batches
    from sparsenet.recording import model_device

    here = data_parallel()
    shard = None
    if here is not None and not isinstance(split, DataLoader):
        n = len(split)
        shard = range(n * here.rank // here.world_size, n * (here.rank + 1) // here.world_size)
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        correct, count = 0, 0
        for xb, yb in pairs(split_batches(split, batch_size, sampler=shard, num_workers=num_workers,
                                          pin_memory=pin_memory), "evaluation"):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            correct += (_logits(model(xb)).argmax(1) == yb).sum().item()
            count += len(yb)
    finally:
        model.train(was_training)
    if shard is not None:
        correct, count = all_sum([correct, count])
    return correct / max(count, 1)


def select_epoch(history: list[dict[str, float]]) -> dict[str, Any] | None:
    """The selected epoch of a history with validation accuracies (None without): the first best one."""
    if not history or history[0].get("val_accuracy") is None:
        return None
    best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -i))
    return {"rule": "best validation accuracy (first of ties)", "epoch": history[best]["epoch"],
            "val_accuracy": history[best]["val_accuracy"], "test_accuracy": history[best]["test_accuracy"],
            "epochs_run": len(history)}


def _stop_early(history: list[dict[str, float]], patience: int) -> bool:
    chosen = select_epoch(history)
    return bool(patience) and chosen is not None and len(history) - chosen["epoch"] >= patience


def _train_batches(data, config: TrainConfig, epoch: int, generator, sampler, num_workers: int, pin_memory: bool,
                   batch_size: int):
    """The training split's batches for one epoch: sparsenet's seeded loader over a Dataset
    (or the caller's ``sampler``, told the epoch), or the caller's DataLoader as it is."""
    from sparsenet.data.training_data import split_batches

    if sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return split_batches(data.train, batch_size, shuffle=True, generator=generator, sampler=sampler,
                         num_workers=num_workers, pin_memory=pin_memory, worker_seed=config.seed * 100_003 + epoch)


def _check_loader_batch_size(data, config: TrainConfig, here: World | None) -> None:
    from torch.utils.data import DataLoader

    if here is not None and isinstance(data.train, DataLoader):
        raise SparsenetError(f"training on {here.world_size} processes needs the training Dataset, not a DataLoader: "
                             "sparsenet shards a Dataset among the ranks with a DistributedSampler (a DataLoader "
                             "would give every rank the same batches)")
    size = getattr(data.train, "batch_size", None) if isinstance(data.train, DataLoader) else None
    if size is not None and size != config.batch_size:
        raise SparsenetError(f"the training DataLoader makes batches of {size} but the recipe says batch_size "
                             f"{config.batch_size}; give TrainConfig(batch_size={size}), or pass the Dataset "
                             "itself (sparsenet batches and shuffles it)")


def _rank_seed(base: int, here: World | None) -> int:
    """The seed of this rank's dropout and augmentation draws: ``base`` with one process (as
    always), else ``base`` and the rank mixed (each rank draws its own masks and crops)."""
    if here is None:
        return base
    import numpy as np

    hi, lo = np.random.SeedSequence([base, here.rank]).generate_state(2, np.uint32).tolist()
    return (hi << 32 | lo) >> 1


def _distributed_sampler(data, config: TrainConfig, here: World):
    """Rank ``here.rank``'s share of each epoch's permutation: torch draws it from seed + epoch, the
    seed the single process's shuffle uses, so the ranks' batches make up its global batches."""
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(data.train, num_replicas=here.world_size, rank=here.rank, shuffle=True,
                              seed=config.seed * 100_003, drop_last=False)


def train(
    model: torch.nn.Module,
    dataset,
    config: TrainConfig,
    *,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    device=None,
    num_workers: int = 0,
    patience: int = 0,
    sampler=None,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``; return (and write to out_dir) the metrics.

    ``dataset`` is a built-in ``sparsenet.data.Dataset`` or a
    :class:`~sparsenet.data.training_data.TrainingData` over the caller's own torch
    ``Dataset``s or ``DataLoader``s.  Batches are read through a ``DataLoader`` (built by
    :func:`~sparsenet.data.loader.train_loader`: ``num_workers`` workers, pinned memory for
    CUDA, indices from ``sampler`` when given, e.g. a ``DistributedSampler``, else one seeded
    permutation per epoch) and run on ``device`` (``auto``/None: CUDA when available); the
    shuffling and augmentation draw from the same seeded CPU generator on any device.  A
    training ``DataLoader`` of the caller's is used as it is (its batch size must be the recipe's).

    ``model_name``/``model_kwargs`` are stored in the checkpoint so that the model can be rebuilt
    with ``get_model`` (default: the class name, no arguments).  With ``resume`` the run
    continues from ``out_dir/checkpoint.pt``.  ``extra`` is merged into metrics.json and the
    checkpoint (provenance of the caller).  ``patience`` (needs a validation split): stop after
    that many epochs without a better validation accuracy (0: run every epoch).

    Under ``torchrun`` (several processes) the training is data-parallel (see the module
    docstring): every rank calls ``train`` with the same arguments, rank 0 alone writes
    ``out_dir``, every rank returns the same metrics (``world_size`` records the processes).
    """
    from sparsenet.device import resolve_device
    from sparsenet.distributed import process_group, world
    from sparsenet.data.loader import check_num_workers

    check_num_workers(num_workers)  # before anything loads or is written
    dev = resolve_device(device)
    here = world()
    if here.world_size > 1 and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", here.local_rank)   # one GPU per process on its machine
        torch.cuda.set_device(dev)
    with process_group(dev):
        return _train(model, dataset, config, model_name=model_name, model_kwargs=model_kwargs, out_dir=out_dir,
                      resume=resume, progress=progress, extra=extra, on_epoch=on_epoch, device=dev,
                      num_workers=num_workers, patience=patience, sampler=sampler)


def _train(model, dataset, config: TrainConfig, *, model_name, model_kwargs, out_dir, resume, progress, extra,
           on_epoch, device, num_workers, patience, sampler) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from sparsenet.models.accounting import measure
    from sparsenet.data import Augment
    from sparsenet.data.training_data import as_training_data, pairs, split_length
    from sparsenet.device import resolve_device
    from sparsenet.models import validate_input

    config.validate()
    if not isinstance(model, torch.nn.Module):
        raise SparsenetError(f"model is a {type(model).__name__}; accepted: a torch.nn.Module")
    data = as_training_data(dataset)
    model_name = model_name or type(model).__name__
    model_kwargs = dict(model_kwargs or {})
    if not isinstance(patience, int) or patience < 0:
        raise SparsenetError(f"patience must be an integer >= 0 (0: no early stopping), got {patience!r}")
    has_val = data.val is not None
    if patience and not has_val:
        raise SparsenetError("early stopping (patience > 0) needs a validation split (dataset.x_val, or "
                             "TrainingData(val=...))")
    here = data_parallel()  # None with one process
    _check_loader_batch_size(data, config, here)
    validate_input(model, data.input_shape)
    dev = resolve_device(device)
    batch_size = per_rank_batch(config.batch_size, here) if here else config.batch_size
    if here is not None and sampler is None:
        sampler = _distributed_sampler(data, config, here)
    pin = dev.type == "cuda"
    out = Path(out_dir) if out_dir is not None else None
    cost = measure(model, data.input_shape)  # on the CPU, before the model moves
    model.to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    augment = Augment(crop_padding=2, hflip=data.hflip) if config.augment else None
    history: list[dict[str, float]] = []
    start_epoch, wall_before, step = 0, 0.0, None
    if resume:
        start_epoch, history, wall_before, step = _restore(out, model, optimizer, config, model_name, data.name,
                                                           model_kwargs, list(data.input_shape))
    all_equal(start_epoch, "the epoch to resume from")
    net = model
    if here is not None:
        from torch.nn.parallel import DistributedDataParallel

        import warnings

        # a weight with a channel dimension of 1 has other (equivalent) strides than DDP's bucket; harmless
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    main = here is None or here.main

    def accuracy(split) -> float:
        broadcast_buffers(model)
        return evaluate(model, split, config.eval_batch_size, num_workers=num_workers, pin_memory=pin)

    log.info("train %s on %s (%s): %s", model_name, data.name, dev, asdict(config))
    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if _stop_early(history, patience):
            break
        torch.manual_seed(_rank_seed(config.seed * 100_003 + epoch, here))
        generator = torch.Generator().manual_seed(_rank_seed(config.seed * 100_003 + epoch, here))
        model.train()
        total, count = 0.0, 0
        batches = _train_batches(data, config, epoch, generator, sampler, num_workers, pin, batch_size)
        n_steps = split_length(batches)
        if step is None:  # the SGD steps before this epoch (a checkpoint of an older version did not count them)
            step = epoch * (n_steps or 0)
        bar = tqdm(batches, total=n_steps, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=None if progress and main else True)  # None: off when not a terminal
        for xb, yb in pairs(bar, "training"):
            if augment is not None:
                xb = augment(xb, generator)
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, epoch) * warmup_factor(config, step)
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(net(xb), yb)
            if here is None:
                finite, batch_loss, batch_count = bool(torch.isfinite(loss)), loss.item() * len(yb), len(yb)
            else:  # the global batch's loss, so that every rank stops together when it is not finite
                batch_loss, batch_count = all_sum([loss.item() * len(yb), len(yb)])
                finite = math.isfinite(batch_loss)
            if not finite:
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1} (loss {batch_loss / batch_count}); lower the learning "
                    f"rate (now {config.lr}), or add warmup_steps (now {config.warmup_steps}) or clip_grad_norm "
                    f"(now {config.clip_grad_norm})")
            loss.backward()
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            step += 1
            total += batch_loss
            count += batch_count
            bar.set_postfix(loss=f"{total / count:.4f}")
        if count == 0:
            raise SparsenetError(f"the training split gave no batches in epoch {epoch + 1}; accepted: a split "
                                 "holding at least one (image, label)")
        acc = accuracy(data.test)
        history.append({"epoch": epoch + 1, "train_loss": total / count, "test_accuracy": acc,
                        "lr": lr_at(config, epoch)})
        if has_val:
            history[-1]["val_accuracy"] = accuracy(data.val)
        if progress and main:
            val = f", validation accuracy {history[-1]['val_accuracy']:.4f}" if has_val else ""
            print(f"epoch {epoch + 1}/{config.epochs}: train loss {total / count:.4f}, test accuracy {acc:.4f}{val}")
        wall = wall_before + time.perf_counter() - t0
        if out is not None and main:
            save_checkpoint(out / "checkpoint.pt", model=model_name, model_kwargs=model_kwargs,
                            state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                            epoch=epoch + 1, steps=step, history=history, wall_time_s=wall, config=asdict(config),
                            dataset=data.name, input_shape=list(data.input_shape),
                            normalization=data.normalization, extra=extra or {})
        if on_epoch is not None:
            on_epoch(epoch + 1, history[-1])
    metrics = {
        "model": model_name, "model_kwargs": model_kwargs, "dataset": data.name,
        "config": asdict(config), "epochs": history,
        "final_test_accuracy": history[-1]["test_accuracy"] if history else accuracy(data.test),
        "params": cost.params, "macs": cost.macs, "macs_note": "multiply-adds of convolutions and linear layers (1 MAC = 2 FLOPs), batch 1",
        "input_shape": list(data.input_shape), "world_size": here.world_size if here else 1,
        "wall_time_s": wall_before + time.perf_counter() - t0,
        "train_samples": split_length(data.train), "test_samples": split_length(data.test),
        **({"val_samples": split_length(data.val), "patience": patience, "selection": select_epoch(history)}
           if has_val else {}),
        "sparsenet_version": __version__, **(extra or {}),
    }
    if out is not None and main:
        atomic_write_json(out / "metrics.json", metrics)
    barrier()  # the other ranks may read what rank 0 wrote as soon as train returns
    return metrics


def _restore(out, model, optimizer, config, model_name, dataset_name, model_kwargs=None, input_shape=None):
    if out is None:
        raise SparsenetError("--resume needs --out DIR pointing at the interrupted run")
    path = out / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"nothing to resume: no checkpoint at {path}")
    ckpt = load_checkpoint(path)
    if ckpt["model"] != model_name or ckpt.get("dataset") != dataset_name:
        raise CheckpointError(f"{path} is a run of model {ckpt['model']!r} on {ckpt.get('dataset')!r}, "
                              f"not {model_name!r} on {dataset_name!r}")
    # a key missing from an older checkpoint had its default value then
    saved = {**asdict(TrainConfig()), **(ckpt.get("config") or {})}
    if any(saved.get(k) != v for k, v in asdict(config).items()):
        diff = {k: (saved.get(k), v) for k, v in asdict(config).items() if saved.get(k) != v}
        raise CheckpointError(f"{path} was trained with other settings (saved, now): {diff}; "
                              "resume with the same settings or start a new --out directory")
    saved_kwargs, saved_shape = json.loads(json.dumps(ckpt["model_kwargs"], default=str)), ckpt.get("input_shape")
    now_kwargs = json.loads(json.dumps(model_kwargs, default=str)) if model_kwargs is not None else saved_kwargs
    if saved_kwargs != now_kwargs:
        diff = {k: (saved_kwargs.get(k), now_kwargs.get(k)) for k in set(saved_kwargs) | set(now_kwargs)
                if saved_kwargs.get(k) != now_kwargs.get(k)}
        raise CheckpointError(f"{path} was trained with other model arguments (saved, now): {diff}; "
                              "resume with the same --model-arg values or start a new --out directory")
    if input_shape is not None and saved_shape is not None and list(saved_shape) != list(input_shape):
        raise CheckpointError(f"{path} was trained on inputs of shape {'x'.join(map(str, saved_shape))}, "
                              f"now {'x'.join(map(str, input_shape))}; resume with the same --image-size "
                              "or start a new --out directory")
    load_state(model, ckpt["state_dict"], f"{path}: the saved weights do not fit the model", CheckpointError)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (KeyError, ValueError, TypeError, RuntimeError):
        raise CheckpointError(f"{path}: the saved optimizer state does not fit the model") from None
    steps = ckpt.get("steps")  # None in checkpoints from before the count was kept: epoch x batches per epoch
    return (int(ckpt["epoch"]), list(ckpt.get("history", [])), float(ckpt.get("wall_time_s", 0.0)),
            int(steps) if isinstance(steps, int) and not isinstance(steps, bool) else None)


def load_metrics(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def build_model(model_name: str, dataset, seed: int, model_kwargs: dict[str, Any] | None = None):
    """A model sized for ``dataset`` (classes, input channels), initialised from ``seed``:
    ``model_name`` is a registered name or an import path to the user's factory (which then
    gets ``num_classes``/``in_channels`` only if it accepts them).  Returns (model, the keyword
    arguments that rebuild it)."""
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet", the networks sparsenet builds)
    from sparsenet.models.external import build_from_spec

    torch.manual_seed(seed)
    return build_from_spec(model_name, model_kwargs,
                           optional={"num_classes": dataset.num_classes, "in_channels": dataset.in_channels})


def train_named(model_name: str, dataset, config: TrainConfig, model_kwargs: dict[str, Any] | None = None,
                **train_kwargs) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build a model for ``dataset`` and train it; returns (model, metrics).  The checkpoint
    records the model as its normalised import path (``ModelSource.key``) for user factories."""
    from sparsenet.models.external import parse_model_spec

    config.validate()
    source = parse_model_spec(model_name)
    model, kwargs = build_model(model_name, dataset, config.seed, model_kwargs)
    return model, train(model, dataset, config, model_name=source.key, model_kwargs=kwargs, **train_kwargs)
