"""Whole numbers written in ASCII decimal digits: the one spelling of a number read from text.

Python's `int()` also reads `1_000`, `+5`, ` 5 ` and the digits of other scripts
(`٣`); `str.isdigit()` even admits `²`, which `int()` then refuses with a
ValueError. A seq, a version, a count, a port or a header's seconds written in any
of those forms is refused (or, in a header, ignored), never read as some number.
"""

from __future__ import annotations

import re
from typing import Final

_DECIMAL: Final = re.compile(r"-?[0-9]+")
# A decimal with an optional fraction (`10`, `0.5`): seconds and rates. float() also reads
# `.5`, `1_000`, `+5`, `1e3`, `inf`, `nan` and other scripts' digits: none is a number here.
_DECIMAL_FRACTION: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Characters: past every bound a caller checks (2^64 has 20 digits), and far below
# the interpreter's 4,300-digit limit on int().
LONGEST: Final = 40


def decimal_int(text: str) -> int | None:
    """The integer `text` writes in ASCII digits (an optional minus sign); None for other text."""
    if len(text) > LONGEST or not _DECIMAL.fullmatch(text):
        return None
    return int(text)


def decimal_float(text: str) -> float | None:
    """The number `text` writes in ASCII digits with an optional fraction (and minus sign);
    None for other text. Finite: at most LONGEST characters."""
    if len(text) > LONGEST or not _DECIMAL_FRACTION.fullmatch(text):
        return None
    return float(text)


def canonical_int(text: str) -> int | None:
    """As `decimal_int`, but only as the integer prints: no leading zeros, no `-0`."""
    n = decimal_int(text)
    return n if n is not None and str(n) == text else None


__all__ = ["LONGEST", "canonical_int", "decimal_float", "decimal_int"]
