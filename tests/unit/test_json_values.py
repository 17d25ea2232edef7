"""BSON values as the API and the CLI show them: every value its own form, none another's."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
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

from eventstore.codec import to_jsonable
from eventstore.history import EntityState
from eventstore.render import state_json

OID = ObjectId("65f0c0ffee0000000000abcd")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # JSON has no NaN or infinity: an encoder would write null, another value.
        (math.nan, {"$numberDouble": "NaN"}),
        (math.inf, {"$numberDouble": "Infinity"}),
        (-math.inf, {"$numberDouble": "-Infinity"}),
        (-0.0, -0.0),
        (36.32, 36.32),
        (MinKey(), {"$minKey": 1}),
        (MaxKey(), {"$maxKey": 1}),
        (Regex("^ord-", re.IGNORECASE | re.MULTILINE), {"$regex": "^ord-", "$options": "im"}),
        (Regex("a.b", "xs"), {"$regex": "a.b", "$options": "sx"}),
        (DBRef("customers", OID), {"$ref": "customers", "$id": str(OID)}),
        (DBRef("customers", 7, "crm"), {"$ref": "customers", "$id": 7, "$db": "crm"}),
        (Code("return 1"), {"$code": "return 1"}),
        (
            Code("return x", {"x": math.nan}),
            {"$code": "return x", "$scope": {"x": {"$numberDouble": "NaN"}}},
        ),
        (Int64(2**40), 2**40),
        (Decimal128("NaN"), "NaN"),
        (Decimal128("36.32"), "36.32"),
        (OID, str(OID)),
        # Not the sub-document {t, i} (another value's form): its Extended JSON.
        (Timestamp(5, 1), {"$timestamp": {"t": 5, "i": 1}}),
        (datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
        (Binary(b"\x00\x01"), "AAE="),
        # Binary as base64 whatever its subtype: a UUID's text would be a string's form.
        (Binary.from_uuid(uuid.UUID(int=1)), "AAAAAAAAAAAAAAAAAAAAAQ=="),
        (uuid.UUID(int=1), "AAAAAAAAAAAAAAAAAAAAAQ=="),
        (Binary(b"\x00\x01", 5), "AAE="),
        ("MinKey()", "MinKey()"),
        (None, None),
        (True, True),
    ],
)
def test_each_value_has_its_own_form(value: Any, shown: Any) -> None:
    assert to_jsonable(value) == shown
    # The same inside a document and an array, and through the JSON encoder.
    doc = to_jsonable({"v": value, "a": [value]})
    assert doc == {"v": shown, "a": [shown]}
    assert msgspec.json.decode(msgspec.json.encode(doc)) == doc


def test_values_decoded_from_bson_keep_their_forms() -> None:
    raw = {
        "total": math.nan,
        "cap": math.inf,
        "low": MinKey(),
        "re": Regex("x", re.IGNORECASE),
        "ref": DBRef("c", 1),
    }
    assert to_jsonable(decode(encode(raw))) == {
        "total": {"$numberDouble": "NaN"},
        "cap": {"$numberDouble": "Infinity"},
        "low": {"$minKey": 1},
        "re": {"$regex": "x", "$options": "i"},
        "ref": {"$ref": "c", "$id": 1},
    }


def test_a_state_with_a_nan_total_does_not_show_null() -> None:
    state = EntityState(
        stream="orders",
        entity_key="1",
        version=1,
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        exists=True,
        document={"_id": 1, "total": math.nan, "note": None},
    )
    body = msgspec.json.decode(msgspec.json.encode(state_json(state)))
    assert body["document"] == {"_id": 1, "total": {"$numberDouble": "NaN"}, "note": None}
