"""Where models run: ``auto | cpu | cuda[:N] | mps`` resolved to a ``torch.device``, or refused.

``auto`` is CUDA when it is available, else the CPU (MPS is only used when asked for: some of
its kernels fall back to the CPU silently).  Asking for a device the machine does not have is a
``SparsenetError`` that says which devices there are, before any data is loaded.

``DEVICES`` is the choice list the command line shows; ``supports_float64`` says whether the
statistics can accumulate in float64 on a device (MPS cannot).
"""

from __future__ import annotations

import re

from sparsenet.errors import SparsenetError

__all__ = ["DEVICES", "resolve_device", "available_devices", "supports_float64"]

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")


def available_devices() -> list[str]:
    """The devices this machine has, as accepted by ``resolve_device``."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(spec=None):
    """``spec`` (None, a string of ``DEVICES`` or a ``torch.device``) as a ``torch.device`` that
    exists on this machine."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    match = _PATTERN.match(text)
    if not match:
        raise SparsenetError(f"device {spec!r} is not understood; accepted: {', '.join(DEVICES)}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    have = ", ".join(available_devices())
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SparsenetError(f"device 'mps' was asked for but this machine has no MPS (Apple GPU); "
                                 f"available: {have}")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise SparsenetError(f"device {text!r} was asked for but CUDA is not available here (torch "
                             f"{torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA); "
                             f"available: {have}")
    index = int(match.group(2)) if match.group(2) is not None else None
    if index is not None and index >= torch.cuda.device_count():
        raise SparsenetError(f"device {text!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); available: {have}")
    return torch.device("cuda" if index is None else f"cuda:{index}")


def supports_float64(device) -> bool:
    """Whether tensors of ``device`` can be float64 (MPS cannot)."""
    return getattr(device, "type", str(device)) != "mps"
