"""projections.money at its edges: Decimal128 read from its bits, the conversions remembered
(and bounded), offending values shown as a problem record shows them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128

from projections import money
from projections.money import (
    MAX_PROBLEMS,
    dec128,
    money128,
    read_money,
    shown,
    with_problems,
)

# (value, money as it is): the top byte decides, but for exponents of 2016 and more.
MONEY128 = [
    ("12.50", True),
    ("-0.00", True),
    ("1E-6176", True),
    ("NaN", False),
    ("-NaN", False),
    ("Infinity", False),
    ("-Infinity", False),
    ("1E+2015", True),  # the largest exponent read from the top byte alone
    ("1E+2016", True),  # converted whole from here on
    ("1E+6110", True),
    ("9.999999999999999999999999999999999E+6110", True),
    ("1E+6111", False),
    ("-1E+6111", False),
    ("1.000000000000000000000000000000000E+6144", False),
    ("0E+6111", True),  # zero, whatever its exponent
]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    money._DECIMALS.clear()
    money._USABLE.clear()
    yield
    money._DECIMALS.clear()
    money._USABLE.clear()


@pytest.mark.parametrize(("text", "usable"), MONEY128)
def test_money128_reads_a_decimal128_as_read_money_does(text: str, usable: bool) -> None:
    value = Decimal128(text)
    assert money128(value) is usable
    amount, reason = read_money(value)
    assert (reason is None) is usable
    assert amount == (value.to_decimal() if usable else 0)


def test_an_infinity_with_trailing_bits_is_not_money() -> None:
    # combination 11110 then 01: infinity whatever follows (the top byte 0x79)
    value = Decimal128.from_bid(b"\x00" * 15 + b"\x79")
    assert not money128(value) and read_money(value) == (Decimal(0), "not_finite")


def test_a_non_canonical_decimal128_is_zero_and_money() -> None:
    # combination field 11 without 1111: a coefficient beyond 10**34, which BID reads as 0
    for bid in (b"\x00" * 15 + b"\x60", b"\x01" + b"\x00" * 14 + b"\x68"):
        value = Decimal128.from_bid(bid)
        assert money128(value) and read_money(value) == (Decimal(0), None)


class Counting:
    """Counts reads of Decimal128.bid and calls of Decimal128.to_decimal."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bids = self.conversions = 0
        bid, to_decimal = Decimal128.bid, Decimal128.to_decimal

        def counted_bid(d: Decimal128) -> bytes:
            self.bids += 1
            return bid.fget(d)  # type: ignore[attr-defined,no-any-return]

        def counted_to_decimal(d: Decimal128) -> Decimal:
            self.conversions += 1
            return to_decimal(d)

        monkeypatch.setattr(Decimal128, "bid", property(counted_bid))
        monkeypatch.setattr(Decimal128, "to_decimal", counted_to_decimal)


def test_each_decimal128_is_read_once_however_often_it_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small, big = Decimal128("12.50"), Decimal128("5E+3000")
    seen = Counting(monkeypatch)
    for _ in range(3):
        assert money128(small) and money128(big)
    assert (seen.bids, seen.conversions) == (2, 1)  # the big one converted whole, once
    assert money128(Decimal128("1E+2015")) and seen.conversions == 1  # its top byte is 0x3F
    for _ in range(3):
        assert money.money(small) == Decimal("12.50") and money.money(big) == Decimal("5E+3000")
    assert seen.conversions == 2  # the small one now, once; the big one remembered
    # an equal value in another object is another object: read again
    assert money128(Decimal128("12.50")) and seen.bids == 4


def test_what_dec128_makes_is_remembered_as_its_decimal(monkeypatch: pytest.MonkeyPatch) -> None:
    made = dec128(Decimal("7.25"))
    seen = Counting(monkeypatch)
    assert money.money(made) == Decimal("7.25") and seen.conversions == 0


def test_the_caches_are_bounded() -> None:
    for n in range(money._MAX_DECIMALS + 1):
        made = dec128(Decimal(n))
        assert money128(made)
        assert len(money._DECIMALS) <= money._MAX_DECIMALS
        assert len(money._USABLE) <= money._MAX_DECIMALS
    # cleared whole when full: the last one is there, alone
    assert list(money._DECIMALS.values()) == [(made, Decimal(n))]
    assert list(money._USABLE.values()) == [(made, True)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        (True, "true"),
        ({"a": Decimal128("1.5")}, '{"a": {"$numberDecimal": "1.5"}}'),
        ({"n": 5}, '{"n": 5}'),  # relaxed Extended JSON: a plain number
        ("x" * 100, "x" * 100),
        ("x" * 101, "x" * 99 + "…"),
        (None, None),
    ],
)
def test_an_offending_value_is_shown_as_its_document_spells_it(value: Any, text: str) -> None:
    assert shown(value) == text


def test_problems_keep_the_newest_by_seq() -> None:
    old = [{"seq": s, "field": "total", "value": "x", "reason": "not_a_number"} for s in (5, 9)]
    new = [{"seq": 2, "field": "total", "value": "y", "reason": "not_a_number"}]
    merged, dropped = with_problems(old, 3, new)
    assert [p["seq"] for p in merged] == [2, 5, 9] and dropped == 3
    many = [{**new[0], "seq": s} for s in range(10, 10 + MAX_PROBLEMS)]
    merged, dropped = with_problems(old, 3, many)
    assert [p["seq"] for p in merged] == list(range(10, 10 + MAX_PROBLEMS)) and dropped == 5
