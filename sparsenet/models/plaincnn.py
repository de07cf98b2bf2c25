"""A plain convolutional baseline whose named layers are convenient analysis targets.

``features``: conv1 3x3 (in -> w) - relu1 - conv2 3x3 (w -> 2w) - relu2 - pool1 2x2
- conv3 3x3 (2w -> 2w) - relu3 - pool2 2x2, then global average pooling and a linear head.
Hook e.g. ``features.relu2`` or ``features.relu3``.  Works from 4 x 4 inputs up.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from sparsenet.models.registry import check_batch, check_positive_int, register_model

__all__ = ["PlainCNN", "plaincnn"]


class PlainCNN(nn.Module):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.min_input_size = (4, 4)  # two 2x2/2 max pools
        w = width
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, w, 3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(w, 2 * w, 3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv3", nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
                    ("relu3", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                ]
            )
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * w, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, model="plaincnn", in_channels=self.in_channels, min_size=self.min_input_size)
        # N x C x 28 x 28 (width 32)
        x = self.features(x)  # N x 64 x 7 x 7
        x = self.avgpool(x)  # N x 64 x 1 x 1
        x = torch.flatten(x, 1)  # N x 64
        return self.fc(x)  # N x num_classes


@register_model(
    "plaincnn",
    default_input=(1, 28, 28),
    description="Plain 3-conv baseline (conv-relu-conv-relu-pool-conv-relu-pool, GAP, linear)",
)
def plaincnn(*, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> PlainCNN:
    return PlainCNN(num_classes=num_classes, in_channels=in_channels, width=width)
