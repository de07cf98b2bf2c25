"""Normalisation and batch augmentation, in plain torch (no torchvision).

Randomness always comes from a ``torch.Generator`` passed in, so the same generator state gives
the same augmented batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from sparsenet.errors import SparsenetError

__all__ = ["normalize", "resize", "Augment"]


def resize(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Bilinear resize of an N x C x H x W float tensor to image_size x image_size (None: unchanged)."""
    if image_size is None or tuple(x.shape[2:]) == (image_size, image_size):
        return x
    out = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def normalize(
    x: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for N x C x H x W (or C x H x W) tensors."""
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SparsenetError(f"normalize expects an N x C x H x W or C x H x W tensor, got {got}")
    c_dim = x.ndim - 3
    channels = x.shape[c_dim]
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1)
    if m.numel() != channels or s.numel() != channels:
        raise SparsenetError(
            f"normalize: {m.numel()} mean and {s.numel()} std values for {channels} channels; "
            "give one per channel"
        )
    if not bool((s > 0).all()):
        raise SparsenetError(f"normalize: std must be positive per channel, got {s.tolist()}")
    shape = (channels, 1, 1)
    return (x - m.reshape(shape)) / s.reshape(shape)


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding and random horizontal flip, per sample, for a batch."""

    crop_padding: int = 0  # pad each side by this many zero pixels, then crop back at a random offset
    hflip: bool = False  # flip each sample left-right with probability 0.5

    def __post_init__(self):
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise SparsenetError(f"Augment.crop_padding must be a non-negative integer, got {self.crop_padding!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copy of the N x C x H x W batch ``x`` (``x`` itself when nothing is enabled)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SparsenetError(f"Augment expects an N x C x H x W batch, got {got}")
        if not isinstance(generator, torch.Generator):
            raise SparsenetError(
                f"Augment needs a torch.Generator for reproducible randomness, got {type(generator).__name__}"
            )
        n, _, h, w = x.shape
        gdev = generator.device
        if self.crop_padding > 0 and n > 0:
            p = self.crop_padding
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=gdev).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=gdev).to(x.device)
            padded = F.pad(x, (p, p, p, p)).permute(0, 2, 3, 1)  # N x H+2p x W+2p x C
            rows = dy[:, None] + torch.arange(h, device=x.device)  # N x H
            cols = dx[:, None] + torch.arange(w, device=x.device)  # N x W
            batch = torch.arange(n, device=x.device)[:, None, None]
            x = padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()  # N x C x H x W
        if self.hflip and n > 0:
            flip = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x
