"""Money as the order read models read it: never a float, never silently zero.

Decimal128, integers, numeric strings (ASCII digits: `_NUMERIC`) and doubles are
money; a double converts through its shortest round-trip decimal form (`repr`), so
36.32 stays 36.32.
Anything else counts as 0 and comes back with the reason, which the read models
record in the row (`problems`): `not_a_number` ("abc"), `not_finite` (NaN,
infinity, or 10**6111 and beyond: see `_LIMIT_DIGITS`), `wrong_type` (a bool, a
document, a list, a date, ...) or `missing`.

Money is what Decimal128 holds, and sums are Decimal128's: 34 significant digits,
rounded half to even, a value below its least step (1E-6176) rounded to it. Every
sum and difference goes through `add` and `negated` (Python's default context
keeps 28 digits, and an operator uses it).
"""

from __future__ import annotations

import math
import re
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any, Final

from bson import Decimal128, json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

NOT_A_NUMBER: Final = "not_a_number"
NOT_FINITE: Final = "not_finite"
WRONG_TYPE: Final = "wrong_type"
MISSING: Final = "missing"
REASONS: Final = (NOT_A_NUMBER, NOT_FINITE, WRONG_TYPE, MISSING)
# How many problems a row keeps (the newest by seq); the rest are counted in problems_dropped.
MAX_PROBLEMS: Final = 20
_SHOWN_CHARS: Final = 100
# How a value that is neither text nor a number is shown, at the top of a field or inside a
# sub-document alike: relaxed Extended JSON (`{"$date": "2026-01-01T00:00:00Z"}`, `{"$oid": …}`,
# `{"$binary": …}`); a UUID as BSON's standard binary (subtype 4), never an error.
_SHOWN_JSON: Final = JSONOptions(
    json_mode=JSONMode.RELAXED, uuid_representation=UuidRepresentation.STANDARD
)

# Decimal128's arithmetic: its 34 digits and exponent range (clamp=1: an exponent of at most
# 6111, as its encoding needs). Overflow is trapped, and cannot happen: see `_LIMIT_DIGITS`.
_MONEY = Context(
    prec=34,
    rounding=ROUND_HALF_EVEN,
    Emin=-6143,
    Emax=6144,
    clamp=1,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
# An amount is below 10**6111 in magnitude, so that 10**33 of them still sum within
# Decimal128 (below 10**6145): no sum of money overflows. Beyond it is `not_finite`.
_LIMIT_DIGITS: Final = 6111
ZERO: Final = Decimal(0)
# A numeric string as money: ASCII digits, one optional point, an optional exponent, around
# them only whitespace. Python's Decimal also reads "1_000" and other scripts' digits ("١٢",
# "１２"); a total written so is recorded, not read as a number no other reader would see.
_NUMERIC: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# -- Decimal128 <-> Decimal -------------------------------------------------------------------
# Decimal128.to_decimal and Decimal128(Decimal) are slow (pure Python, bit by bit), and the
# same Decimal128 objects come back event after event: the fold shares a document's total
# from version to version, and a row's sum is the object this module made. Conversions are
# remembered by object (the entry keeps its object alive, so an id is never reused
# meanwhile); a bounded cache, cleared whole when full.
_DECIMALS: dict[int, tuple[Decimal128, Decimal]] = {}
_MAX_DECIMALS: Final = 32_768
_BIAS: Final = 6176  # the Decimal128 exponent bias
_LOW_BITS: Final = (1 << 64) - 1


def _remember(value: Decimal128, decimal: Decimal) -> None:
    if len(_DECIMALS) >= _MAX_DECIMALS:
        _DECIMALS.clear()
    _DECIMALS[id(value)] = (value, decimal)


def _to_decimal(value: Decimal128) -> Decimal:
    """`value.to_decimal()`, converted once per object."""
    known = _DECIMALS.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    decimal = value.to_decimal()
    _remember(value, decimal)
    return decimal


def dec128(value: Decimal) -> Decimal128:
    """Decimal -> Decimal128 (34 significant digits), bit for bit what `Decimal128()` makes."""
    rounded = _MONEY.create_decimal(value)  # Decimal128's context: the exponent fits its bits
    if rounded.is_finite():
        sign, _, exponent = rounded.as_tuple()
        assert isinstance(exponent, int)  # finite
        # BID: sign, biased exponent, then the coefficient (< 10**34 < 2**113) in 113 bits
        coefficient = abs(int(_MONEY.scaleb(rounded, -exponent)))
        high = (sign << 63) | ((exponent + _BIAS) << 49) | (coefficient >> 64)
        # (high, low): the form bson's own Decimal128.from_bid builds with
        out = Decimal128((high, coefficient & _LOW_BITS))  # type: ignore[arg-type]
        _remember(out, rounded)
        return out
    return Decimal128(rounded)


def money128(value: Decimal128) -> bool:
    """True when a Decimal128 is money as it is: finite, below 10**6111.

    Read from its top byte, but for an exponent of 2016 or more (converted whole).
    Remembered by object, as conversions are: a document's total is the same object
    from version to version (the fold shares it).
    """
    known = _USABLE.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    top = value.bid[15]  # the sign, then the combination field's first 7 bits
    usable = top & 0x78 != 0x78  # combination 11110: infinity; 11111: NaN
    if usable and top & 0x40:  # a biased exponent of 8192 or more, or the `11` form
        usable = not _beyond(_to_decimal(value))
    if len(_USABLE) >= _MAX_DECIMALS:
        _USABLE.clear()
    _USABLE[id(value)] = (value, usable)
    return usable


# money128's answers by object (each entry keeps its object alive: an id is never reused).
_USABLE: dict[int, tuple[Decimal128, bool]] = {}


# a + b and -a as Decimal128 computes them: 34 digits, half to even (the context's own
# methods, called directly: sums are on the order models' hot path).
add: Final = _MONEY.add
negated: Final = _MONEY.minus


# -- reading a value as money ---------------------------------------------------------------
def _beyond(amount: Decimal) -> bool:
    """True for a finite amount of 10**6111 or more in magnitude (zero never is)."""
    return amount.adjusted() >= _LIMIT_DIGITS and not amount.is_zero()


def _usable(amount: Decimal) -> tuple[Decimal, str | None]:
    """A number as money: rounded as Decimal128 holds it; (0, not_finite) when it cannot be."""
    if not amount.is_finite() or _beyond(amount):
        return ZERO, NOT_FINITE
    rounded = _MONEY.plus(amount)  # 34 digits; below the least step, to it
    if _beyond(rounded):  # 9.99...(35 nines)E+6110 rounds up to the limit
        return ZERO, NOT_FINITE
    return rounded, None


def read_money(value: Any) -> tuple[Decimal, str | None]:
    """(amount, None) for money; (0, reason) for anything else (see the module's rules)."""
    cls = value.__class__
    if cls is Decimal128:  # 34 digits already, within Decimal128's range
        amount = _to_decimal(value)
        if amount.is_finite() and not _beyond(amount):
            return amount, None
        return ZERO, NOT_FINITE
    if cls is bool:
        return ZERO, WRONG_TYPE
    if isinstance(value, int):
        return _usable(Decimal(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return ZERO, NOT_FINITE
        return Decimal(repr(value)), None  # the shortest form that reads back as this double
    if isinstance(value, Decimal):
        return _usable(value)
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return _beyond_decimal(value)
        if amount.is_finite() and _NUMERIC.fullmatch(value.strip()) is None:
            return ZERO, NOT_A_NUMBER
        return _usable(amount)
    if value is None:
        return ZERO, MISSING
    return ZERO, WRONG_TYPE


def _beyond_decimal(text: str) -> tuple[Decimal, str | None]:
    """A string Python's Decimal refuses: not a number, or one whose exponent it cannot hold.

    Such an exponent has 18 digits or more, and the amount rounds as one with an exponent
    of 99999 and the same sign does: beyond Decimal128 (`not_finite`) when positive, to
    its least step when negative, and any zero to a zero.
    """
    stripped = text.strip()
    mantissa, _, exponent = stripped.lower().partition("e")
    if _NUMERIC.fullmatch(stripped) is None or not exponent:
        return ZERO, NOT_A_NUMBER
    return _usable(Decimal(f"{mantissa}E{'-' if exponent.startswith('-') else '+'}99999"))


def money(value: Any) -> Decimal:
    """A value as money (see `read_money`); anything that is not money counts as 0."""
    return read_money(value)[0]


def shown(value: Any) -> str | None:
    """An offending value as a string for a problem record (None when it is missing).

    Text as it is and a number as it reads (`abc`, `1.5`, `NaN`, `true`); anything else as
    relaxed Extended JSON, the same at the top of the field as inside a sub-document
    (`{"$date": "2026-01-01T00:00:00Z"}`, `{"$oid": "…"}`). At most 100 characters.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value == math.inf else "-Infinity"
    if isinstance(value, bool):  # as the document's JSON spells it, not Python's True
        return "true" if value else "false"
    if type(value) is str or isinstance(value, (int, float, Decimal128, Decimal)):
        text = str(value)  # text as it is, a number as it reads (`1.5`, not `$numberDecimal`)
    else:  # a date, ObjectId, binary, sub-document, array, ...: as a sub-document shows it
        try:
            text = json_util.dumps(value, json_options=_SHOWN_JSON)
        except (TypeError, ValueError):  # no Extended JSON form (not a BSON value)
            text = str(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def problem(seq: int, field: str, value: Any, reason: str) -> dict[str, Any]:
    """One problem record: `{seq, field, value, reason}`."""
    return {"seq": seq, "field": field, "value": shown(value), "reason": reason}


def with_problems(
    old: list[dict[str, Any]] | None, dropped: int, new: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """A row's problems with `new` added: the newest MAX_PROBLEMS by seq, and how many were dropped."""
    merged = sorted([*(old or []), *new], key=lambda p: int(p.get("seq", 0)))
    over = max(len(merged) - MAX_PROBLEMS, 0)
    return merged[over:], dropped + over


__all__ = [
    "MAX_PROBLEMS",
    "MISSING",
    "NOT_A_NUMBER",
    "NOT_FINITE",
    "REASONS",
    "WRONG_TYPE",
    "ZERO",
    "add",
    "dec128",
    "money",
    "money128",
    "negated",
    "problem",
    "read_money",
    "shown",
    "with_problems",
]
