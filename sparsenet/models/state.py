"""Loading a state_dict into a model, with our own message naming what does not fit (torch's own
is a page long): shared by checkpoints and by ``--weights`` files."""

from __future__ import annotations

import torch

from sparsenet.errors import SparsenetError

__all__ = ["state_dict_mismatch", "load_state"]


def state_dict_mismatch(model: torch.nn.Module, state: dict) -> str | None:
    """What keeps ``state`` from loading into ``model`` (missing, unexpected or differently shaped
    tensors, the first few named), or None when it fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {'x'.join(map(str, state[k].shape)) or 'scalar'} in the file, "
              f"{'x'.join(map(str, own[k].shape)) or 'scalar'} in the model"
              for k in own if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape)
              ] if all(isinstance(state[k], torch.Tensor) for k in own if k in state) else ["it holds non-tensors"]
    parts = ([f"{len(shapes)} tensor(s) differ in shape ({'; '.join(shapes[:3])})"] if shapes else []) \
        + ([f"{len(missing)} missing ({', '.join(missing[:3])})"] if missing else []) \
        + ([f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})"] if unexpected else [])
    return "; ".join(parts) or None


def load_state(model: torch.nn.Module, state: dict, what: str, error: type[SparsenetError] = SparsenetError) -> None:
    """``model.load_state_dict(state)`` with our own message naming what does not fit."""
    problem = state_dict_mismatch(model, state)
    if problem is None:
        try:
            model.load_state_dict(state)
            return
        except (RuntimeError, TypeError, ValueError):
            problem = "its tensors cannot be copied into the model"
    raise error(f"{what}: {problem}")
