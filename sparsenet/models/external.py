"""Models named by the user: a registered name, or an import path to their own factory.

``--model`` (and :func:`build_from_spec`) accepts three forms:

* ``plaincnn``: a registered model (``sparsenet models``);
* ``package.module:callable``: ``callable`` of an importable module;
* ``path/to/file.py:callable``: ``callable`` of a Python file, loaded by path.

The callable is called with the keyword arguments given (``--model-arg KEY=VALUE``) and must
return a ``torch.nn.Module``.  **Loading a factory imports and runs the user's code**: that is
what the user asks for by naming it, and the only way sparsenet ever runs foreign code.  A
checkpoint may record such an import path, but it never chooses code to run on its own: the
user must name the same import path again (:func:`check_same_source`).

``load_weights`` reads a plain ``state_dict`` file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.io import unreadable_torch_file, why_no_file
from sparsenet.models.registry import get_model
from sparsenet.models.state import load_state

__all__ = ["ModelSource", "parse_model_spec", "build_from_spec", "load_factory", "accepted_kwargs",
           "check_same_source", "load_weights", "MODEL_FORMS"]

MODEL_FORMS = "a registered name, package.module:callable or path/to/file.py:callable"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, parsed from what the user wrote."""

    spec: str                 # as written, e.g. "nets/my.py:make"
    kind: str                 # "registered" | "module" | "file"
    target: str               # registry name, module name, or the file's absolute path
    attr: str | None = None   # the callable's name (None for registered models)

    @property
    def key(self) -> str:
        """The normalised import path: the same code gives the same key from any directory."""
        return self.target if self.kind == "registered" else f"{self.target}:{self.attr}"

    @property
    def imported(self) -> bool:
        return self.kind != "registered"


def parse_model_spec(spec: str) -> ModelSource:
    """Parse ``spec`` (nothing is imported yet); a malformed import path is refused here."""
    if not isinstance(spec, str) or not spec.strip():
        raise SparsenetError(f"model {spec!r} is empty; accepted: {MODEL_FORMS}")
    spec = spec.strip()
    if ":" not in spec:
        return ModelSource(spec, "registered", spec)
    left, _, attr = spec.rpartition(":")
    if not attr.isidentifier() or not left:
        raise SparsenetError(f"model {spec!r}: {attr!r} after ':' is not a Python name; accepted: {MODEL_FORMS}")
    if left.endswith(".py"):
        return ModelSource(spec, "file", str(Path(left).expanduser().resolve()), attr)
    if not _DOTTED.match(left):
        raise SparsenetError(f"model {spec!r}: {left!r} is neither a .py file nor a dotted module name; "
                             f"accepted: {MODEL_FORMS}")
    return ModelSource(spec, "module", left, attr)


def _import_file(path: str, spec: str):
    file = Path(path)
    if not file.is_file():
        raise SparsenetError(f"model {spec!r}: file {file} {why_no_file(file)}; accepted: {MODEL_FORMS}")
    stem = re.sub(r"\W", "_", file.stem)
    name = f"sparsenet_user_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look a class's module up here
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SparsenetError(f"model {spec!r}: running {file} raised {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(name: str, spec: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise SparsenetError(f"model {spec!r}: cannot import module {name!r} ({exc}); accepted: "
                             f"{MODEL_FORMS}, with the package on PYTHONPATH") from None
    except Exception as exc:
        raise SparsenetError(f"model {spec!r}: importing {name!r} raised {type(exc).__name__}: {exc}") from exc


def load_factory(source: ModelSource) -> Callable[..., Any]:
    """Import the user's module or file (this runs their code) and return the named callable."""
    if not source.imported:
        raise SparsenetError(f"{source.spec!r} is a registered model, not an import path")
    module = (_import_file if source.kind == "file" else _import_module)(source.target, source.spec)
    where = source.target if source.kind == "file" else f"module {source.target!r}"
    if not hasattr(module, source.attr):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise SparsenetError(f"model {source.spec!r}: {where} has no attribute {source.attr!r}; "
                             f"its callables: {', '.join(names) or '(none)'}")
    factory = getattr(module, source.attr)
    if not callable(factory):
        raise SparsenetError(f"model {source.spec!r}: {source.attr!r} is a {type(factory).__name__}, "
                             "not a callable returning a torch.nn.Module")
    return factory


def accepted_kwargs(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword names ``factory`` accepts (None: any, it takes ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD)}


def build_from_spec(spec: str | ModelSource, kwargs: dict[str, Any] | None = None, *,
                    optional: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(the model ``spec`` names, the keyword arguments it was built with: what rebuilds it).

    ``optional`` keyword arguments (such as ``num_classes`` for training) are passed only where
    the factory accepts them; ``kwargs`` always."""
    source = spec if isinstance(spec, ModelSource) else parse_model_spec(spec)
    kwargs = dict(kwargs or {})
    if not source.imported:
        full = {**(optional or {}), **kwargs}
        return get_model(source.target, **full), full
    factory = load_factory(source)
    accepted = accepted_kwargs(factory)
    unexpected = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unexpected:
        raise SparsenetError(f"model {source.spec!r} got unexpected argument(s) {', '.join(map(repr, unexpected))}; "
                             f"accepted: {', '.join(sorted(accepted)) or '(none)'}")
    extra = {k: v for k, v in (optional or {}).items() if k not in kwargs and (accepted is None or k in accepted)}
    try:
        model = factory(**extra, **kwargs)
    except Exception as exc:
        raise SparsenetError(f"model {source.spec!r}: calling it with {kwargs or extra or '{}'} raised "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SparsenetError(f"model {source.spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    model.registry_name = source.spec  # used in error messages (validate_input)
    return model, {**extra, **kwargs}


def check_same_source(recorded: str, given: str | None, checkpoint) -> ModelSource:
    """The checkpoint's model source, allowed only when the user named the same import path.

    A checkpoint of a registered model rebuilds it from the registry; one of an imported model
    names code, which sparsenet runs only if ``given`` (the user's ``--model``) names it too.
    """
    source = parse_model_spec(recorded)
    if not source.imported:
        if given is not None and parse_model_spec(given).key != source.key:
            raise SparsenetError(f"{checkpoint} holds model {recorded!r}, not {given!r}")
        return source
    if given is None:
        raise SparsenetError(f"{checkpoint} was trained on the user model {recorded!r}; sparsenet never runs code "
                             f"a checkpoint names: pass --model {recorded} to rebuild it from that code")
    mine = parse_model_spec(given)
    if mine.key != source.key:
        raise SparsenetError(f"{checkpoint} was trained on the model {recorded!r} ({source.key}), but --model "
                             f"names {given!r} ({mine.key}); accepted: the same import path")
    return mine


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a plain ``state_dict`` file (``torch.save(model.state_dict(), path)``) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise SparsenetError(f"weights file {path} {why_no_file(path)}; accepted: a file written by "
                             "torch.save(model.state_dict(), PATH)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for foreign files; its text is not quoted (io.py)
        raise SparsenetError(f"{path} is not a readable state_dict: {unreadable_torch_file(path)}; accepted: a "
                             "file written by torch.save(model.state_dict(), PATH)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        raise SparsenetError(f"{path} holds a dict with a 'state_dict' entry (a checkpoint?); --weights "
                             "accepts a plain state_dict; use --checkpoint for sparsenet checkpoints")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SparsenetError(f"{path} holds a {type(state).__name__}, not a state_dict (a dict of tensors)")
    load_state(model, state, f"{path}: the weights do not fit the model {type(model).__name__} (check --model and "
               "--model-arg)")
    return model
