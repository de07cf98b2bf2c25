"""``specnet``: a network built from a sparsenet spec, so grown networks live in the registry.

Checkpoints store a model name and its constructor arguments; for a grown or hand-written
network those arguments are the spec itself (plain JSON values), so ``get_model("specnet",
spec=...)`` rebuilds it exactly, with no code in the file.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models.registry import register_model


def default_spec() -> dict[str, Any]:
    """A small example: a 32-channel stem and GoogLeNet's 3a module at a quarter of its width."""
    from sparsenet.builder.rules import module_from_inception, scale_module
    from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec, spec_to_dict

    module = scale_module(module_from_inception(32, 64, 96, 128, 16, 32, 32), 0.25)
    return spec_to_dict(NetworkSpec(stem=StemSpec(in_channels=1, widths=(32,), kernel_sizes=(3,), strides=(1,), pool=True),
                                    modules=(module,), head=HeadSpec(num_classes=10)))


@register_model("specnet", default_input=(1, 28, 28),
                description="Network built from a sparsenet NetworkSpec (spec=<dict>; grown by `sparsenet grow`)")
def specnet(*, spec: dict | None = None, num_classes: int | None = None, in_channels: int | None = None) -> nn.Module:
    from sparsenet.builder.modules import build_network
    from sparsenet.builder.spec import NetworkSpec, spec_from_dict

    parsed = spec_from_dict(spec if spec is not None else default_spec(), source="specnet spec")
    if not isinstance(parsed, NetworkSpec):
        raise SparsenetError("specnet needs a network spec (kind 'network'), got a module spec")
    if num_classes is not None and num_classes != parsed.head.num_classes:
        raise SparsenetError(f"the spec's head has {parsed.head.num_classes} classes but num_classes={num_classes} was asked")
    if in_channels is not None and in_channels != parsed.stem.in_channels:
        raise SparsenetError(f"the spec's stem reads {parsed.stem.in_channels} channels but in_channels={in_channels} was asked")
    model = build_network(parsed)
    model.registry_name = "specnet"
    return model


# the code that resolves checkpoints imports this module; networks after `sparsenet apply` too
import sparsenet.builder.applied  # noqa: E402,F401  (registers "applied")
