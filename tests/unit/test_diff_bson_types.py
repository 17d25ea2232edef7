"""The field-level diff compares BSON type and value: a change of type is a change (int32 and
int64 included, at any depth), and a `changed` entry whose sides differ in type names both
types, since their JSON renderings may be identical."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import (
    Binary,
    Code,
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
    decode,
    encode,
)
from bson.datetime_ms import DatetimeMS
from bson.son import SON

from eventstore.diff import FieldChange, bson_type, diff, same_value
from eventstore.render import changes_json

OID = ObjectId("65a0000000000000000000bb")
DAY = datetime(2020, 1, 1, tzinfo=UTC)
UUID = uuid.UUID(int=5)


@pytest.mark.parametrize(
    ("value", "alias"),
    [
        (None, "null"),
        (True, "bool"),
        (1, "int"),
        (-(2**31), "int"),
        (2**31 - 1, "int"),
        (2**31, "long"),
        (Int64(1), "long"),
        (1.0, "double"),
        ("1.0", "string"),
        (Decimal128("1.0"), "decimal"),
        ({"t": 5}, "object"),
        (SON([("a", 1)]), "object"),
        (DBRef("c", 1), "object"),
        ([1], "array"),
        (OID, "objectId"),
        (DAY, "date"),
        (DatetimeMS(8_640_000_000_000_000), "date"),
        (Timestamp(5, 6), "timestamp"),
        (b"\x00", "binData"),
        (Binary(b"\x00", 5), "binData"),
        (Binary.from_uuid(UUID), "binData"),
        (Regex("a", "i"), "regex"),
        (re.compile("a"), "regex"),
        (MinKey(), "minKey"),
        (MaxKey(), "maxKey"),
        (Code("x"), "javascript"),
    ],
)
def test_each_value_has_mongodb_s_type_alias(value: Any, alias: str) -> None:
    assert bson_type(value) == alias


def test_the_type_alias_is_the_one_bson_stores() -> None:
    # PyMongo decodes an int64 as Int64 and an int32 as int: the alias survives the trip.
    doc = decode(encode({"i": 1, "l": Int64(1), "big": 2**40}))
    assert [bson_type(v) for v in doc.values()] == ["int", "long", "long"]


@pytest.mark.parametrize(
    ("before", "after", "before_type", "after_type", "shown"),
    [
        (1, Int64(1), "int", "long", 1),
        (Int64(5), 5, "long", "int", 5),
        (Decimal128("1.0"), "1.0", "decimal", "string", "1.0"),
        (OID, str(OID), "objectId", "string", str(OID)),
        (DAY, "2020-01-01T00:00:00.000Z", "date", "string", "2020-01-01T00:00:00.000Z"),
    ],
)
def test_a_change_of_type_alone_is_a_change_and_names_both_types(
    before: Any, after: Any, before_type: str, after_type: str, shown: Any
) -> None:
    changes = diff({"_id": 1, "v": before}, {"_id": 1, "v": after})
    assert changes == [
        FieldChange(
            path="v",
            op="changed",
            before=before,
            after=after,
            parts=("v",),
            before_type=before_type,
            after_type=after_type,
        )
    ]
    assert changes_json(changes) == [
        {
            "path": "v",
            "op": "changed",
            "before": shown,
            "after": shown,
            "before_type": before_type,
            "after_type": after_type,
        }
    ]


def test_a_timestamp_made_a_document_and_a_uuid_made_its_text_are_told_apart() -> None:
    before = {"ts": Timestamp(5, 6), "u": Binary.from_uuid(UUID)}
    after = {"ts": {"t": 5, "i": 6}, "u": str(UUID)}
    assert changes_json(diff(before, after)) == [
        {
            "path": "ts",
            "op": "changed",
            "before": {"$timestamp": {"t": 5, "i": 6}},
            "after": {"t": 5, "i": 6},
            "before_type": "timestamp",
            "after_type": "object",
        },
        {
            "path": "u",
            "op": "changed",
            "before": "AAAAAAAAAAAAAAAAAAAABQ==",
            "after": "00000000-0000-0000-0000-000000000005",
            "before_type": "binData",
            "after_type": "string",
        },
    ]


def test_a_change_of_width_deep_in_documents_and_arrays_is_found_there() -> None:
    before = {"a": {"b": [1, {"c": Int64(2)}]}}
    after = {"a": {"b": [Int64(1), {"c": 2}]}}
    assert [(c.path, c.before_type, c.after_type) for c in diff(before, after)] == [
        ("a.b.0", "int", "long"),
        ("a.b.1.c", "long", "int"),
    ]
    assert not same_value(before, after)


def test_a_change_within_one_type_has_no_type_names() -> None:
    changes = diff({"s": "a", "n": 1, "x": 1}, {"s": "b", "n": 2})
    assert changes_json(changes) == [
        {"path": "s", "op": "changed", "before": "a", "after": "b"},
        {"path": "n", "op": "changed", "before": 1, "after": 2},
        {"path": "x", "op": "removed", "before": 1, "after": None},
    ]
    assert all(c.before_type is None and c.after_type is None for c in changes)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (2**40, Int64(2**40)),  # both stored as int64
        (b"\x01", Binary(b"\x01", 0)),  # both binary subtype 0
        (UUID, Binary.from_uuid(UUID)),  # both binary subtype 4
        (DAY, DatetimeMS(DAY)),  # one date, two Python forms
        (DatetimeMS(8_640_000_000_000_000), DatetimeMS(8_640_000_000_000_000)),
        (datetime(2020, 1, 1, 0, 0, 0, 1500, tzinfo=UTC), datetime(2020, 1, 1, 0, 0, 0, 1000)),
    ],
)
def test_one_stored_value_in_two_python_forms_is_no_change(a: Any, b: Any) -> None:
    assert same_value(a, b)
    assert diff({"v": a}, {"v": b}) == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Binary(b"\x01", 0), Binary(b"\x01", 5)),
        (DatetimeMS(8_640_000_000_000_000), DatetimeMS(8_640_000_000_000_001)),
        (Decimal128("1.0"), Decimal128("1.00")),
        (0.0, -0.0),
    ],
)
def test_one_type_with_different_values_is_a_change_without_type_names(a: Any, b: Any) -> None:
    (change,) = diff({"v": a}, {"v": b})
    assert (change.op, change.before_type, change.after_type) == ("changed", None, None)
