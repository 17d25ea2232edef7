"""Field-level diffs between two states, and BSON-aware equality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bson import Decimal128, Int64, ObjectId
from hypothesis import given
from hypothesis import strategies as st

from eventstore.diff import FieldChange, diff, same_value
from eventstore.fold import apply_update


def rows(changes: list[FieldChange]) -> list[tuple[str, str, Any, Any]]:
    return [(c.path, c.op, c.before, c.after) for c in changes]


def test_identical_states_have_no_changes() -> None:
    doc = {"_id": ObjectId("64b7f0c2a1b2c3d4e5f60718"), "a": {"b": [1, {"c": 2}]}}
    assert diff(doc, {**doc}) == []


def test_nested_changes_are_reported_at_the_leaf() -> None:
    before = {"customer": {"name": "Ada", "address": {"city": "Paris", "zip": "75001"}}}
    after = {"customer": {"name": "Ada", "address": {"city": "Lyon", "zip": "75001"}}}
    assert diff(before, after) == [
        FieldChange(
            path="customer.address.city",
            op="changed",
            before="Paris",
            after="Lyon",
            parts=("customer", "address", "city"),
        )
    ]


def test_array_elements_compare_by_index() -> None:
    before = {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}
    after = {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 3}]}
    assert rows(diff(before, after)) == [("items.1.qty", "changed", 2, 3)]
    assert diff(before, after)[0].parts == ("items", 1, "qty")


def test_a_longer_array_reports_added_elements() -> None:
    before = {"scores": [1, 2]}
    after = {"scores": [1, 5, 7, 8]}
    assert rows(diff(before, after)) == [
        ("scores.1", "changed", 2, 5),
        ("scores.2", "added", None, 7),
        ("scores.3", "added", None, 8),
    ]


def test_a_shorter_array_reports_removed_elements() -> None:
    before = {"items": [{"sku": "A"}, {"sku": "B"}, {"sku": "C"}]}
    after = {"items": [{"sku": "A"}]}
    assert rows(diff(before, after)) == [
        ("items.1", "removed", {"sku": "B"}, None),
        ("items.2", "removed", {"sku": "C"}, None),
    ]


def test_int_to_float_is_a_change() -> None:
    assert rows(diff({"qty": 1}, {"qty": 1.0})) == [("qty", "changed", 1, 1.0)]
    assert rows(diff({"flag": 1}, {"flag": True})) == [("flag", "changed", 1, True)]
    assert rows(diff({"n": None}, {"n": 0})) == [("n", "changed", None, 0)]


def test_a_sub_document_replaced_by_an_array_is_one_change() -> None:
    assert rows(diff({"a": {"x": 1}}, {"a": [1]})) == [("a", "changed", {"x": 1}, [1])]
    assert rows(diff({"a": [1]}, {"a": "1"})) == [("a", "changed", [1], "1")]


def test_decimal128_compares_by_representation() -> None:
    assert diff({"p": Decimal128("1.50")}, {"p": Decimal128("1.50")}) == []
    assert rows(diff({"p": Decimal128("1.0")}, {"p": Decimal128("1.00")})) == [
        ("p", "changed", Decimal128("1.0"), Decimal128("1.00"))
    ]


def test_none_to_a_document_adds_every_top_level_field() -> None:
    after = {"_id": 1, "customer": {"name": "Ada"}}
    assert rows(diff(None, after)) == [
        ("_id", "added", None, 1),
        ("customer", "added", None, {"name": "Ada"}),
    ]


def test_a_document_to_none_removes_every_top_level_field() -> None:
    before = {"_id": 1, "items": [1, 2]}
    assert rows(diff(before, None)) == [
        ("_id", "removed", 1, None),
        ("items", "removed", [1, 2], None),
    ]
    assert diff(None, None) == []


def test_order_is_before_keys_in_document_order_then_keys_only_in_after() -> None:
    before = {"z": 1, "a": {"y": 1, "b": 1}, "m": 1}
    after = {"new2": 1, "m": 2, "a": {"c": 1, "b": 2}, "new1": 1}
    assert [(c.path, c.op) for c in diff(before, after)] == [
        ("z", "removed"),
        ("a.y", "removed"),
        ("a.b", "changed"),
        ("a.c", "added"),
        ("m", "changed"),
        ("new2", "added"),
        ("new1", "added"),
    ]


def test_key_order_alone_is_not_a_change() -> None:
    assert diff({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"y": 2, "x": 1}, "a": 1}) == []


def test_dotted_and_numeric_field_names_keep_their_parts() -> None:
    before = {"a": {"b.c": 1, "0": "x"}, "l": ["x"]}
    after = {"a": {"b.c": 2, "0": "y"}, "l": ["y"]}
    assert [(c.path, c.parts) for c in diff(before, after)] == [
        ("a.b.c", ("a", "b.c")),
        ("a.0", ("a", "0")),
        ("l.0", ("l", 0)),
    ]


def test_same_value_follows_bson() -> None:
    assert same_value(float("nan"), float("nan"))
    assert not same_value(0.0, -0.0)
    assert not same_value(Int64(5), 5)  # int64 and int32: two BSON types
    assert same_value(Int64(2**40), 2**40)  # both stored as int64
    assert not same_value(True, 1)
    aware = datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert same_value(aware, aware.replace(tzinfo=None))  # naive is UTC
    assert same_value(aware, aware.astimezone(timezone(timedelta(hours=2))))
    assert same_value(aware, aware + timedelta(microseconds=456))  # BSON keeps milliseconds
    assert not same_value(aware, aware + timedelta(milliseconds=1))
    assert same_value({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]})
    assert not same_value({"a": 1}, {"a": 1, "b": None})
    assert not same_value([1, 2], [2, 1])


def test_diff_of_a_fold_names_the_changed_paths() -> None:
    before = {"status": "pending", "items": [{"qty": 1}, {"qty": 2}, {"qty": 3}], "note": "x"}
    changes = {
        "updatedFields": {"status": "paid", "items.0.qty": 4},
        "removedFields": ["note"],
        "truncatedArrays": [{"field": "items", "newSize": 2}],
    }
    after = apply_update(before, changes)
    assert rows(diff(before, after)) == [
        ("status", "changed", "pending", "paid"),
        ("items.0.qty", "changed", 1, 4),
        ("items.2", "removed", {"qty": 3}, None),
        ("note", "removed", "x", None),
    ]


# --- property: a diff, replayed as an update description, rebuilds `after` ----------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([1.0, 0.5]),
    st.sampled_from(["s", "t"]),
)


def documents(keys: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=12,
    )
    return st.dictionaries(keys, values, max_size=5)


# numeric-looking names, a dotted name, an empty name
ANY_KEYS = st.sampled_from(["a", "b", "0", "1", "x.y", ""])
# what a plain dotted path can name without disambiguatedPaths
PLAIN_KEYS = st.sampled_from(["a", "b", "0", "1"])


def as_update(changes: list[FieldChange], *, disambiguate: bool) -> dict[str, Any]:
    """The update description MongoDB would report for a diff."""
    updated: dict[str, Any] = {}
    removed: list[str] = []
    truncated: dict[str, int] = {}
    disambiguated: dict[str, list[str | int]] = {}
    for c in changes:
        if c.op == "removed" and isinstance(c.parts[-1], int):
            parent = ".".join(str(p) for p in c.parts[:-1])
            truncated.setdefault(parent, c.parts[-1])
            disambiguated[parent] = list(c.parts[:-1])
            continue
        if c.op == "removed":
            removed.append(c.path)
        else:
            updated[c.path] = c.after
        disambiguated[c.path] = list(c.parts)
    out: dict[str, Any] = {
        "updatedFields": updated,
        "removedFields": removed,
        "truncatedArrays": [{"field": f, "newSize": n} for f, n in truncated.items()],
    }
    if disambiguate:
        out["disambiguatedPaths"] = disambiguated
    return out


@given(documents(ANY_KEYS), documents(ANY_KEYS))
def test_replaying_a_diff_with_disambiguated_paths_rebuilds_the_after_state(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    rebuilt = apply_update(before, as_update(diff(before, after), disambiguate=True))
    assert same_value(rebuilt, after)
    assert diff(rebuilt, after) == []


@given(documents(PLAIN_KEYS), documents(PLAIN_KEYS))
def test_replaying_a_diff_with_plain_dotted_paths_rebuilds_the_after_state(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    rebuilt = apply_update(before, as_update(diff(before, after), disambiguate=False))
    assert same_value(rebuilt, after)
