"""The Inception block of Szegedy et al. 2014, "Going Deeper with Convolutions" (Figure 2b).

Four parallel branches over the same input, concatenated along channels::

    branch1: 1x1 conv                          -> ch1x1
    branch2: 1x1 conv (reduce) -> 3x3 conv     -> ch3x3
    branch3: 1x1 conv (reduce) -> 5x5 conv     -> ch5x5   (a real 5x5, as in the paper)
    branch4: 3x3/1 max pool -> 1x1 conv (proj) -> pool_proj

Every convolution is followed by a ReLU (and by batch norm first when ``batch_norm``).
``GOOGLENET_INCEPTION`` holds the paper's Table 1 widths; ``branch_membership`` says which
branch produced each output channel of a block.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models.registry import check_bool, check_positive_int

__all__ = ["BasicConv2d", "Inception", "GOOGLENET_INCEPTION", "INCEPTION_ORDER", "branch_membership"]

# Table 1 of Szegedy et al. 2014:
# name: (in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
GOOGLENET_INCEPTION: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),  # 28 x 28 -> 256
    "3b": (256, 128, 128, 192, 32, 96, 64),  # 28 x 28 -> 480
    "4a": (480, 192, 96, 208, 16, 48, 64),  # 14 x 14 -> 512
    "4b": (512, 160, 112, 224, 24, 64, 64),  # 14 x 14 -> 512
    "4c": (512, 128, 128, 256, 24, 64, 64),  # 14 x 14 -> 512
    "4d": (512, 112, 144, 288, 32, 64, 64),  # 14 x 14 -> 528
    "4e": (528, 256, 160, 320, 32, 128, 128),  # 14 x 14 -> 832
    "5a": (832, 256, 160, 320, 32, 128, 128),  # 7 x 7 -> 832
    "5b": (832, 384, 192, 384, 48, 128, 128),  # 7 x 7 -> 1024
}
INCEPTION_ORDER: tuple[str, ...] = tuple(GOOGLENET_INCEPTION)

BRANCH_NAMES = ("1x1", "3x3", "5x5", "pool")


class BasicConv2d(nn.Module):
    """conv -> (batch norm) -> ReLU.  Without batch norm the conv has a bias, with it none.

    The ReLU is a separate, non-inplace module so that hooks on ``conv`` and ``relu`` see
    pre- and post-activation values.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
        padding: int = 0, batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batch_norm
        )
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.relu(x)


class Inception(nn.Module):
    """One Inception module; output has ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels."""

    def __init__(
        self,
        *,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        for name, value in [
            ("in_channels", in_channels), ("ch1x1", ch1x1), ("ch3x3red", ch3x3red),
            ("ch3x3", ch3x3), ("ch5x5red", ch5x5red), ("ch5x5", ch5x5), ("pool_proj", pool_proj),
        ]:
            check_positive_int(f"Inception {name}", value)
        check_bool("Inception batch_norm", batch_norm)
        bn = batch_norm
        self.in_channels = in_channels
        self.widths = (ch1x1, ch3x3, ch5x5, pool_proj)  # output channels per branch, in order
        self.out_channels = sum(self.widths)

        self.branch1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, 1, batch_norm=bn),
            BasicConv2d(ch3x3red, ch3x3, 3, padding=1, batch_norm=bn),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, 1, batch_norm=bn),
            BasicConv2d(ch5x5red, ch5x5, 5, padding=2, batch_norm=bn),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, 1, batch_norm=bn),
        )

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # N x in_channels x H x W
        branch1 = self.branch1(x)  # N x ch1x1 x H x W
        branch2 = self.branch2(x)  # N x ch3x3 x H x W
        branch3 = self.branch3(x)  # N x ch5x5 x H x W
        branch4 = self.branch4(x)  # N x pool_proj x H x W
        return [branch1, branch2, branch3, branch4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._forward(x), 1)  # N x out_channels x H x W

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, widths(1x1,3x3,5x5,pool)={self.widths}"


def branch_membership(block: nn.Module) -> list[int]:
    """For each output channel of an Inception ``block``, the branch that produced it.

    0: 1x1, 1: 3x3, 2: 5x5, 3: pool projection (in the concatenation order of ``forward``).
    """
    if not isinstance(block, Inception):
        raise SparsenetError(
            f"branch_membership needs an Inception block; got {type(block).__name__}"
        )
    widths = (
        block.branch1.conv.out_channels,
        block.branch2[-1].conv.out_channels,
        block.branch3[-1].conv.out_channels,
        block.branch4[-1].conv.out_channels,
    )
    return [b for b, width in enumerate(widths) for _ in range(width)]
