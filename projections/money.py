"""Money as the order read models read it: never a float, never silently zero.

Decimal128, integers, numeric strings and doubles are money; a double converts
through its shortest round-trip decimal form (`repr`), so 36.32 stays 36.32.
Anything else counts as 0 and comes back with the reason, which the read models
record in the row (`problems`): `not_a_number` ("abc"), `not_finite` (NaN,
infinity), `wrong_type` (a bool, a document, a list, a date, ...) or `missing`.
Sums are Decimal with 34 digits, stored as Decimal128.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Final

from bson import Decimal128, json_util

NOT_A_NUMBER: Final = "not_a_number"
NOT_FINITE: Final = "not_finite"
WRONG_TYPE: Final = "wrong_type"
MISSING: Final = "missing"
REASONS: Final = (NOT_A_NUMBER, NOT_FINITE, WRONG_TYPE, MISSING)
# How many problems a row keeps (the newest by seq); the rest are counted in problems_dropped.
MAX_PROBLEMS: Final = 20
_SHOWN_CHARS: Final = 100

_MONEY = Context(prec=34)
ZERO: Final = Decimal(0)

# -- Decimal128 <-> Decimal -------------------------------------------------------------------
# Decimal128.to_decimal and Decimal128(Decimal) are slow (pure Python, bit by bit), and the
# same Decimal128 objects come back event after event: the fold shares a document's total
# from version to version, and a row's sum is the object this module made. Conversions are
# remembered by object (the entry keeps its object alive, so an id is never reused
# meanwhile); a bounded cache, cleared whole when full.
_DECIMALS: dict[int, tuple[Decimal128, Decimal]] = {}
_MAX_DECIMALS: Final = 32_768
_BIAS: Final = 6176  # the Decimal128 exponent bias
_MAX_EXPONENT: Final = 6111  # beyond it, a 34-digit Decimal128 needs clamping: left to bson
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
    rounded = _MONEY.create_decimal(value)
    if rounded.is_finite():
        sign, _, exponent = rounded.as_tuple()
        assert isinstance(exponent, int)  # finite
        if -_BIAS <= exponent <= _MAX_EXPONENT:
            # BID: sign, biased exponent, then the coefficient (< 10**34 < 2**113) in 113 bits
            coefficient = abs(int(_MONEY.scaleb(rounded, -exponent)))
            high = (sign << 63) | ((exponent + _BIAS) << 49) | (coefficient >> 64)
            # (high, low): the form bson's own Decimal128.from_bid builds with
            out = Decimal128((high, coefficient & _LOW_BITS))  # type: ignore[arg-type]
            _remember(out, rounded)
            return out
    return Decimal128(rounded)


def finite128(value: Decimal128) -> bool:
    """True unless a Decimal128 is NaN or an infinity (read from its bits: no conversion).

    Remembered by object, as conversions are: a document's total is the same object
    from version to version (the fold shares it).
    """
    known = _FINITE.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    # BID: the combination field's top bits 11110 (infinity) or 11111 (NaN) follow the sign
    finite = (int.from_bytes(value.bid[8:], "little") >> 58) & 0x1E != 0x1E
    if len(_FINITE) >= _MAX_DECIMALS:
        _FINITE.clear()
    _FINITE[id(value)] = (value, finite)
    return finite


# finite128's answers by object (each entry keeps its object alive: an id is never reused).
_FINITE: dict[int, tuple[Decimal128, bool]] = {}


# -- reading a value as money ---------------------------------------------------------------
def read_money(value: Any) -> tuple[Decimal, str | None]:
    """(amount, None) for money; (0, reason) for anything else (see the module's rules)."""
    cls = value.__class__
    if cls is Decimal128:
        amount = _to_decimal(value)
        return (amount, None) if amount.is_finite() else (ZERO, NOT_FINITE)
    if cls is bool:
        return ZERO, WRONG_TYPE
    if isinstance(value, int):
        return Decimal(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            return ZERO, NOT_FINITE
        return Decimal(repr(value)), None  # the shortest form that reads back as this double
    if isinstance(value, Decimal):
        return (value, None) if value.is_finite() else (ZERO, NOT_FINITE)
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return ZERO, NOT_A_NUMBER
        return (amount, None) if amount.is_finite() else (ZERO, NOT_FINITE)
    if value is None:
        return ZERO, MISSING
    return ZERO, WRONG_TYPE


def money(value: Any) -> Decimal:
    """A value as money (see `read_money`); anything that is not money counts as 0."""
    return read_money(value)[0]


def shown(value: Any) -> str | None:
    """An offending value as a string for a problem record (None when it is missing)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, bool):  # as the document's JSON spells it, not Python's True
        return "true" if value else "false"
    if isinstance(value, (dict, list)):  # a sub-document or array as relaxed Extended JSON
        text = json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)
    else:
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
    "dec128",
    "finite128",
    "money",
    "problem",
    "read_money",
    "shown",
    "with_problems",
]
