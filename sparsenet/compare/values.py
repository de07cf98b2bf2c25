"""The value checks of the experiment schema: each takes (path, value), returns the value
normalised, or raises ConfigError naming the key by its path, what it held and what is accepted."""

from __future__ import annotations

import math
from typing import Any, Callable

from sparsenet.errors import SparsenetError


class ConfigError(SparsenetError):
    """A bad key or value in an experiment configuration: says where, what, and what is accepted."""


# ----------------------------------------------------------------------------- value checks
# Each check returns the (normalised) value or raises ConfigError naming ``path``.

def fail(path: str, value: Any, accepted: str) -> ConfigError:
    shown = repr(value)
    return ConfigError(f"{path} is {shown[:120]}; {accepted}")


def int_value(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = " and ".join(x for x in (f">= {minimum}" if minimum is not None else "",
                                              f"<= {maximum}" if maximum is not None else "") if x)
            raise fail(path, value, f"expected an integer{' ' + bounds if bounds else ''}")
        return value
    return check


def float_value(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
            hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
            rng = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (lo or hi) else ""
            raise fail(path, value, f"expected a number{rng}")
        return float(value)
    return check


def bool_value(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(path, value, "expected true or false")
    return value


def str_value(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(path, value, "expected a non-empty string")
    return value


def choice(*options: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in options:
            raise fail(path, value, f"expected one of {list(options)}")
        return value
    return check


def list_value(item: Callable[[str, Any], Any], *, nonempty: bool = True, unique: bool = False) -> Callable:
    def check(path: str, value: Any) -> list:
        if not isinstance(value, list):
            raise fail(path, value, "expected a list" + (" with at least one item" if nonempty else ""))
        if nonempty and not value:
            raise fail(path, value, "expected a list with at least one item")
        out = [item(f"{path}[{i}]", v) for i, v in enumerate(value)]
        if unique and len(set(out)) != len(out):
            raise fail(path, value, "expected each value at most once")
        return out
    return check


def clusters_value(path: str, value: Any) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise fail(path, value, 'expected "auto" or an integer >= 1')


def threshold_value(path: str, value: Any) -> float | str:
    ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
    if ok and not isinstance(value, str):
        ok = math.isfinite(value)
    if ok and isinstance(value, str):
        kind, _, q = value.partition(":")
        try:
            ok = kind.strip() == "quantile" and 0 < float(q) < 1
        except ValueError:
            ok = False
    if not ok:
        raise fail(path, value, 'expected a number or "quantile:q" with 0 < q < 1')
    return float(value) if not isinstance(value, str) else value


def count_or_fraction_value(path: str, value: Any) -> int | float:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, float) and 0 < value < 1:
        return value
    raise fail(path, value, "expected a count (an integer >= 1) or a fraction in (0, 1)")


def comparison_value(path: str, value: Any) -> str:
    str_value(path, value)
    parts = [x.strip() for x in value.split(" vs ")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise fail(path, value, 'expected "A vs B" with two different candidate names')
    return f"{parts[0]} vs {parts[1]}"


def dataset_value(path: str, value: Any) -> str:
    from sparsenet.data.registry import USER_FORMATS, dataset_names

    str_value(path, value)
    names = dataset_names()
    if value.strip().lower() in names:
        return value.strip()
    fmt, sep, rest = value.partition(":")
    if sep and fmt.strip().lower() in USER_FORMATS and rest.strip():
        return value.strip()
    raise fail(path, value, f"unknown dataset; expected one of {names} or FORMAT:PATH with FORMAT one of "
                             f"{sorted(USER_FORMATS)}")


def budget_like_value(path: str, value: Any) -> str:
    from sparsenet.builder.rules import parse_budget_like

    str_value(path, value)
    try:
        parse_budget_like(value)
    except SparsenetError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return value


def model_value(path: str, value: Any) -> str:
    from sparsenet.models.external import parse_model_spec  # parses only: nothing is imported here

    try:
        return parse_model_spec(str_value(path, value)).spec
    except ConfigError:
        raise
    except SparsenetError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def kwargs_value(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(v, (int, float, str, bool, list)) for v in value.values()):
        raise fail(path, value, "expected a table of keyword arguments with plain values, e.g. { width = 16 }")
    return dict(value)


def stage_value(path: str, value: Any) -> str:
    from sparsenet.models.inception import INCEPTION_ORDER

    if value not in INCEPTION_ORDER:
        raise fail(path, value, f"expected an Inception stage, one of {list(INCEPTION_ORDER)}")
    return value


# ----------------------------------------------------------------------------- the schema
# section -> {key: (check, default)}; a default of _REQUIRED means the key must be given.
