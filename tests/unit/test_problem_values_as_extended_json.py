"""A problem's `value` shows a value the same way at the top of its field as inside a
sub-document: relaxed Extended JSON for what is neither text nor a number (a date, an
ObjectId, binary, a UUID), never Python's own text (`2026-01-01 00:00:00+00:00`, `b'..'`);
text and numbers as they read; at most 100 characters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, ObjectId, Regex, Timestamp

from projections.api import Change
from projections.money import shown
from projections.orders import order_projections
from tests.unit.test_order_projections import T0, ev, run

OID = ObjectId("65a1b2c3d4e5f60718293a4b")
DAY = datetime(2026, 1, 1, tzinfo=UTC)
UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (DAY, '{"$date": "2026-01-01T00:00:00Z"}'),
        (datetime(2026, 1, 1, 12, 30, 5, 123000), '{"$date": "2026-01-01T12:30:05.123Z"}'),
        (OID, '{"$oid": "65a1b2c3d4e5f60718293a4b"}'),
        (b"\x01\x02", '{"$binary": {"base64": "AQI=", "subType": "00"}}'),
        (Binary(b"\x01\x02", 5), '{"$binary": {"base64": "AQI=", "subType": "05"}}'),
        (UUID, '{"$binary": {"base64": "EjRWeBI0VngSNFZ4EjRWeA==", "subType": "04"}}'),
        (
            Binary.from_uuid(UUID),
            '{"$binary": {"base64": "EjRWeBI0VngSNFZ4EjRWeA==", "subType": "04"}}',
        ),
        (Timestamp(5, 1), '{"$timestamp": {"t": 5, "i": 1}}'),
        (Regex("a+", "i"), '{"$regularExpression": {"pattern": "a+", "options": "i"}}'),
        (MaxKey(), '{"$maxKey": 1}'),
        (Code("x"), '{"$code": "x"}'),  # a str subclass, but no text
        # text and numbers as they are shown: unquoted, by their value
        ("abc", "abc"),
        (42, "42"),
        (Int64(7), "7"),
        (2.5, "2.5"),
        (Decimal128("1.50"), "1.50"),
        (Decimal128("NaN"), "NaN"),
        (Decimal("3"), "3"),
    ],
)
def test_a_value_shows_as_relaxed_extended_json_unless_text_or_a_number(
    value: Any, text: str
) -> None:
    assert shown(value) == text


@pytest.mark.parametrize(
    "value", [DAY, OID, b"\x01\x02", Binary(b"\x01\x02", 5), UUID, Timestamp(5, 1), MaxKey()]
)
def test_a_value_at_the_top_shows_as_it_does_inside_a_sub_document(value: Any) -> None:
    top = shown(value)
    nested = shown({"v": value})
    assert top is not None and nested == '{"v": ' + top + "}"


def test_a_long_value_is_cut_at_100_characters() -> None:
    text = shown(b"\x00" * 100)
    assert text is not None and len(text) == 100 and text.endswith("…")
    assert text.startswith('{"$binary": {"base64": "AAAA')


def test_an_order_total_that_is_a_date_is_recorded_as_extended_json() -> None:
    """order_summary keeps the problems of the current total: a date, then one in a document."""
    odd = {"_id": "o1", "status": "paid", "total": DAY, "customer": {"id": "c1"}, "currency": "EUR"}
    nested = {**odd, "total": {"at": DAY}}
    first = Change(event=ev(1, 1, "created", T0), before=None, after=odd)
    second = Change(event=ev(2, 2, "updated", T0), before=odd, after=nested)
    summary = {p.name: p for p in order_projections()}["order_summary"]
    date = '{"$date": "2026-01-01T00:00:00Z"}'
    assert run(summary, [first])["str:o1"]["problems"] == [
        {"seq": 1, "field": "total", "value": date, "reason": "wrong_type"}
    ]
    assert run(summary, [first, second])["str:o1"]["problems"] == [
        {"seq": 2, "field": "total", "value": '{"at": ' + date + "}", "reason": "wrong_type"}
    ]
