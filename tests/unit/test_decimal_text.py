"""Whole numbers read from text: ASCII digits only (eventstore.decimal_text)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.decimal_text import LONGEST, canonical_int, decimal_float, decimal_int


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("0", 0, 0),
        ("42", 42, 42),
        ("-7", -7, -7),
        ("007", 7, None),
        ("-0", 0, None),
        ("9" * LONGEST, int("9" * LONGEST), int("9" * LONGEST)),
        ("9" * (LONGEST + 1), None, None),
        ("", None, None),
        ("-", None, None),
        ("+5", None, None),
        (" 5", None, None),
        ("5\n", None, None),
        ("1_000", None, None),
        ("\u0663", None, None),  # Arabic-Indic three: int() reads it as 3
        ("\u00b2", None, None),  # superscript two: str.isdigit() admits it, int() refuses it
        ("1.0", None, None),
        ("0x10", None, None),
    ],
)
def test_only_ascii_digits_are_a_number(
    text: str, value: int | None, canonical: int | None
) -> None:
    assert decimal_int(text) == value
    assert canonical_int(text) == canonical


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_every_integer_reads_back_from_its_own_text(n: int) -> None:
    assert decimal_int(str(n)) == n and canonical_int(str(n)) == n


@pytest.mark.parametrize(
    ("text", "number"),
    [("10", 10.0), ("0.5", 0.5), ("-1", -1.0), ("007.250", 7.25), ("0", 0.0)]
    + [(t, None) for t in (".5", "5.", "1e3", "inf", "nan", "+5", "1_000", "\u0663", "", " 5")]
    + [("1" * LONGEST, float("1" * LONGEST)), ("1" * (LONGEST + 1), None)],
)
def test_a_decimal_with_a_fraction_is_ascii_digits_and_one_point(
    text: str, number: float | None
) -> None:
    # Seconds (settings, `monitor --interval`) and rates (`--rate`): one spelling.
    assert decimal_float(text) == number
