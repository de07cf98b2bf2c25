"""``applied``: a registered network after ``sparsenet apply`` (a base model with some layers
rewritten into cluster connectivity), so its checkpoint loads in every command.

Its keyword arguments are plain values: the base model's registered name and arguments, and
the rewrite record of :func:`sparsenet.builder.rewrite.cluster_consumers`.  The base must be a
registered model: a checkpoint never names code to run.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models.registry import register_model


@register_model("applied", default_input=(1, 28, 28),
                description="A trained network after `sparsenet apply` (base=<name>, base_kwargs, rewrite)")
def applied(*, base: str = "plaincnn", base_kwargs: dict | None = None, rewrite: dict | None = None,
            num_classes: int | None = None, in_channels: int | None = None) -> nn.Module:
    from sparsenet.builder.rewrite import rebuild
    from sparsenet.models.external import parse_model_spec
    from sparsenet.models.registry import get_model

    if not isinstance(base, str) or parse_model_spec(base).imported or base == "applied":
        raise SparsenetError(f"applied: base must be a registered model other than 'applied', got {base!r} "
                             "(a checkpoint never names code to run)")
    kwargs: dict[str, Any] = dict(base_kwargs or {})
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and kwargs.get(key, value) != value:
            raise SparsenetError(f"applied: base_kwargs say {key}={kwargs[key]} but {key}={value} was asked")
        if value is not None:
            kwargs[key] = value
    model = get_model(base, **kwargs)
    if rewrite:
        rebuild(model, rewrite)
    model.registry_name = "applied"
    return model
