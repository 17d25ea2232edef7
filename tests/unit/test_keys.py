"""Entity keys: bare and typed forms (DESIGN.md "Entity keys")."""

from __future__ import annotations

import math
import uuid

import pytest
from bson import Binary, Decimal128, Int64, ObjectId

from eventstore.keys import (
    InvalidKey,
    candidates,
    entity_key,
    parse_typed,
    relaxed_json,
    shown_key,
    typed_key,
)

OID = ObjectId("64b7f0c2a1b2c3d4e5f60718")


@pytest.mark.parametrize(
    ("entity_id", "key", "typed"),
    [
        (OID, "64b7f0c2a1b2c3d4e5f60718", "oid:64b7f0c2a1b2c3d4e5f60718"),
        ("ORD-1", "ORD-1", "str:ORD-1"),
        ("a/b c", "a/b c", "str:a/b c"),
        (42, "42", "int:42"),
        (Int64(2**40), str(2**40), f"int:{2**40}"),
        (-7, "-7", "int:-7"),
        # by value, as MongoDB compares numbers: 1.0 is 1; Decimal128 1.5 is exactly the
        # double 1.5's value, which MongoDB holds equal to it
        (1.0, "1", "int:1"),
        (Decimal128("-3.000"), "-3", "int:-3"),
        (Decimal128("1.5"), 'json:{"$numberDouble":"1.5"}', None),
        (Decimal128("0.1"), 'json:{"$numberDecimal":"0.1"}', 'json:{"$numberDecimal":"0.1"}'),
        ({"shop": 1, "n": "x"}, 'json:{"shop":{"$numberInt":"1"},"n":"x"}', None),
        (True, "json:true", "json:true"),
    ],
)
def test_keys_of_each_id_type(entity_id: object, key: str, typed: str | None) -> None:
    assert entity_key(entity_id) == key
    assert typed_key(entity_id) == (typed or key)


# Groups of `_id` values MongoDB holds equal (a unique index admits one of each group):
# each group has one typed key, and no two groups share one.
EQUAL_IDS = [
    ([1, Int64(1), 1.0, Decimal128("1"), Decimal128("1.000"), Decimal128("1E+0")], "int:1"),
    ([0, -0.0, 0.0, Decimal128("0"), Decimal128("-0E+3")], "int:0"),
    ([2**62, Int64(2**62), float(2**62), Decimal128(str(2**62))], f"int:{2**62}"),
    ([1.5, Decimal128("1.5"), Decimal128("1.50")], 'json:{"$numberDouble":"1.5"}'),
    ([0.1], 'json:{"$numberDouble":"0.1"}'),  # the double nearest 0.1 is not 0.1
    ([Decimal128("0.1"), Decimal128("0.10")], 'json:{"$numberDecimal":"0.1"}'),
    ([math.nan, Decimal128("NaN"), -math.nan], 'json:{"$numberDouble":"NaN"}'),
    ([math.inf, Decimal128("Infinity")], 'json:{"$numberDouble":"Infinity"}'),
    ([-math.inf, Decimal128("-Infinity")], 'json:{"$numberDouble":"-Infinity"}'),
    # int64's ends: integers still, in every form that holds them
    ([Int64(-(2**63)), float(-(2**63)), Decimal128(str(-(2**63)))], f"int:{-(2**63)}"),
    ([Int64(2**63 - 1), Decimal128(str(2**63 - 1))], f"int:{2**63 - 1}"),
    # 34 significant digits, none rounded away
    (
        [Decimal128("1.234567890123456789012345678901234")],
        'json:{"$numberDecimal":"1.234567890123456789012345678901234"}',
    ),
    (
        [2.0**63, Decimal128("9223372036854775808")],
        'json:{"$numberDouble":"9.223372036854776e+18"}',
    ),
    ([2**53 + 1, Int64(2**53 + 1)], f"int:{2**53 + 1}"),  # no double holds it
    ([float(2**53)], f"int:{2**53}"),
    (
        [{"shop": 1, "n": [2, "x"]}, {"shop": 1.0, "n": [Decimal128("2"), "x"]}],
        'json:{"shop":{"$numberInt":"1"},"n":[{"$numberInt":"2"},"x"]}',
    ),
    ([{"n": [2, "x"], "shop": 1}], 'json:{"n":[{"$numberInt":"2"},"x"],"shop":{"$numberInt":"1"}}'),
    ([True], "json:true"),  # a boolean is no number
    (["1"], "str:1"),
]


@pytest.mark.parametrize(("ids", "typed"), EQUAL_IDS)
def test_ids_mongodb_holds_equal_have_one_typed_key(ids: list[object], typed: str) -> None:
    assert {typed_key(i) for i in ids} == {typed}
    assert len({t for _, t in EQUAL_IDS}) == len(EQUAL_IDS)
    # the value the key names matches every id of the group in a MongoDB query
    back = parse_typed(typed)
    assert typed_key(back) == typed


def test_typed_keys_round_trip_to_the_same_bson_value() -> None:
    uid = Binary.from_uuid(uuid.UUID("12345678-1234-5678-1234-567812345678"))
    for value in [OID, "x", 42, Decimal128("9.99"), {"a": 1, "b": [1, "2"]}, uid]:
        back = parse_typed(typed_key(value))
        assert back == value
        assert type(back) is type(value) or isinstance(value, int)


def test_bare_key_candidates_cover_every_type_it_may_name() -> None:
    assert candidates("42") == ["42", 42]
    assert candidates("64b7f0c2a1b2c3d4e5f60718") == ["64b7f0c2a1b2c3d4e5f60718", OID]
    assert candidates("ORD-1") == ["ORD-1"]
    assert candidates("int:42") == [42]
    assert candidates("str:42") == ["42"]
    assert candidates("oid:64b7f0c2a1b2c3d4e5f60718") == [OID]


@pytest.mark.parametrize(
    "bad",
    [
        "oid:xyz",
        "int:4.2",
        "int:99999999999999999999",
        "json:{nope",
        'json:{"$date":1e30}',
        'json:{"$numberDecimal":"x"}',
        "json:" + "[" * 5000 + "]" * 5000,
    ],
)
def test_malformed_typed_keys_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidKey):
        parse_typed(bad)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("oid:xyz", "oid: needs 24 hexadecimal digits, got 'xyz'"),
        ("int:4.2", "int: needs a 64-bit integer, got '4.2'"),
        (f"int:{2**63}", f"int: needs a 64-bit integer, got '{2**63}'"),
        (f"int:{-(2**63) - 1}", f"int: needs a 64-bit integer, got '{-(2**63) - 1}'"),
        ("json:" + "[" * 5000 + "]" * 5000, "json: the value is nested too deeply"),
        ("json:{nope", "json: needs Extended JSON: "),
        ("uuid:1", "not a typed key: 'uuid:1'"),
    ],
)
def test_each_refusal_says_what_is_wrong(bad: str, reason: str) -> None:
    with pytest.raises(InvalidKey) as refused:
        parse_typed(bad)
    assert str(refused.value).startswith(reason)


def test_int64_s_ends_are_integers_as_keys() -> None:
    low, high = -(2**63), 2**63 - 1
    assert parse_typed(f"int:{low}") == low and parse_typed(f"int:{high}") == high
    assert candidates(str(low)) == [str(low), low]
    assert candidates(str(high)) == [str(high), high]
    assert candidates(str(high + 1)) == [str(high + 1)]  # a string only: no int64 holds it
    assert candidates(str(low - 1)) == [str(low - 1)]


def test_relaxed_json_keeps_the_type_visible() -> None:
    assert relaxed_json(OID) == {"$oid": "64b7f0c2a1b2c3d4e5f60718"}
    assert relaxed_json(42) == 42
    assert relaxed_json("abc") == "abc"


@pytest.mark.parametrize(
    "value",
    [
        OID,
        "ORD-1",
        "",
        "é/\u0000",
        0,
        -1,
        2**63 - 1,
        -(2**63),
        Int64(2**40),
        True,
        1.5,
        Decimal128("1.10"),
        Binary(b"\x01\x02", 0),
        {"a": 1, "b": [OID]},
    ],
)
def test_relaxed_json_fast_paths_equal_the_json_util_round_trip(value: object) -> None:
    import json

    from bson import json_util
    from bson.json_util import RELAXED_JSON_OPTIONS

    expected = json.loads(json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS))
    got = relaxed_json(value)
    assert got == expected and type(got) is type(expected)


def test_digits_too_long_for_an_int64_name_a_string_only_and_a_typed_one_is_refused() -> None:
    digits = "7" * 5000  # past 4,300 digits, int() itself refuses the text
    assert candidates(digits) == [digits]
    assert candidates("9" * 21) == ["9" * 21]
    assert candidates("-9223372036854775808") == ["-9223372036854775808", -(2**63)]
    with pytest.raises(InvalidKey) as refused:
        parse_typed("int:" + digits)
    assert str(refused.value) == (
        f"int: needs a 64-bit integer, got {'7' * 200!r}… (5000 characters)"
    )


def test_a_key_in_a_message_is_cut_after_200_characters_with_its_length() -> None:
    assert shown_key("a" * 200) == repr("a" * 200)
    assert shown_key("a" * 201) == f"{'a' * 200!r}… (201 characters)"
    assert shown_key("it's") == '"it\'s"'
