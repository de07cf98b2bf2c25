"""Recording a layer's activations with forward hooks (captum/timm hook hygiene).

Hooks are registered inside ``try`` and every handle is removed in ``finally``, whatever happens;
captured outputs are detached; a hook that captured nothing is an error, not an empty result.
Once the hooked layer has produced its output the rest of the forward pass is skipped.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
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
            model(torch.zeros(1, *input_shape, device=model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    modules = dict(model.named_modules())
    return [(name, type(modules[name]).__name__, shape) for name, shape in shapes.items()]


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; the CPU for a model without any."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


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


DATA_FORMS = "a torch.utils.data.DataLoader (or any iterable of batches), a Dataset, or a tensor N x ..."


def _batch_input(item, index: int) -> torch.Tensor:
    """The input tensor of one loader item: the item itself, or the first of a tuple/list
    (``(x, y)``), or the ``"x"``/``"input"``/``"image"`` entry of a dict."""
    if isinstance(item, dict):
        item = next((item[k] for k in ("x", "input", "inputs", "image", "images") if k in item), None)
    elif isinstance(item, (tuple, list)) and item:
        item = item[0]
    if not isinstance(item, torch.Tensor):
        raise SparsenetError(f"batch {index} of the data is a {type(item).__name__}, not a tensor; accepted: "
                             "batches that are tensors, (inputs, targets) pairs or dicts with an 'x' entry")
    return item


def input_batches(data, *, batch_size: int = 256, max_samples: int | None = None,
                  device=None) -> Iterator[torch.Tensor]:
    """Input batches of ``data`` on ``device``, stopping after ``max_samples`` samples in all.

    ``data`` is a ``DataLoader`` (its batches, as it makes them: workers, pinned memory), a
    map-style ``Dataset`` (read through a ``DataLoader`` of ``batch_size``, in order) or a
    tensor / array (sliced into batches of ``batch_size``).  Batches are read as they are
    needed: nothing but the current batch is held.
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(data, (torch.Tensor, np.ndarray)):
        x = torch.as_tensor(data)
        if x.ndim < 2 or len(x) == 0:
            raise SparsenetError(f"data is a tensor of shape {tuple(x.shape)}; accepted: N x ... with N >= 1")
        stop = len(x) if max_samples is None else min(len(x), max_samples)
        source = (x[i:min(i + batch_size, stop)] for i in range(0, stop, batch_size))
    elif isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        from sparsenet.data.loader import train_loader

        source = iter(train_loader(data, batch_size, shuffle=False,
                                   pin_memory=device is not None and torch.device(device).type == "cuda"))
    elif isinstance(data, IterableDataset):
        source = iter(DataLoader(data, batch_size=batch_size))
    elif isinstance(data, (DataLoader, Iterable)) and not isinstance(data, (str, bytes, dict)):
        source = iter(data)
    else:
        raise SparsenetError(f"data is a {type(data).__name__}; accepted: {DATA_FORMS}")
    return _take(source, max_samples, device)


def _take(source, max_samples, device) -> Iterator[torch.Tensor]:
    seen = 0
    for index, item in enumerate(source):
        xb = _batch_input(item, index)
        if max_samples is not None:
            xb = xb[:max_samples - seen]
        if len(xb) == 0:
            continue
        seen += len(xb)
        yield xb.to(device, non_blocking=True) if device is not None else xb
        if max_samples is not None and seen >= max_samples:
            return
    if seen == 0:
        raise SparsenetError("no samples to record: the data gave no batches")


def data_length(data, max_samples: int | None = None) -> int | None:
    """How many samples ``data`` will give (for a progress bar), or None when it cannot say."""
    try:
        n = len(data.dataset) if hasattr(data, "dataset") else len(data)
    except TypeError:
        return max_samples
    return n if max_samples is None else min(n, max_samples)


def record(model: nn.Module, layer: str, x, *, batch_size: int = 256,
           max_samples: int | None = None, consume: Callable[[torch.Tensor], None] | None = None,
           inputs: bool = False, device=None, progress: bool = False,
           total: int | None = None) -> torch.Tensor | None:
    """Run ``x`` through ``model`` and return the layer's activations (N x C [x H x W]).

    ``x`` is a tensor, a ``Dataset`` or a ``DataLoader`` (see :func:`input_batches`); with
    ``device`` the inputs are moved there (the model must be there already) and the
    activations stay there.  With ``consume`` each batch of activations is handed over instead
    (streaming: nothing is kept), and None is returned.  With ``inputs`` the layer's input is
    recorded, not its output.  ``progress`` shows a bar on stderr (when it is a terminal) of
    ``total`` samples (default: as many as ``x`` says it has).
    """
    from sparsenet.progress import bar as progress_bar

    if isinstance(x, torch.Tensor) and len(x[:max_samples] if max_samples is not None else x) == 0:
        raise SparsenetError("no samples to record")
    batches = input_batches(x, batch_size=batch_size, max_samples=max_samples, device=device)
    bar = progress_bar(total=total or data_length(x, max_samples), desc=f"recording {layer}", unit="img",
                       enabled=None if progress else False)
    chunks = []
    try:
        for act in iter_activations(model, layer, batches, inputs=inputs):
            bar.update(len(act))
            if consume is not None:
                consume(act)
            else:
                chunks.append(act)
    finally:
        bar.close()
    return torch.cat(chunks) if chunks else None
