"""Folding events into documents: every form of updateDescription MongoDB reports."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Decimal128

from eventstore.fold import (
    PATH_CONFLICT,
    PRE_IMAGE_MISMATCH,
    UNEXPECTED_VERSION,
    UNKNOWN_TYPE,
    UPDATE_WITHOUT_STATE,
    Finding,
    Fold,
    apply_event,
    apply_update,
    fold,
    is_component_list,
)
from eventstore.model import (
    CREATED,
    DELETED,
    ERASED,
    GAP,
    REPLACED,
    SNAPSHOT,
    STREAM_KEY,
    UPDATED,
    Event,
)

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def ev(
    version: int,
    type_: str,
    *,
    document: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
) -> Event:
    return Event(
        id=f"e{version}",
        seq=version,
        stream="orders",
        entity_id=7,
        entity_key="7",
        version=version,
        type=type_,
        occurred_at=T0,
        cluster_time=None,
        recorded_at=T0,
        document=document,
        changes=changes,
        before=before,
    )


def ch(
    updated: dict[str, Any] | None = None,
    removed: list[str] | None = None,
    truncated: list[tuple[str, int]] | None = None,
    disambiguated: dict[str, list[str | int]] | None = None,
) -> dict[str, Any]:
    """`changes` as the ingester stores them."""
    out: dict[str, Any] = {
        "updatedFields": updated or {},
        "removedFields": removed or [],
        "truncatedArrays": [{"field": f, "newSize": n} for f, n in truncated or []],
    }
    if disambiguated:
        out["disambiguatedPaths"] = disambiguated
    return out


def upd(version: int, **kw: Any) -> Event:
    return ev(version, UPDATED, changes=ch(**kw))


ORDER: dict[str, Any] = {
    "_id": 7,
    "status": "pending",
    "items": [
        {"sku": "A", "qty": 1},
        {"sku": "B", "qty": 2},
        {"sku": "C", "qty": 3},
    ],
    "shipping": {"name": "Ada", "city": "Paris", "zip": "75001"},
}


# --- array forms -------------------------------------------------------------


def test_element_path_sets_one_field_of_an_array_element() -> None:
    out = apply_update(ORDER, ch(updated={"items.2.qty": 5}))
    assert out["items"] == [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 5}]
    assert out["status"] == "pending"


def test_index_equal_to_length_appends() -> None:
    doc = {"scores": [10, 20, 30]}
    assert apply_update(doc, ch(updated={"scores.3": 40})) == {"scores": [10, 20, 30, 40]}


def test_index_beyond_length_pads_with_none() -> None:
    doc = {"scores": [10, 20, 30]}
    out = apply_update(doc, ch(updated={"scores.5": 60}))
    assert out == {"scores": [10, 20, 30, None, None, 60]}


def test_padding_past_mongodbs_limit_is_refused() -> None:
    conflicts: list[str] = []
    out = apply_update({"a": []}, ch(updated={"a.2000000": 1}), conflicts=conflicts)
    assert out == {"a": []}
    assert conflicts == ["updatedFields 'a.2000000': index 2000000 too far"]


def test_element_beyond_length_is_created_as_a_sub_document() -> None:
    doc = {"items": [{"sku": "A"}, {"sku": "B"}]}
    out = apply_update(doc, ch(updated={"items.3.qty": 1}))
    assert out == {"items": [{"sku": "A"}, {"sku": "B"}, None, {"qty": 1}]}


def test_pull_reported_as_the_whole_new_array() -> None:
    out = apply_update(
        ORDER, ch(updated={"items": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 3}]})
    )
    assert out == {**ORDER, "items": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 3}]}


def test_push_into_an_empty_array_reported_as_the_whole_array() -> None:
    doc = {"_id": 1, "tags": []}
    assert apply_update(doc, ch(updated={"tags": ["gift"]})) == {"_id": 1, "tags": ["gift"]}


def test_setting_a_shorter_array_replaces_it_whole() -> None:
    doc = {"scores": [1, 2, 3, 4]}
    assert apply_update(doc, ch(updated={"scores": [9]})) == {"scores": [9]}


def test_truncation_alone_cuts_the_array_to_its_new_size() -> None:
    doc = {"big": ["x" * 100, 1], "other": 1}
    out = apply_update(doc, ch(truncated=[("big", 1)]))
    assert out == {"big": ["x" * 100], "other": 1}


def test_truncation_with_element_paths_of_the_kept_elements() -> None:
    # a pipeline update keeping items 0 and 1, annotating item 1, dropping a flag of item 0
    doc = {
        "items": [
            {"sku": "A", "flag": True},
            {"sku": "B"},
            {"sku": "C"},
            {"sku": "D"},
        ]
    }
    changes = ch(
        updated={"items.1.note": "fragile"}, removed=["items.0.flag"], truncated=[("items", 2)]
    )
    out = apply_update(doc, changes)
    assert out == {"items": [{"sku": "A"}, {"sku": "B", "note": "fragile"}]}


def test_truncation_of_an_array_inside_an_array_element() -> None:
    doc = {"items": [{"sku": "A", "tags": ["a", "b", "c"]}, {"sku": "B", "tags": ["x"]}]}
    out = apply_update(doc, ch(updated={"items.0.tags.0": "z"}, truncated=[("items.0.tags", 1)]))
    assert out == {"items": [{"sku": "A", "tags": ["z"]}, {"sku": "B", "tags": ["x"]}]}


def test_truncation_to_a_size_not_smaller_changes_nothing() -> None:
    doc = {"a": [1, 2]}
    assert apply_update(doc, ch(truncated=[("a", 2)])) == {"a": [1, 2]}
    assert apply_update(doc, ch(truncated=[("a", 5)])) == {"a": [1, 2]}


# --- removals, pipeline $unset, $inc ----------------------------------------------


def test_nested_removals_remove_each_listed_field() -> None:
    doc = {
        "customer": {
            "name": "Ada",
            "email": "ada@example.org",
            "phone": {"home": "1", "work": "2"},
        },
        "shipping": {"name": "Ada", "zip": "75001"},
    }
    changes = ch(removed=["customer.email", "customer.phone.work", "shipping.zip"])
    assert apply_update(doc, changes) == {
        "customer": {"name": "Ada", "phone": {"home": "1"}},
        "shipping": {"name": "Ada"},
    }


def test_removing_a_missing_path_is_a_no_op() -> None:
    doc = {"a": {"b": 1}, "s": "text", "l": [1]}
    changes = ch(removed=["zzz", "a.c", "a.b.c", "s.x", "missing.deep.path", "l.4"])
    assert apply_update(doc, changes) == doc


def test_removing_an_array_element_leaves_null_in_its_place() -> None:
    # $unset of an array element keeps the positions, as MongoDB does
    assert apply_update({"l": [1, 2, 3]}, ch(removed=["l.1"])) == {"l": [1, None, 3]}


def test_pipeline_unset_reported_as_the_whole_parent_sub_document() -> None:
    out = apply_update(ORDER, ch(updated={"shipping": {"name": "Ada", "city": "Paris"}}))
    assert out["shipping"] == {"name": "Ada", "city": "Paris"}
    assert out == {**ORDER, "shipping": {"name": "Ada", "city": "Paris"}}


def test_inc_reported_as_the_resulting_value_is_idempotent() -> None:
    doc = {"qty": 1, "items": [{"qty": 1}], "total": Decimal128("9.50")}
    changes = ch(updated={"qty": 3, "items.0.qty": 4, "total": Decimal128("12.50")})
    once = apply_update(doc, changes)
    twice = apply_update(once, changes)
    assert once == {"qty": 3, "items": [{"qty": 4}], "total": Decimal128("12.50")}
    assert twice == once


def test_whole_sub_document_value_replaces_the_old_one() -> None:
    doc = {"customer": {"id": 1, "name": "Ada", "email": "a@x"}}
    out = apply_update(doc, ch(updated={"customer": {"id": 2}}))
    assert out == {"customer": {"id": 2}}


# --- path components ----------------------------------------------------------


def test_numeric_component_names_a_field_in_a_sub_document() -> None:
    doc = {"a": {"1": "x", "2": "y"}}
    assert apply_update(doc, ch(updated={"a.1": "z"})) == {"a": {"1": "z", "2": "y"}}
    assert apply_update(doc, ch(updated={"a.0": "new"})) == {"a": {"1": "x", "2": "y", "0": "new"}}


def test_numeric_component_indexes_an_array() -> None:
    doc = {"a": ["x", "y"]}
    assert apply_update(doc, ch(updated={"a.1": "z"})) == {"a": ["x", "z"]}


def test_numeric_component_under_a_missing_parent_creates_a_sub_document() -> None:
    assert apply_update({}, ch(updated={"a.1": "x"})) == {"a": {"1": "x"}}


def test_dotted_field_name_resolved_through_disambiguated_paths() -> None:
    doc = {"a": {"b.c": 0}}
    changes = ch(updated={"a.b.c": 1}, disambiguated={"a.b.c": ["a", "b.c"]})
    assert apply_update(doc, changes) == {"a": {"b.c": 1}}
    # the same path without disambiguation means three nested fields
    assert apply_update(doc, ch(updated={"a.b.c": 1})) == {"a": {"b.c": 0, "b": {"c": 1}}}


def test_top_level_dotted_field_names_are_one_component() -> None:
    doc = {"_id": 1}
    changes = ch(
        updated={"x.y.": {"sub": 1}, "new.Field.": 2},
        disambiguated={"x.y.": ["x.y."], "new.Field.": ["new.Field."]},
    )
    assert apply_update(doc, changes) == {"_id": 1, "x.y.": {"sub": 1}, "new.Field.": 2}


@pytest.mark.parametrize(
    "parts",
    [["arr", 1.5, 0], "arr", ["arr", True, 0], ["arr", -1, 0], ["arr", "1"], []],
    ids=["double", "string", "bool", "negative", "other-path", "empty"],
)
def test_a_path_whose_disambiguation_is_no_component_list_is_not_applied_and_said(
    parts: Any,
) -> None:
    # Stored before capture refused such changes: reading the entity never crashes.
    doc = {"arr": [[1], [2]], "n": 1}
    changes = ch(updated={"arr.1.0": 9, "n": 2}, removed=["arr.1.0"])
    changes["disambiguatedPaths"] = {"arr.1.0": parts}
    conflicts: list[str] = []
    assert apply_update(doc, changes, conflicts=conflicts) == {"arr": [[1], [2]], "n": 2}
    assert conflicts == [
        "disambiguatedPaths 'arr.1.0': not the components of the path; not applied"
    ]
    assert is_component_list("arr.1.0", ["arr", 1, 0])
    assert not is_component_list("arr.1.0", parts)


def test_disambiguated_numeric_string_is_a_field_inside_an_array_element() -> None:
    doc = {"arr": [[{"0": "old", "k": 1}]]}
    changes = ch(updated={"arr.0.0.0": "new"}, disambiguated={"arr.0.0.0": ["arr", 0, 0, "0"]})
    assert apply_update(doc, changes) == {"arr": [[{"0": "new", "k": 1}]]}


def test_disambiguated_path_mixing_dots_numeric_names_and_indices() -> None:
    doc = {"m.n": [[{"0": [{"1.2": {"a.b": None, "c": 1}}]}]]}
    path = "m.n.0.0.0.0.1.2.a.b"
    changes = ch(updated={path: True}, disambiguated={path: ["m.n", 0, 0, "0", 0, "1.2", "a.b"]})
    assert apply_update(doc, changes) == {"m.n": [[{"0": [{"1.2": {"a.b": True, "c": 1}}]}]]}


def test_disambiguated_truncated_array_path() -> None:
    doc = {"obj": {"sub.list": [[{"a": {"b.c": 1}}, "dropped"]]}}
    changes = ch(
        updated={"obj.sub.list.0.0.a.b.c": 2},
        truncated=[("obj.sub.list.0", 1)],
        disambiguated={
            "obj.sub.list.0": ["obj", "sub.list", 0],
            "obj.sub.list.0.0.a.b.c": ["obj", "sub.list", 0, 0, "a", "b.c"],
        },
    )
    assert apply_update(doc, changes) == {"obj": {"sub.list": [[{"a": {"b.c": 2}}]]}}


def test_disambiguated_removed_field() -> None:
    doc = {"a": {"b.c": 1, "b": {"c": 2}}}
    changes = ch(removed=["a.b.c"], disambiguated={"a.b.c": ["a", "b.c"]})
    assert apply_update(doc, changes) == {"a": {"b": {"c": 2}}}


def test_missing_intermediate_sub_documents_are_created() -> None:
    doc = {"_id": 1, "shipping": {"name": "Ada"}}
    changes = ch(updated={"shipping.address.geo.lat": 48.85, "billing.city": "Lyon"})
    assert apply_update(doc, changes) == {
        "_id": 1,
        "shipping": {"name": "Ada", "address": {"geo": {"lat": 48.85}}},
        "billing": {"city": "Lyon"},
    }


# --- what cannot be applied ------------------------------------------------------


def test_path_through_a_scalar_or_null_is_skipped_and_reported() -> None:
    doc = {"customer": "***", "n": None, "ok": 1}
    conflicts: list[str] = []
    changes = ch(updated={"customer.email": "x", "n.a": 1, "ok": 2})
    out = apply_update(doc, changes, conflicts=conflicts)
    assert out == {"customer": "***", "n": None, "ok": 2}
    assert conflicts == [
        "updatedFields 'customer.email': a scalar (str) at 'customer'",
        "updatedFields 'n.a': null at 'n'",
    ]


def test_field_name_into_an_array_is_skipped_and_reported() -> None:
    doc = {"a": [1, 2]}
    conflicts: list[str] = []
    out = apply_update(doc, ch(updated={"a.x": 1}), conflicts=conflicts)
    assert out == {"a": [1, 2]}
    assert conflicts == ["updatedFields 'a.x': no 'x' in an array"]
    # an exact field name "1" cannot name an array element either
    conflicts.clear()
    changes = ch(updated={"a.1": 9}, disambiguated={"a.1": ["a", "1"]})
    assert apply_update(doc, changes, conflicts=conflicts) == {"a": [1, 2]}
    assert conflicts == ["updatedFields 'a.1': no '1' in an array"]


def test_exact_array_index_into_a_sub_document_is_reported() -> None:
    conflicts: list[str] = []
    changes = ch(updated={"a.0": 1}, disambiguated={"a.0": ["a", 0]})
    assert apply_update({"a": {"0": 0}}, changes, conflicts=conflicts) == {"a": {"0": 0}}
    assert conflicts == ["updatedFields 'a.0': no 0 in a sub-document"]


def test_an_exact_field_name_never_indexes_an_array_when_removing() -> None:
    doc = {"a": [1, 2], "b": {"1": "kept"}}
    # "1" from disambiguatedPaths is a field name: an array has none, so $unset does nothing
    changes = ch(removed=["a.1"], disambiguated={"a.1": ["a", "1"]})
    assert apply_update(doc, changes) == {"a": [1, 2], "b": {"1": "kept"}}
    # the same path split on "." indexes the array (the element's place is kept, as null)
    assert apply_update(doc, ch(removed=["a.1"])) == {"a": [1, None], "b": {"1": "kept"}}
    # and an exact index never names a field of a sub-document
    changes = ch(removed=["b.1"], disambiguated={"b.1": ["b", 1]})
    assert apply_update(doc, changes) == doc
    assert apply_update(doc, ch(removed=["b.1"])) == {"a": [1, 2], "b": {}}


def test_an_exact_field_name_never_indexes_an_array_when_truncating() -> None:
    doc = {"a": [[1, 2, 3], [4]]}
    conflicts: list[str] = []
    changes = ch(truncated=[("a.0", 1)], disambiguated={"a.0": ["a", "0"]})
    assert apply_update(doc, changes, conflicts=conflicts) == doc
    assert conflicts == ["truncatedArrays 'a.0': no such array"]
    # the same path split on "." cuts the first element's array
    assert apply_update(doc, ch(truncated=[("a.0", 1)])) == {"a": [[1], [4]]}
    # an exact index does cut it
    changes = ch(truncated=[("a.0", 1)], disambiguated={"a.0": ["a", 0]})
    assert apply_update(doc, changes) == {"a": [[1], [4]]}


def test_a_negative_exact_index_names_nothing_in_an_array() -> None:
    """Never Python's from-the-end indexing: a path MongoDB cannot mean is not guessed at."""
    doc = {"a": [[1, 2], [3, 4]]}
    removal = ch(removed=["a.-1"], disambiguated={"a.-1": ["a", -1]})
    assert apply_update(doc, removal) == doc
    conflicts: list[str] = []
    cut = ch(truncated=[("a.-1", 1)], disambiguated={"a.-1": ["a", -1]})
    assert apply_update(doc, cut, conflicts=conflicts) == doc
    # (refused at capture since: a negative index is no component)
    assert conflicts == ["disambiguatedPaths 'a.-1': not the components of the path; not applied"]
    conflicts.clear()
    setting = ch(updated={"a.-1": 0}, disambiguated={"a.-1": ["a", -1]})
    assert apply_update(doc, setting, conflicts=conflicts) == doc
    assert conflicts == ["disambiguatedPaths 'a.-1': not the components of the path; not applied"]


def test_an_index_just_past_the_end_names_nothing_when_removing_or_truncating() -> None:
    doc = {"a": [[1, 2], [3]]}
    assert apply_update(doc, ch(removed=["a.2"])) == doc
    assert apply_update(doc, ch(removed=["a.2.0"])) == doc
    conflicts: list[str] = []
    assert apply_update(doc, ch(truncated=[("a.2", 0)]), conflicts=conflicts) == doc
    assert conflicts == ["truncatedArrays 'a.2': no such array"]


def test_an_exact_path_without_components_names_nothing() -> None:
    """A malformed disambiguatedPaths entry (no components) is not the whole document."""
    doc = {"a": [1, 2]}
    assert apply_update(doc, ch(removed=["a"], disambiguated={"a": []})) == doc
    conflicts: list[str] = []
    cut = ch(truncated=[("a", 1)], disambiguated={"a": []})
    assert apply_update(doc, cut, conflicts=conflicts) == doc
    assert conflicts == ["disambiguatedPaths 'a': not the components of the path; not applied"]


def test_truncation_of_something_that_is_not_an_array_is_reported() -> None:
    conflicts: list[str] = []
    changes = ch(truncated=[("missing", 1), ("s", 0)])
    assert apply_update({"s": "abc"}, changes, conflicts=conflicts) == {"s": "abc"}
    assert conflicts == [
        "truncatedArrays 'missing': no such array",
        "truncatedArrays 's': a scalar (str), not an array",
    ]


# --- order between the three lists ---------------------------------------------


def test_truncation_never_shortens_a_value_reported_in_the_same_event() -> None:
    # updatedFields are resulting values: they apply after the cut
    changes = ch(updated={"a": [1, 2, 3]}, truncated=[("a", 1)])
    assert apply_update({"a": [0, 0, 0, 0]}, changes) == {"a": [1, 2, 3]}


def test_removals_apply_after_updated_fields() -> None:
    changes = ch(updated={"a": {"x": 1, "y": 2}}, removed=["a.y"])
    assert apply_update({}, changes) == {"a": {"x": 1}}


# --- purity and copy-on-write ---------------------------------------------------


def test_input_document_and_changes_are_not_mutated() -> None:
    doc = copy.deepcopy(ORDER)
    changes = ch(
        updated={"items.0.qty": 9, "items.3": {"sku": "D"}, "shipping.zip": "1"},
        removed=["shipping.city"],
        truncated=[("items", 2)],
    )
    changes_before = copy.deepcopy(changes)
    apply_update(doc, changes)
    assert doc == ORDER
    assert changes == changes_before


def test_untouched_sub_objects_are_shared_and_changed_paths_copied() -> None:
    doc = copy.deepcopy(ORDER)
    out = apply_update(doc, ch(updated={"items.1.qty": 7}))
    assert out is not doc
    assert out["shipping"] is doc["shipping"]
    assert out["items"] is not doc["items"]
    assert out["items"][0] is doc["items"][0]
    assert out["items"][1] is not doc["items"][1]
    assert doc["items"][1] == {"sku": "B", "qty": 2}


def test_a_later_apply_never_changes_an_earlier_state() -> None:
    s1 = apply_update(ORDER, ch(updated={"items.0.qty": 10}))
    s2 = apply_update(s1, ch(updated={"items.0.qty": 11, "items.0.note": "x"}))
    s3 = apply_update(s2, ch(removed=["items.0.note"], truncated=[("items", 1)]))
    assert s1["items"] == [{"sku": "A", "qty": 10}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 3}]
    assert s2["items"][0] == {"sku": "A", "qty": 11, "note": "x"}
    assert s3["items"] == [{"sku": "A", "qty": 11}]


def test_a_state_never_aliases_the_event_values() -> None:
    changes = ch(updated={"tags": ["a"], "meta": {"k": [1]}})
    out = apply_update({}, changes)
    out["tags"].append("b")
    out["meta"]["k"].append(2)
    assert changes["updatedFields"] == {"tags": ["a"], "meta": {"k": [1]}}
    event = ev(1, CREATED, document={"items": [{"qty": 1}]})
    state = apply_event(None, event)
    assert state is not None
    state["items"][0]["qty"] = 99
    assert event.document == {"items": [{"qty": 1}]}


def test_empty_changes_return_an_equal_copy() -> None:
    out = apply_update(ORDER, {})
    assert out == ORDER
    assert out is not ORDER


# --- events -------------------------------------------------------------------------


def test_created_replaced_and_snapshot_set_a_copy_of_the_document() -> None:
    for type_ in (CREATED, REPLACED, SNAPSHOT):
        state = apply_event({"old": 1}, ev(1, type_, document={"new": [1]}))
        assert state == {"new": [1]}


def test_replace_standing_for_an_update_gives_its_document() -> None:
    events = [
        ev(1, CREATED, document={"_id": 7, "status": "pending", "note": "x"}),
        ev(2, REPLACED, document={"_id": 7, "status": "paid"}),
        upd(3, updated={"status": "shipped"}),
    ]
    assert fold(events).state == {"_id": 7, "status": "shipped"}


def test_deleted_leaves_no_document() -> None:
    assert apply_event({"a": 1}, ev(2, DELETED)) is None


def test_stream_events_leave_the_state_unchanged() -> None:
    state = {"a": 1}
    gap = Event(
        id="gap:orders:1.1",
        seq=9,
        stream="orders",
        entity_id=None,
        entity_key=STREAM_KEY,
        version=1,
        type=GAP,
        occurred_at=T0,
        cluster_time=None,
        recorded_at=T0,
    )
    assert apply_event(state, gap) is state
    folder = Fold(state, version=3)
    folder.apply(gap)
    assert (folder.state, folder.version, folder.findings) == (state, 3, [])


def test_an_update_never_uses_a_stored_full_document() -> None:
    event = ev(
        2, UPDATED, document={"status": "lookup-time"}, changes=ch(updated={"status": "paid"})
    )
    assert apply_event({"status": "pending", "n": 1}, event) == {"status": "paid", "n": 1}


def test_update_without_state_applies_onto_an_empty_document_with_a_finding() -> None:
    result = fold([upd(4, updated={"status": "paid", "items.0": "x"})])
    assert result.state == {"status": "paid", "items": {"0": "x"}}
    assert [f.kind for f in result.findings] == [UPDATE_WITHOUT_STATE]
    assert result.findings[0].version == 4
    assert apply_event(None, upd(4, updated={"a": 1})) == {"a": 1}


# --- folding histories ------------------------------------------------------------


def order_history() -> list[Event]:
    return [
        ev(1, CREATED, document=copy.deepcopy(ORDER)),
        upd(2, updated={"status": "paid", "items.2.qty": 4}),
        upd(3, updated={"items.3": {"sku": "D", "qty": 1}}),
        upd(4, updated={"items": [{"sku": "A", "qty": 1}, {"sku": "D", "qty": 1}]}),
        upd(5, removed=["shipping.zip"], updated={"shipping.geo.lat": 48.85}),
        upd(6, updated={"status": "shipped"}, truncated=[("items", 1)]),
    ]


def test_folding_a_history_gives_the_exact_document() -> None:
    result = fold(order_history())
    assert result.state == {
        "_id": 7,
        "status": "shipped",
        "items": [{"sku": "A", "qty": 1}],
        "shipping": {"name": "Ada", "city": "Paris", "geo": {"lat": 48.85}},
    }
    assert result.version == 6
    assert result.findings == []


def test_folding_to_each_version_gives_that_versions_document() -> None:
    history = order_history()
    assert fold(history[:2]).state == {
        **ORDER,
        "status": "paid",
        "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 4}],
    }
    assert fold(history[:3]).state == {
        **ORDER,
        "status": "paid",
        "items": [
            {"sku": "A", "qty": 1},
            {"sku": "B", "qty": 2},
            {"sku": "C", "qty": 4},
            {"sku": "D", "qty": 1},
        ],
    }


def test_fold_continues_from_a_snapshot_state_and_version() -> None:
    history = order_history()
    middle = fold(history[:3])
    rest = fold(history[3:], middle.state, version=middle.version)
    assert rest == fold(history)


def test_incremental_fold_matches_folding_the_list() -> None:
    folder = Fold()
    states = [folder.apply(e) for e in order_history()]
    assert states[-1] == fold(order_history()).state
    assert folder.result() == fold(order_history())
    # every intermediate state is still its own version's document
    assert states[0] == ORDER


def test_delete_then_recreate() -> None:
    events = [
        ev(1, CREATED, document={"_id": 7, "status": "pending"}),
        upd(2, updated={"status": "cancelled"}),
        ev(3, DELETED),
        ev(4, CREATED, document={"_id": 7, "status": "new"}),
        upd(5, updated={"lines": []}),
    ]
    assert fold(events[:3]).state is None
    result = fold(events)
    assert result.state == {"_id": 7, "status": "new", "lines": []}
    assert result.findings == []


# --- findings -------------------------------------------------------------------


def test_pre_image_mismatch_is_a_finding_and_the_fold_goes_on() -> None:
    events = [
        ev(1, CREATED, document={"_id": 7, "status": "pending", "qty": 1}),
        ev(
            2,
            UPDATED,
            changes=ch(updated={"status": "paid"}),
            before={"_id": 7, "status": "on-hold", "qty": 1, "extra": True},
        ),
    ]
    result = fold(events)
    assert result.state == {"_id": 7, "status": "paid", "qty": 1}
    assert result.findings == [
        Finding(
            version=2,
            kind=PRE_IMAGE_MISMATCH,
            detail="the pre-image differs from the folded state at: status, extra",
        )
    ]


def test_matching_pre_images_give_no_finding() -> None:
    doc = {"_id": 7, "status": "pending", "items": [{"qty": 1}]}
    events = [
        ev(1, CREATED, document=doc),
        ev(2, UPDATED, changes=ch(updated={"items.0.qty": 2}), before=doc),
        ev(
            3,
            REPLACED,
            document={"_id": 7},
            before={"_id": 7, "status": "pending", "items": [{"qty": 2}]},
        ),
        ev(4, DELETED, before={"_id": 7}),
    ]
    result = fold(events)
    assert result.state is None
    assert result.findings == []


def test_a_type_difference_in_the_pre_image_is_a_mismatch() -> None:
    events = [
        ev(1, CREATED, document={"qty": 1}),
        ev(2, DELETED, before={"qty": 1.0}),
    ]
    assert [(f.version, f.kind) for f in fold(events).findings] == [(2, PRE_IMAGE_MISMATCH)]


def test_a_pre_image_for_an_entity_without_a_document_is_a_mismatch() -> None:
    result = fold([ev(3, REPLACED, document={"a": 2}, before={"a": 1})])
    assert result.state == {"a": 2}
    assert result.findings == [
        Finding(
            version=3,
            kind=PRE_IMAGE_MISMATCH,
            detail="the event carries a pre-image but the folded state has no document",
        )
    ]


def test_a_path_that_cannot_be_applied_is_a_finding() -> None:
    events = [
        ev(1, CREATED, document={"customer": "***"}),
        upd(2, updated={"customer.email": "***"}),
    ]
    result = fold(events)
    assert result.state == {"customer": "***"}
    assert result.findings == [
        Finding(
            version=2,
            kind=PATH_CONFLICT,
            detail="updatedFields 'customer.email': a scalar (str) at 'customer'",
        )
    ]


def test_a_version_out_of_sequence_is_a_finding() -> None:
    events = [ev(1, CREATED, document={"a": 1}), upd(3, updated={"a": 2})]
    result = fold(events)
    assert result.state == {"a": 2}
    assert result.version == 3
    assert result.findings == [
        Finding(version=3, kind=UNEXPECTED_VERSION, detail="expected version 2, got 3")
    ]


def test_an_unknown_event_type_leaves_the_state_with_a_finding() -> None:
    result = fold([ev(1, CREATED, document={"a": 1}), ev(2, "archived")])
    assert result.state == {"a": 1}
    assert result.version == 2
    assert [(f.version, f.kind) for f in result.findings] == [(2, UNKNOWN_TYPE)]


@pytest.mark.parametrize(("differing", "more"), [(10, ""), (11, " (+1 more)"), (13, " (+3 more)")])
def test_a_pre_image_mismatch_names_ten_paths_at_most(differing: int, more: str) -> None:
    names = [f"f{i:02d}" for i in range(differing)]
    state = {name: 0 for name in names}
    result = fold([ev(2, DELETED, before={name: 1 for name in names})], dict(state), version=1)
    assert result.findings == [
        Finding(
            version=2,
            kind=PRE_IMAGE_MISMATCH,
            detail="the pre-image differs from the folded state at: "
            + ", ".join(names[:10])
            + more,
        )
    ]


def test_fold_continues_from_the_version_its_state_is_at() -> None:
    state = {"_id": 7, "status": "pending"}
    step = ev(6, UPDATED, changes=ch(updated={"status": "paid"}))
    result = fold([step], dict(state), version=5)
    assert (result.state, result.version, result.findings) == (
        {"_id": 7, "status": "paid"},
        6,
        [],
    )
    skipped = fold([ev(7, UPDATED, changes=ch(updated={"status": "paid"}))], state, version=5)
    assert skipped.findings == [
        Finding(version=7, kind=UNEXPECTED_VERSION, detail="expected version 6, got 7")
    ]


def test_removing_an_element_of_a_nested_array_keeps_its_place() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "c": [[1, 2], [3]]}
    changes = ch(removed=["a.b.1", "c.0.0"])
    assert apply_update(doc, changes) == {"a": {"b": [1, None, 3]}, "c": [[None, 2], [3]]}
    assert doc == {"a": {"b": [1, 2, 3]}, "c": [[1, 2], [3]]}  # the input is not changed


# --- edges: padding, paths split on ".", conflict messages ----------------------------


# MongoDB's limit on the nulls one $set may pad an array with (pathsupport::kMaxPaddingAllowed).
MAX_PAD = 1_500_000


def test_padding_up_to_mongodbs_limit_is_applied_and_one_more_refused() -> None:
    """The limit counts the nulls added (index minus length), not the index."""
    doc = {"a": list(range(10))}
    conflicts: list[str] = []
    out = apply_update(doc, ch(updated={f"a.{10 + MAX_PAD}": "end"}), conflicts=conflicts)
    assert conflicts == []
    assert len(out["a"]) == 11 + MAX_PAD
    assert out["a"][:11] == [*range(10), None]
    assert out["a"][-2:] == [None, "end"]
    assert out["a"].count(None) == MAX_PAD
    refused = apply_update(doc, ch(updated={f"a.{11 + MAX_PAD}": "end"}), conflicts=conflicts)
    assert refused == doc
    assert conflicts == [f"updatedFields 'a.{11 + MAX_PAD}': index {11 + MAX_PAD} too far"]


def fresh() -> str:
    """A field name no other apply used: its paths miss the fold's cache of split paths."""
    return f"f{uuid.uuid4().hex}"


def test_a_path_split_for_the_first_time_is_applied_as_it_reads() -> None:
    # the cache of split paths is warm with every path other tests used: these are new
    arr, sub, deep = fresh(), fresh(), fresh()
    doc = {arr: ["x", "y"], sub: {"k": 0}}
    changes = ch(updated={f"{arr}.1": "z", f"{sub}.k": 1, f"{sub}.0": "zero", f"{deep}.a.2": 3})
    conflicts: list[str] = []
    assert apply_update(doc, changes, conflicts=conflicts) == {
        arr: ["x", "z"],
        sub: {"k": 1, "0": "zero"},
        deep: {"a": {"2": 3}},
    }
    assert conflicts == []


def test_only_ascii_digits_index_an_array() -> None:
    """MongoDB reads a component as an array index only when it is made of ASCII digits."""
    arr, sub = fresh(), fresh()
    doc = {arr: [1, 2], sub: {}}
    conflicts: list[str] = []
    # "\u0661" is ARABIC-INDIC DIGIT ONE: a digit to Python, a field name to MongoDB
    changes = ch(updated={f"{arr}.\u0661": 9, f"{arr}.x": 9, f"{sub}.\u0661": 9})
    assert apply_update(doc, changes, conflicts=conflicts) == {arr: [1, 2], sub: {"\u0661": 9}}
    assert conflicts == [
        f"updatedFields '{arr}.\u0661': no '\u0661' in an array",
        f"updatedFields '{arr}.x': no 'x' in an array",
    ]


def test_an_exact_path_of_one_component_goes_through_its_components() -> None:
    """A top-level path in disambiguatedPaths is applied from its components, not its text."""
    conflicts: list[str] = []
    changes = ch(updated={"a": 2, "b": 2}, disambiguated={"a": [], "b": [0]})  # malformed
    assert apply_update({"a": 1}, changes, conflicts=conflicts) == {"a": 1}
    # (refused at capture since: neither entry spells its path)
    assert conflicts == [
        "disambiguatedPaths 'a': not the components of the path; not applied",
        "disambiguatedPaths 'b': not the components of the path; not applied",
    ]


def test_a_component_naming_nothing_midway_is_reported() -> None:
    doc = {"a": {"0": {"b": 1}}, "l": [{"b": 1}]}
    conflicts: list[str] = []
    changes = ch(updated={"a.0.b": 2, "l.x.b": 2}, disambiguated={"a.0.b": ["a", 0, "b"]})
    assert apply_update(doc, changes, conflicts=conflicts) == doc
    assert conflicts == [
        "updatedFields 'a.0.b': no 0 in a sub-document",
        "updatedFields 'l.x.b': no 'x' in an array",
    ]


def test_an_element_just_past_the_end_is_created_midway() -> None:
    doc = {"items": [{"sku": "A"}]}
    out = apply_update(doc, ch(updated={"items.1.qty": 2}))
    assert out == {"items": [{"sku": "A"}, {"qty": 2}]}


def test_a_missing_element_or_padding_too_far_midway_is_reported() -> None:
    doc: dict[str, Any] = {"a": {}, "l": []}
    conflicts: list[str] = []
    changes = ch(
        updated={"a.b.0": 1, f"l.{MAX_PAD + 1}.b": 1},
        disambiguated={"a.b.0": ["a", "b", 0]},
    )
    assert apply_update(doc, changes, conflicts=conflicts) == doc
    assert conflicts == [
        "updatedFields 'a.b.0': array index into nothing",
        f"updatedFields 'l.{MAX_PAD + 1}.b': index {MAX_PAD + 1} too far",
    ]


def test_sibling_edits_under_one_copied_parent_all_land_and_the_input_is_untouched() -> None:
    doc = {"o": {"a": {"x": 1}, "b": [1, 2], "c": 0}, "keep": {"k": 1}}
    before = copy.deepcopy(doc)
    changes = ch(
        updated={"o.a.y": 2, "o.a.x": 3, "o.b.0": 9, "o.b.1": 8, "o.c": 1},
        removed=["o.a.x"],
        truncated=[("o.b", 1)],
    )
    out = apply_update(doc, changes)
    assert out == {"o": {"a": {"y": 2}, "b": [9, 8], "c": 1}, "keep": {"k": 1}}
    assert doc == before
    assert out["keep"] is doc["keep"]


# --- edges: findings -------------------------------------------------------------------


def test_an_update_without_state_says_what_it_did() -> None:
    result = fold([upd(4, updated={"a": 1})])
    assert result.findings == [
        Finding(
            version=4,
            kind=UPDATE_WITHOUT_STATE,
            detail="an update of an entity without a document, applied onto {}",
        )
    ]


def test_every_conflict_of_an_event_is_in_its_one_finding() -> None:
    events = [
        ev(1, CREATED, document={"s": "x", "l": [1]}),
        upd(2, updated={"s.a": 1, "l.b": 2}, truncated=[("s", 0)]),
    ]
    assert fold(events).findings == [
        Finding(
            version=2,
            kind=PATH_CONFLICT,
            detail="truncatedArrays 's': a scalar (str), not an array; "
            "updatedFields 's.a': a scalar (str) at 's'; "
            "updatedFields 'l.b': no 'b' in an array",
        )
    ]


def test_an_unknown_event_type_is_named_in_its_finding() -> None:
    findings: list[Finding] = []
    state = {"a": 1}
    assert apply_event(state, ev(2, "archived"), findings=findings) is state
    assert findings == [
        Finding(
            version=2,
            kind=UNKNOWN_TYPE,
            detail="unknown event type 'archived': state left unchanged",
        )
    ]
    # without a findings list the state is all there is
    assert apply_event(state, ev(3, "archived")) is state


def test_a_stream_event_applied_directly_is_no_finding() -> None:
    findings: list[Finding] = []
    state = {"a": 1}
    for type_ in (GAP, ERASED):
        assert apply_event(state, ev(2, type_), findings=findings) is state
    assert findings == []
