"""Model registry: ``register_model``, ``get_model``, ``list_models``, ``model_info``.

A model is registered as a factory ``fn(**kwargs) -> nn.Module`` (timm style)::

    @register_model("plaincnn", default_input=(1, 28, 28), description="...")
    def plaincnn(*, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> nn.Module:
        ...

Every factory takes at least ``num_classes`` and ``in_channels`` as keyword arguments so that a
trainer can match any dataset.  Names are unique: registering one twice is refused.

``validate_input(model, input_shape)`` checks, before any training, that a model accepts inputs
of a given (C, H, W) shape, and turns torch's shape errors into a ``SparsenetError`` that says
what was given and what the model expects.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from sparsenet.errors import SparsenetError

__all__ = [
    "ModelInfo",
    "register_model",
    "get_model",
    "list_models",
    "model_info",
    "validate_input",
    "check_input_shape",
    "check_batch",
]

# Keyword arguments every factory must accept.
REQUIRED_KWARGS = ("num_classes", "in_channels")


@dataclass(frozen=True)
class ModelInfo:
    name: str  # registry name, e.g. "googlenet"
    default_input: tuple[int, int, int]  # (C, H, W) the model is designed for
    description: str  # one line for `sparsenet models` listings
    defaults: dict[str, Any] = field(hash=False)  # the factory's keyword defaults (a copy)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    default_input: tuple[int, int, int]
    description: str


_REGISTRY: dict[str, _Entry] = {}


# --------------------------------------------------------------------------- argument checks
# Shared by the model factories: each raises SparsenetError saying what was received.


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SparsenetError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SparsenetError(f"{name} must be True or False; got {value!r}")
    return value


def check_probability(name: str, value: Any) -> float:
    """A dropout probability: a real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SparsenetError(f"{name} must be a number in [0, 1); got {value!r}")
    return float(value)


def check_positive_float(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SparsenetError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def _check_shape(what: str, shape: Any, lengths: tuple[int, ...]) -> tuple[int, ...]:
    ok = (
        isinstance(shape, (tuple, list, torch.Size))
        and len(shape) in lengths
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    )
    if not ok:
        want = " or ".join(f"{n} positive integers" for n in lengths)
        raise SparsenetError(f"{what} must be a tuple of {want}; got {shape!r}")
    return tuple(shape)


# --------------------------------------------------------------------------- registry


def register_model(
    name: str, *, default_input: tuple[int, int, int], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``.

    Refuses a name already taken, and a factory that does not accept ``num_classes`` and
    ``in_channels`` keyword arguments.  Returns the factory unchanged.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise SparsenetError(f"model name must be a non-empty string without spaces around; got {name!r}")
    default_input = _check_shape("default_input", default_input, (3,))
    if not isinstance(description, str):
        raise SparsenetError(f"description must be a string; got {description!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(factory):
            raise SparsenetError(f"register_model({name!r}) needs a callable factory; got {factory!r}")
        if name in _REGISTRY:
            raise SparsenetError(
                f"a model named {name!r} is already registered "
                f"({_REGISTRY[name].factory.__module__}.{_REGISTRY[name].factory.__qualname__}); "
                "choose another name"
            )
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        missing = [k for k in REQUIRED_KWARGS if k not in params and not takes_any]
        if missing:
            raise SparsenetError(
                f"factory for {name!r} must accept keyword arguments {', '.join(REQUIRED_KWARGS)}; "
                f"missing: {', '.join(missing)}"
            )
        _REGISTRY[name] = _Entry(factory, default_input, description)
        return factory

    return decorator


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        known = ", ".join(list_models()) or "(none)"
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SparsenetError(f"unknown model {name!r}; known models: {known}.{hint}")
    return _REGISTRY[name]


def _keyword_params(factory: Callable[..., nn.Module]) -> dict[str, inspect.Parameter]:
    return {
        k: p
        for k, p in inspect.signature(factory).parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


# Initialisers and fills change values only; on a meta tensor there are none.  torch runs them
# there through Python decompositions that import torch._dynamo (1.7 s, once per process) and
# make a meta build slower than a real one, so the size check skips them.
_FILLS = frozenset(n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")) | {
    "normal_", "uniform_", "fill_", "zero_", "copy_", "exponential_", "bernoulli_", "random_",
    "log_normal_", "cauchy_", "geometric_"}


class _ShapesOnly(torch.overrides.TorchFunctionMode):
    """Skips value fills of meta tensors (``_FILLS``), as methods or ``nn.init`` functions."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _FILLS:
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def _check_size(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    """Refuse arguments that make a model of more than MAX_MODEL_PARAMS parameters, counted on
    torch's meta device (shapes only, nothing allocated) before the real model is built."""
    from sparsenet.limits import MAX_MODEL_PARAMS

    try:
        with torch.device("meta"), _ShapesOnly():
            meta = factory(**kwargs)
        n = sum(p.numel() for p in meta.parameters())
    except SparsenetError:
        raise
    except RuntimeError:  # torch's storage-size overflow: sizes past what any allocator can give
        raise SparsenetError(f"model {name!r} with {kwargs} cannot be built: its tensors would be larger than "
                             f"memory can hold; at most {MAX_MODEL_PARAMS:,} parameters are accepted") from None
    except Exception:  # noqa: BLE001 - the real build below raises (or succeeds) in its own words
        return
    if n > MAX_MODEL_PARAMS:
        raise SparsenetError(f"model {name!r} with {kwargs} would have {n:,} parameters; at most "
                             f"{MAX_MODEL_PARAMS:,} are accepted (check the width arguments)")


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with the factory's keyword arguments ``kwargs``."""
    entry = _entry(name)
    sig = inspect.signature(entry.factory)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not takes_any:
        accepted = _keyword_params(entry.factory)
        unexpected = [k for k in kwargs if k not in accepted]
        if unexpected:
            raise SparsenetError(
                f"model {name!r} got unexpected argument(s) {', '.join(map(repr, unexpected))}; "
                f"accepted: {', '.join(accepted) or '(none)'}"
            )
    _check_size(name, entry.factory, kwargs)
    try:
        model = entry.factory(**kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, SparsenetError):
            raise
        raise SparsenetError(f"model {name!r} cannot be built with {kwargs}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise SparsenetError(f"factory for {name!r} returned {type(model).__name__}, not an nn.Module")
    model.registry_name = name  # used in error messages (validate_input)
    return model


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Name, default (C, H, W) input, description and the factory's keyword defaults."""
    entry = _entry(name)
    defaults = {
        k: p.default
        for k, p in _keyword_params(entry.factory).items()
        if p.default is not inspect.Parameter.empty
    }
    return ModelInfo(name, entry.default_input, entry.description, defaults)


def unregister_model(name: str) -> None:
    """Remove ``name`` (for tests that register throw-away models)."""
    _REGISTRY.pop(name, None)


# --------------------------------------------------------------------------- input checks


def _describe(model: nn.Module) -> str:
    return getattr(model, "registry_name", None) or type(model).__name__


def _expectation(model: nn.Module) -> str:
    """What the model says it accepts, from its optional ``in_channels``/``min_input_size``."""
    parts = []
    in_channels = getattr(model, "in_channels", None)
    if isinstance(in_channels, int):
        parts.append(f"{in_channels} input channel(s)")
    min_size = getattr(model, "min_input_size", None)
    if isinstance(min_size, tuple) and len(min_size) == 2:
        parts.append(f"height and width of at least {min_size[0]}x{min_size[1]}")
    return " and ".join(parts) if parts else "a different input shape"


def validate_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Size:
    """Check that ``model`` accepts one input of shape ``input_shape`` (without the batch axis).

    Runs one dummy forward pass at batch 1 under ``torch.no_grad()`` in eval mode (the training
    flags of every submodule are restored afterwards) and returns the shape of the (main) output.
    A shape problem becomes a ``SparsenetError`` naming the model, the shape given and what the
    model expects (its ``in_channels`` and ``min_input_size`` attributes when it has them).
    """
    shape = _check_shape("input_shape", input_shape, (1, 2, 3))
    name = _describe(model)
    in_channels = getattr(model, "in_channels", None)
    if isinstance(in_channels, int) and shape[0] != in_channels:
        raise SparsenetError(
            f"model {name!r} expects {in_channels} input channel(s); got input shape {shape} "
            f"(C, H, W). Build it with in_channels={shape[0]} to match the data."
        )
    min_size = getattr(model, "min_input_size", None)
    if isinstance(min_size, tuple) and len(min_size) == 2 and len(shape) == 3:
        if shape[1] < min_size[0] or shape[2] < min_size[1]:
            raise SparsenetError(
                f"model {name!r} needs inputs of at least {min_size[0]}x{min_size[1]} (H x W); "
                f"got input shape {shape} (C, H, W)"
            )
    out = run_on_zeros(model, shape, lambda why: f"model {name!r} cannot take input of shape {shape} (C, H, W): "
                                                  f"it expects {_expectation(model)}. (torch said: {why})")
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.shape


# Alias: the trainer may call either name.
check_input_shape = validate_input


def check_batch(
    x: torch.Tensor, *, model: str, in_channels: int, min_size: tuple[int, int], hint: str = ""
) -> None:
    """Raise a SparsenetError unless ``x`` is N x in_channels x H x W with H, W >= ``min_size``.

    Called at the top of each model's ``forward``; a non-tensor (e.g. an FX proxy while tracing)
    is let through unchecked.
    """
    if not isinstance(x, torch.Tensor):
        return
    shape = tuple(x.shape)
    want = f"(N, {in_channels}, H, W) with H >= {min_size[0]} and W >= {min_size[1]}"
    if len(shape) != 4 or shape[1] != in_channels or shape[2] < min_size[0] or shape[3] < min_size[1]:
        problem = "too small" if len(shape) == 4 and shape[1] == in_channels else "the wrong shape"
        raise SparsenetError(
            f"input of shape {shape} is {problem} for model {model!r}: it accepts {want}.{hint}"
        )


def run_on_zeros(model: nn.Module, shape: tuple[int, ...], failure: Callable[[str], str], within=None):
    """One forward pass of a zero example of ``shape`` (batch 1, the model's device and dtype) in
    eval mode under ``torch.no_grad()`` (and inside the context ``within``, if given); every
    submodule's training flag is restored.  A RuntimeError becomes a SparsenetError whose text is
    ``failure(torch's first line)``."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), (within if within is not None else contextlib.nullcontext()):
            return model(torch.zeros((1, *shape), device=device, dtype=dtype))
    except SparsenetError:
        raise
    except RuntimeError as exc:
        raise SparsenetError(failure(str(exc).splitlines()[0])) from exc
    finally:
        for m, training in modes.items():
            m.training = training
