"""How numbers are written in tables, reports, summaries and tick labels: one formatter each.

Every report and plot formats through these, so that a missing value reads the same ('n/a')
everywhere and a multiply-add count is '3.15M' in a report, a plot and a terminal alike.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fixed", "human", "grouped", "p_value", "measured"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fixed(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals; None/NaN as 'n/a', infinities as '+inf'/'-inf',
    ints as they are, very large values in 3 significant digits, non-numbers as their text."""
    if _missing(value):
        return "n/a"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    if isinstance(value, int):
        return str(value)
    if abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def human(n: Any, _pos: Any = None) -> str:
    """3150712 -> '3.15M' (3 significant digits with a k/M/G suffix); 'n/a' when missing.

    The unused second argument lets matplotlib's ``FuncFormatter`` call it for tick labels."""
    if _missing(n):
        return "n/a"
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def grouped(n: int) -> str:
    """3150712 -> '3,150,712': an exact count."""
    return f"{n:,}"


def p_value(p: Any) -> str:
    """A p-value in 3 significant digits; 'n/a' when missing."""
    return "n/a" if _missing(p) else f"{float(p):.3g}"


def measured(v: Any) -> str:
    """A benchmark measurement: 3 significant digits below 100, whole numbers with separators above."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)
