"""Recording a layer's activations with forward hooks (captum/timm hook hygiene).

Hooks are registered inside ``try`` and every handle is removed in ``finally``, whatever happens;
captured outputs are detached; a hook that captured nothing is an error, not an empty result.
Once the hooked layer has produced its output the rest of the forward pass is skipped.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from sparsenet.errors import SparsenetError


class _StopForward(Exception):
    """Raised by the hook to skip the layers after the recorded one."""


def _output_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def hookable_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every named module whose output is a tensor: (name, type, output shape without batch)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def make_hook(name):
        def hook(_module, _inputs, output):
            tensor = _output_tensor(output)
            if tensor is not None:
                shapes[name] = tuple(tensor.shape[1:])
        return hook

    was_training = model.training
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    modules = dict(model.named_modules())
    return [(name, type(modules[name]).__name__, shape) for name, shape in shapes.items()]


def get_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        known = [n for n in modules if n]
        raise SparsenetError(f"unknown layer {layer!r}; the model's layers are: {', '.join(known)} "
                             "(see `sparsenet discover --list-layers`)")
    return modules[layer]


def iter_activations(model: nn.Module, layer: str, batches: Iterable[torch.Tensor], *,
                     inputs: bool = False) -> Iterator[torch.Tensor]:
    """Yield the layer's output (detached, float32) for each input batch, in eval mode under no_grad.

    With ``inputs`` the layer's (first) input is recorded instead, and the forward pass stops
    before the layer runs.
    """
    module = get_layer(model, layer)
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        tensor = _output_tensor(output)
        if tensor is None:
            raise SparsenetError(f"layer {layer!r} returns {type(output).__name__}, not a tensor; choose another layer")
        captured.append(tensor.detach().float())
        raise _StopForward

    def pre_hook(module_, args):
        hook(module_, (), args)

    was_training = model.training
    handle = module.register_forward_pre_hook(pre_hook) if inputs else module.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            for xb in batches:
                try:
                    model(xb)
                except _StopForward:
                    pass
                if not captured:
                    raise SparsenetError(f"the hook on layer {layer!r} captured nothing: the layer is not "
                                         "used in the model's forward pass")
                yield captured.pop()
    finally:
        handle.remove()
        model.train(was_training)


def record(model: nn.Module, layer: str, x: torch.Tensor, *, batch_size: int = 256,
           max_samples: int | None = None, consume: Callable[[torch.Tensor], None] | None = None,
           inputs: bool = False) -> torch.Tensor | None:
    """Run ``x`` through ``model`` and return the layer's activations (N x C [x H x W]).

    With ``consume`` each batch of activations is handed over instead (streaming: nothing is
    kept), and None is returned.  With ``inputs`` the layer's input is recorded, not its output.
    """
    if max_samples is not None:
        x = x[:max_samples]
    if len(x) == 0:
        raise SparsenetError("no samples to record")
    chunks = []
    for act in iter_activations(model, layer, (x[i:i + batch_size] for i in range(0, len(x), batch_size)),
                                inputs=inputs):
        if consume is not None:
            consume(act)
        else:
            chunks.append(act)
    return torch.cat(chunks) if chunks else None
