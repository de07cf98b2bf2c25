"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import ast

from sparsenet.errors import SparsenetError


def parse_key_values(items: list[str] | None, option: str) -> dict:
    """``["width_mult=0.5", "batch_norm=True"]`` -> {"width_mult": 0.5, "batch_norm": True}."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SparsenetError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word is a string
        out[key.strip()] = value
    return out


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into a usage error, exit 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"
