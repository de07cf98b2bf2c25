"""Models and their registry.

Importing this package registers ``googlenet``, ``googlenet_small`` and ``plaincnn``.  ``specnet`` (a
network built from a spec) belongs to the builder, which registers it when :mod:`sparsenet.builder`
is imported; the models never import the builder.
"""

from sparsenet.models.registry import (
    ModelInfo,
    check_input_shape,
    get_model,
    list_models,
    model_info,
    register_model,
    validate_input,
)
from sparsenet.models.inception import GOOGLENET_INCEPTION, INCEPTION_ORDER, Inception, branch_membership
from sparsenet.models.googlenet import GoogLeNet, GoogLeNetOutputs, GoogLeNetSmall
from sparsenet.models.plaincnn import PlainCNN

__all__ = [
    "ModelInfo",
    "register_model",
    "get_model",
    "list_models",
    "model_info",
    "validate_input",
    "check_input_shape",
    "Inception",
    "GOOGLENET_INCEPTION",
    "INCEPTION_ORDER",
    "branch_membership",
    "GoogLeNet",
    "GoogLeNetSmall",
    "GoogLeNetOutputs",
    "PlainCNN",
]
