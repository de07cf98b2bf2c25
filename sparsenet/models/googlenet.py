"""GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1) and a small variant.

``googlenet`` follows Table 1 at 224 x 224 x 3::

    conv1     7x7/2, 64                    112 x 112 x 64
    maxpool1  3x3/2                         56 x 56 x 64
    conv2     1x1, 64   (#3x3 reduce)       56 x 56 x 64
    conv3     3x3/1, 192                    56 x 56 x 192
    maxpool2  3x3/2                         28 x 28 x 192
    inception3a, 3b                         28 x 28 x 256, 480
    maxpool3  3x3/2                         14 x 14 x 480
    inception4a .. 4e                       14 x 14 x 512, 512, 512, 528, 832
    maxpool4  3x3/2                          7 x 7 x 832
    inception5a, 5b                          7 x 7 x 832, 1024
    avgpool   (global; 7x7/1 at 224)         1 x 1 x 1024
    dropout 40%, fc 1024 -> num_classes

Deviations from the paper, all without parameters or multiply-adds: the local response
normalisation layers of Figure 3 are left out (Table 1 has none; torchvision does the same), and
the average pool is global (adaptive), so inputs larger than 224 also work.  Unlike torchvision,
the "5x5" branches really use 5x5 kernels.  Max pools use ``ceil_mode=True`` (Caffe's rounding),
which gives Table 1's sizes.

``googlenet_small`` keeps the same Inception modules (optionally narrower, or only the first k)
for 28-32 px inputs: a stride-1 stem (3x3 conv, 1x1 conv, 3x3 conv) and a single 3x3/2 max pool
before inception3a (28 -> 14), then the paper's max pools between 3b/4a (14 -> 7) and 4e/5a
(7 -> 3 at 28 px, 8 -> 4 at 32 px).

Minimum input size: the smallest input for which every 3x3/2 max-pool window fits inside its
input (and, with auxiliary classifiers, the 5x5 average pool of the auxiliary heads fits);
smaller inputs raise a ``SparsenetError``.  That is 47 x 47 for ``googlenet`` (79 with
``aux_logits``) and 12 x 12 for ``googlenet_small`` with all nine modules.
"""

from __future__ import annotations

import inspect
import math
from collections import namedtuple
from typing import Any, Callable

import torch
from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models.inception import GOOGLENET_INCEPTION, INCEPTION_ORDER, BasicConv2d, Inception
from sparsenet.models.registry import (
    check_batch,
    check_bool,
    check_positive_float,
    check_positive_int,
    check_probability,
    register_model,
)

__all__ = ["GoogLeNet", "GoogLeNetSmall", "GoogLeNetOutputs", "googlenet", "googlenet_small", "init_weights"]

# In train mode with aux_logits the model returns this tuple: (main, aux after 4a, aux after 4d).
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux1", "aux2"])

# Table 1 stem widths: conv1 (7x7/2), conv2 (the 1x1 "#3x3 reduce"), conv3 (3x3).
STEM = (64, 64, 192)


def pool_out(size: int) -> int:
    """Output size of a 3x3/2 max pool with ceil_mode=True and no padding."""
    return math.ceil((size - 3) / 2) + 1


def scale_width(width: int, width_mult: float) -> int:
    """A Table 1 width times ``width_mult``, rounded half up, at least 1 (GoogLeNetSmall's rule)."""
    return max(1, math.floor(width * width_mult + 0.5))


def check_num_modules(num_modules: Any) -> int:
    if isinstance(num_modules, bool) or not isinstance(num_modules, int) or not 1 <= num_modules <= 9:
        raise SparsenetError(f"num_modules must be an integer from 1 to 9 (the first k of "
                             f"{', '.join(INCEPTION_ORDER)}); got {num_modules!r}")
    return num_modules


def _min_size(fits: Callable[[int], bool], limit: int = 4096) -> int:
    """Smallest input side for which ``fits`` holds (``fits`` is monotone)."""
    for size in range(1, limit + 1):
        if fits(size):
            return size
    raise AssertionError("no input size fits")  # pragma: no cover


def init_weights(model: nn.Module) -> None:
    """Initialise ``model``'s layers in place, in ``model.modules()`` order (from the global RNG).

    He-normal weights for the (ReLU) convolutions, so that a net without batch norm trains from
    scratch; batch norm scale 1 and shift 0; linear weights N(0, 0.01); zero biases.  GoogLeNet,
    GoogLeNetSmall and the builder's networks (``sparsenet.builder.modules``) start this way.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def _inception(key: str, in_channels: int, scale: Callable[[int], int], batch_norm: bool) -> Inception:
    _, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = GOOGLENET_INCEPTION[key]
    return Inception(
        in_channels=in_channels,
        ch1x1=scale(ch1x1),
        ch3x3red=scale(ch3x3red),
        ch3x3=scale(ch3x3),
        ch5x5red=scale(ch5x5red),
        ch5x5=scale(ch5x5),
        pool_proj=scale(pool_proj),
        batch_norm=batch_norm,
    )


class InceptionAux(nn.Module):
    """Auxiliary classifier (Section 5): avg pool 5x5/3, 1x1 conv 128, fc 1024, dropout 0.7, fc."""

    def __init__(self, in_channels: int, num_classes: int, *, batch_norm: bool = False) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(5, stride=3)
        self.resize = nn.AdaptiveAvgPool2d((4, 4))  # identity at 224 px (14 -> 4); other sizes
        self.conv = BasicConv2d(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 512 x 14 x 14 (4a) or N x 528 x 14 x 14 (4d)
        x = self.resize(self.avgpool(x))  # N x C x 4 x 4
        x = self.conv(x)  # N x 128 x 4 x 4
        x = torch.flatten(x, 1)  # N x 2048
        x = self.relu(self.fc1(x))  # N x 1024
        x = self.dropout(x)
        return self.fc2(x)  # N x num_classes


class GoogLeNet(nn.Module):
    """GoogLeNet as in Table 1 of Szegedy et al. 2014 (see the module docstring)."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        batch_norm: bool = False,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_bool("aux_logits", aux_logits)
        check_bool("batch_norm", batch_norm)
        dropout = check_probability("dropout", dropout)
        bn = batch_norm
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        side = _min_size(lambda s: self.stage_sizes(s, aux_logits) is not None)
        self.min_input_size = (side, side)

        self.conv1 = BasicConv2d(in_channels, STEM[0], 7, stride=2, padding=3, batch_norm=bn)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(STEM[0], STEM[1], 1, batch_norm=bn)
        self.conv3 = BasicConv2d(STEM[1], STEM[2], 3, padding=1, batch_norm=bn)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        full = lambda w: w  # noqa: E731  (paper widths, unscaled)
        self.inception3a = _inception("3a", 192, full, bn)
        self.inception3b = _inception("3b", 256, full, bn)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = _inception("4a", 480, full, bn)
        self.inception4b = _inception("4b", 512, full, bn)
        self.inception4c = _inception("4c", 512, full, bn)
        self.inception4d = _inception("4d", 512, full, bn)
        self.inception4e = _inception("4e", 528, full, bn)
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = _inception("5a", 832, full, bn)
        self.inception5b = _inception("5b", 832, full, bn)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, batch_norm=bn)
            self.aux2 = InceptionAux(528, num_classes, batch_norm=bn)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_weights(self)

    @staticmethod
    def stage_sizes(side: int, aux_logits: bool = False) -> dict[str, int] | None:
        """Feature-map side after each stage for an input side, or None if it is too small."""
        previous = (side - 1) // 2 + 1  # conv1: 7x7/2, padding 3
        sizes = {"conv1": previous}
        for stage in ("conv3", "inception3", "inception4", "inception5"):  # each after a 3x3/2 pool
            if previous < 3:  # the 3x3 pooling window must fit
                return None
            previous = sizes[stage] = pool_out(previous)
        if aux_logits and sizes["inception4"] < 5:  # the auxiliary 5x5 average pool must fit
            return None
        return sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        check_batch(
            x, model="googlenet", in_channels=self.in_channels, min_size=self.min_input_size,
            hint=" (Table 1 uses 224 x 224; use 'googlenet_small' for 28-32 px inputs.)",
        )
        # N x 3 x 224 x 224
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        x = self.conv2(x)  # N x 64 x 56 x 56
        x = self.conv3(x)  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        x = self.inception5b(x)  # N x 1024 x 7 x 7
        x = self.avgpool(x)  # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)  # N x 1024
        x = self.dropout(x)
        x = self.fc(x)  # N x num_classes
        if aux1 is not None:
            return GoogLeNetOutputs(x, aux1, aux2)
        return x


class GoogLeNetSmall(nn.Module):
    """GoogLeNet's Inception stages for 28-32 px inputs (see the module docstring).

    ``width_mult`` multiplies every width of the stem and the modules (rounded half up, at least
    1); ``num_modules`` keeps the first k of 3a, 3b, 4a, 4b, 4c, 4d, 4e, 5a, 5b.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        width_mult: float = 1.0,
        num_modules: int = 9,
        batch_norm: bool = False,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        width_mult = check_positive_float("width_mult", width_mult)
        check_num_modules(num_modules)
        check_bool("batch_norm", batch_norm)
        dropout = check_probability("dropout", dropout)
        bn = batch_norm
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.num_modules = num_modules
        side = _min_size(lambda s: self.stage_sizes(s, num_modules) is not None)
        self.min_input_size = (side, side)

        def scale(width: int) -> int:
            return scale_width(width, width_mult)

        c1, c2, c3 = (scale(w) for w in STEM)
        self.conv1 = BasicConv2d(in_channels, c1, 3, padding=1, batch_norm=bn)
        self.conv2 = BasicConv2d(c1, c2, 1, batch_norm=bn)
        self.conv3 = BasicConv2d(c2, c3, 3, padding=1, batch_norm=bn)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.body: list[str] = []  # names of the layers after the stem, in order
        channels = c3
        for key in INCEPTION_ORDER[:num_modules]:
            if key in ("4a", "5a"):  # the paper's pools between 3b/4a and 4e/5a
                pool = "maxpool3" if key == "4a" else "maxpool4"
                self.add_module(pool, nn.MaxPool2d(3, stride=2, ceil_mode=True))
                self.body.append(pool)
            block = _inception(key, channels, scale, bn)
            self.add_module(f"inception{key}", block)
            self.body.append(f"inception{key}")
            channels = block.out_channels
        self.out_channels = channels  # channels entering the classifier

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    @staticmethod
    def stage_sizes(side: int, num_modules: int = 9) -> dict[str, int] | None:
        """Feature-map side after each stage for an input side, or None if it is too small."""
        stages = ["inception3"] + (["inception4"] if num_modules >= 3 else [])
        stages += ["inception5"] if num_modules >= 8 else []
        previous = side
        sizes = {"conv3": side}
        for stage in stages:  # each after a 3x3/2 pool
            if previous < 3:  # the 3x3 pooling window must fit
                return None
            previous = sizes[stage] = pool_out(previous)
        return sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, model="googlenet_small", in_channels=self.in_channels, min_size=self.min_input_size)
        # N x C x 28 x 28 (shapes for width_mult 1.0, 28 px)
        x = self.conv1(x)  # N x 64 x 28 x 28
        x = self.conv2(x)  # N x 64 x 28 x 28
        x = self.conv3(x)  # N x 192 x 28 x 28
        x = self.maxpool2(x)  # N x 192 x 14 x 14
        for name in self.body:  # 3a, 3b at 14; maxpool3; 4a..4e at 7; maxpool4; 5a, 5b at 3
            x = getattr(self, name)(x)
        x = self.avgpool(x)  # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)  # N x 1024
        x = self.dropout(x)
        return self.fc(x)  # N x num_classes


def _factory(name: str, cls: type[nn.Module]) -> Callable[..., nn.Module]:
    """The registry factory ``name``: ``cls(**kwargs)``, with the keyword arguments (and
    defaults) of ``cls.__init__`` as its signature, so they are written only once."""

    def factory(**kwargs) -> nn.Module:
        return cls(**kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"Build a :class:`{cls.__name__}`; the keyword arguments are its own."
    factory.__signature__ = inspect.signature(cls).replace(return_annotation=cls.__name__)
    return factory


googlenet = register_model(
    "googlenet",
    default_input=(3, 224, 224),
    description="GoogLeNet as in Table 1 of Szegedy et al. 2014 (real 5x5 branches; optional aux heads, BN)",
)(_factory("googlenet", GoogLeNet))

googlenet_small = register_model(
    "googlenet_small",
    default_input=(1, 28, 28),
    description="GoogLeNet's Inception modules for 28-32 px inputs (stride-1 stem; width_mult, num_modules)",
)(_factory("googlenet_small", GoogLeNetSmall))
