"""Argument types of the command line: whole numbers written in ASCII digits only.

argparse's `type=int` is Python's int(), which reads `1_0` as 10, `+5`, and the
digits of other scripts (`٣` as 3): an argument so written is refused with one line.
"""

from __future__ import annotations

import argparse

from eventstore.decimal_text import decimal_int


def whole_int(value: str) -> int:
    """A whole number in ASCII digits (`1_0`, `+5` and other scripts' digits are refused)."""
    n = decimal_int(value)
    if n is None:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}")
    return n


def positive_int(value: str) -> int:
    return _int_from(value, 1)


def nonneg_int(value: str) -> int:
    return _int_from(value, 0)


def _int_from(value: str, least: int) -> int:
    """A whole number of at least `least`; the message names the bound that was broken."""
    n = whole_int(value)
    if n < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more: {n}")
    return n
