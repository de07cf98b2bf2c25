"""Checkpoints: a state dict plus what is needed to rebuild the model, read without pickle code.

Files are written atomically with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so a foreign file cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sparsenet.errors import CheckpointError
from sparsenet.io import atomic_torch_save, unreadable_torch_file
from sparsenet.models.state import load_state

FORMAT = "sparsenet.checkpoint"  # the on-disk format name (the module moved; the files did not change)
VERSION = 1
REQUIRED = ("model", "model_kwargs", "state_dict")


def save_checkpoint(path: str | Path, **fields: Any) -> Path:
    """Write {format, version, **fields}; fields must hold plain values and tensors only."""
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"checkpoint needs fields {missing}")
    return atomic_torch_save(path, {"format": FORMAT, "version": VERSION, **fields})


_ACCEPTED = "accepted: a checkpoint.pt written by `sparsenet train` or `sparsenet grow` (or its directory)"


def _unreadable(path: Path) -> str:
    return f"{path} is not a readable sparsenet checkpoint: {unreadable_torch_file(path)}; {_ACCEPTED}"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint written by ``save_checkpoint`` (or DIR/checkpoint.pt)."""
    path = Path(path)
    if path.is_dir() and (path / "checkpoint.pt").is_file():
        path = path / "checkpoint.pt"
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory without a checkpoint.pt; {_ACCEPTED}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one with `sparsenet train --out DIR`; "
                              "the checkpoint is DIR/checkpoint.pt)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for foreign bytes; all mean 'not ours'
        raise CheckpointError(_unreadable(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("format"), str) or data["format"] != FORMAT:
        raise CheckpointError(f"{path} is not a sparsenet checkpoint (expected a dict with format={FORMAT!r}; "
                              "a bare state dict or another tool's file cannot be used)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        shown = version if isinstance(version, (int, str, float, type(None))) else type(version).__name__
        raise CheckpointError(f"{path} has checkpoint version {repr(shown)[:40]}; this release reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{path} lacks the fields {missing}")
    if not isinstance(data["model"], str) or not isinstance(data["model_kwargs"], dict) \
            or not isinstance(data["state_dict"], dict):
        raise CheckpointError(f"{path}: fields 'model', 'model_kwargs' and 'state_dict' must be a name, an object "
                              "and a dict of tensors")
    return data


def model_from_checkpoint(path: str | Path, model: str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model named in a checkpoint and load its weights (eval mode).

    A checkpoint of a user's model (an import path) is rebuilt only when ``model`` names the
    same import path: a checkpoint never chooses code to run."""
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet", the networks sparsenet builds)
    from sparsenet.models.external import build_from_spec, check_same_source

    data = load_checkpoint(path)
    net, _ = build_from_spec(check_same_source(data["model"], model, path), data["model_kwargs"])
    load_state(net, data["state_dict"], f"{path}: weights do not fit model {data['model']!r} {data['model_kwargs']}",
               CheckpointError)
    return net.eval(), data
