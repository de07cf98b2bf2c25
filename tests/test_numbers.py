"""The one number formatter every report, summary and plot uses."""

import math

import pytest

from sparsenet.numbers import fixed, grouped, human, measured, p_value


@pytest.mark.parametrize("value, text", [(3150712, "3.15M"), (2.5e9, "2.5G"), (43210, "43.2k"), (512, "512"),
                                         (-1500, "-1.5k"), (None, "n/a"), (math.nan, "n/a")])
def test_human_suffixes_and_missing(value, text):
    assert human(value) == text


@pytest.mark.parametrize("value, digits, text", [(0.12345, 3, "0.123"), (0.12345, 1, "0.1"), (7, 2, "7"),
                                                 (None, 2, "n/a"), (math.nan, 2, "n/a"), (math.inf, 2, "+inf"),
                                                 (-math.inf, 2, "-inf"), (123456.0, 2, "1.23e+05"),
                                                 ("spectral", 2, "spectral")])
def test_fixed_for_tables(value, digits, text):
    assert fixed(value, digits) == text


def test_counts_p_values_and_measurements():
    assert grouped(3150712) == "3,150,712"
    assert p_value(0.000123456) == "0.000123" and p_value(None) == "n/a"
    assert measured(1.23456) == "1.23" and measured(12345.6) == "12,346" and measured(math.nan) == "nan"
    assert measured("ok") == "ok"
