"""Argument types of the command line: whole numbers written in ASCII digits only.

argparse's `type=int` is Python's int(), which reads `1_0` as 10, `+5`, and the
digits of other scripts (`٣` as 3): an argument so written is refused with one line.
A refusal quotes the argument as it was typed (`must be 1 or more: -00`), never the
number read from it.
"""

from __future__ import annotations

import argparse
from typing import Final

from eventstore.decimal_text import decimal_int

# Where the texts of the options read by the parser's `_Noted` are kept, by option
# (`{"--rate": "5.50"}`): a check after parsing quotes the argument as it was typed.
WRITTEN: Final = "written_options"


def written(args: argparse.Namespace, option: str, default: str) -> str:
    """`option`'s argument as it was typed, or `default` when it was not given."""
    texts: dict[str, str] = getattr(args, WRITTEN, {})
    return texts.get(option, default)


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
        raise argparse.ArgumentTypeError(f"must be {least} or more: {value}")
    return n
