"""Judging changes a source delivers: each kind of change that cannot be interpreted, and what is not."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Int64, Timestamp

from eventstore import chain
from eventstore.badinput import (
    BadChange,
    Rejection,
    problem,
    raw_sha256,
    stream_position,
)
from eventstore.capture import Capture
from eventstore.model import GENESIS_HASH, REJECTED, SOURCE_STREAM, STREAM_KEY, Head
from eventstore.settings import Settings, SettingsError, load

COLLECTIONS = frozenset({"orders"})
ALL_OPS = frozenset({"insert", "update", "replace", "delete"})
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def good(op: str = "update") -> dict[str, Any]:
    change: dict[str, Any] = {
        "_id": {"_data": "8201"},
        "operationType": op,
        "clusterTime": Timestamp(1_700_000_000, 1),
        "wallTime": WHEN,
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": 7},
    }
    if op in ("insert", "replace"):
        change["fullDocument"] = {"_id": 7, "status": "paid"}
    if op == "update":
        change["updateDescription"] = {
            "updatedFields": {"status": "paid"},
            "removedFields": ["note"],
            "truncatedArrays": [{"field": "items", "newSize": 1}],
        }
    return change


def judge(change: Any, operations: frozenset[str] = ALL_OPS) -> tuple[str, str] | None:
    return problem(change, collections=COLLECTIONS, operations=operations)


@pytest.mark.parametrize("op", ["insert", "update", "replace", "delete"])
def test_well_formed_data_changes_are_not_bad(op: str) -> None:
    assert judge(good(op)) is None


def _without(change: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(change)
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    del target[last]
    return out


def _with(change: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(change)
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    target[last] = value
    return out


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_without(good(), "_id"), "no resume token (_id._data)"),
        (_with(good(), "_id", "8201"), "no resume token (_id._data)"),
        (_with(good(), "_id", {"_data": 5}), "no resume token (_id._data)"),
        (_without(good(), "operationType"), "no operationType"),
        (_without(good(), "documentKey"), "no documentKey"),
        (_with(good(), "documentKey", [7]), "documentKey is an array, not a document"),
        (_with(good(), "documentKey", {"id": 7}), "documentKey without _id"),
        (_with(good(), "documentKey", {"_id": [1, 2]}), "documentKey._id is an array"),
        (
            _with(good(), "documentKey", {"_id": None}),
            "documentKey._id is null, the key of the stream's own record ($stream)",
        ),
        (_without(good(), "updateDescription"), "update without updateDescription"),
        (
            _with(good(), "updateDescription", "x"),
            "updateDescription is a string, not a document",
        ),
        (
            _with(good(), "updateDescription.updatedFields", [1]),
            "updateDescription.updatedFields is an array, not a document",
        ),
        (
            _with(good(), "updateDescription.removedFields", "note"),
            "updateDescription.removedFields is not an array of strings",
        ),
        (
            _with(good(), "updateDescription.truncatedArrays", [{"field": "items"}]),
            "updateDescription.truncatedArrays is not an array of {field, newSize}",
        ),
        (
            _with(good(), "updateDescription.disambiguatedPaths", 3),
            "updateDescription.disambiguatedPaths is an integer, not a document",
        ),
        (
            # a component that is no field name and no array index (the fold would crash)
            _with(good(), "updateDescription.disambiguatedPaths", {"a.1.0": ["a", 1.5, 0]}),
            "updateDescription.disambiguatedPaths 'a.1.0' is not the components of its path"
            " (field names as strings, array indexes as integers)",
        ),
        (
            # a string, not the list of components (it would be taken as one)
            _with(good(), "updateDescription.disambiguatedPaths", {"m.0": "m"}),
            "updateDescription.disambiguatedPaths 'm.0' is not the components of its path"
            " (field names as strings, array indexes as integers)",
        ),
        (
            # components that do not spell the path
            _with(good(), "updateDescription.disambiguatedPaths", {"m.0": ["m", "1"]}),
            "updateDescription.disambiguatedPaths 'm.0' is not the components of its path"
            " (field names as strings, array indexes as integers)",
        ),
        (_with(good(), "clusterTime", "yesterday"), "clusterTime is a string, not a timestamp"),
        (_with(good(), "wallTime", 12), "wallTime is an integer, not a date"),
        (_with(good(), "txnNumber", "one"), "txnNumber is a string, not an integer"),
        (_with(good(), "txnNumber", True), "txnNumber is a boolean, not an integer"),
        (_with(good(), "lsid", 5), "lsid is an integer, not a document"),
        (
            _with(good(), "fullDocumentBeforeChange", [1]),
            "fullDocumentBeforeChange is an array, not a document",
        ),
        (_without(good("insert"), "fullDocument"), "insert without fullDocument"),
        (_with(good("replace"), "fullDocument", "doc"), "fullDocument is a string, not a document"),
    ],
)
def test_each_kind_of_bad_change_has_its_reason_and_its_collection_as_stream(
    change: dict[str, Any], reason: str
) -> None:
    assert judge(change) == ("orders", reason)


def test_a_change_without_its_collection_belongs_to_the_source_stream() -> None:
    assert judge("not a change") == (SOURCE_STREAM, "not a document")
    assert judge(_without(good(), "ns")) == (SOURCE_STREAM, "update without ns.coll")
    assert judge({"operationType": "insert"}) == (SOURCE_STREAM, "no resume token (_id._data)")


def test_what_the_service_does_not_record_is_not_judged() -> None:
    other = _with(_without(good(), "documentKey"), "ns", {"db": "shop", "coll": "carts"})
    assert judge(other) is None  # another collection's change is filtered, whatever its shape
    assert judge(_without(good(), "updateDescription"), frozenset({"insert"})) is None
    # Change types the service does not know are logged and skipped, never bad input.
    future = {"_id": {"_data": "8202"}, "operationType": "futureThing", "ns": {"db": "shop"}}
    assert judge(future) is None
    ddl = {"_id": {"_data": "8203"}, "operationType": "createIndexes", "ns": good()["ns"]}
    assert judge(ddl) is None
    assert judge(_with(good(), "txnNumber", Int64(3))) is None


def test_a_drop_of_a_captured_collection_needs_its_cluster_time() -> None:
    drop = {"_id": {"_data": "8204"}, "operationType": "drop", "ns": good()["ns"]}
    assert judge(drop) == ("orders", "drop without a clusterTime timestamp")
    assert judge({**drop, "clusterTime": Timestamp(1, 1)}) is None


def test_a_rename_of_or_into_a_captured_collection_needs_its_cluster_time() -> None:
    away = {
        "_id": {"_data": "8205"},
        "operationType": "rename",
        "ns": good()["ns"],
        "to": {"db": "shop", "coll": "archive"},
    }
    assert judge(away) == ("orders", "rename without a clusterTime timestamp")
    assert judge({**away, "clusterTime": Timestamp(1, 1)}) is None
    # Into a captured collection: that stream's, judged as one of its changes.
    into = {**away, "ns": {"db": "shop", "coll": "tmp"}, "to": good()["ns"]}
    assert judge(into) == ("orders", "rename without a clusterTime timestamp")
    assert judge({**into, "clusterTime": Timestamp(1, 1)}) is None
    # Between two collections not captured: filtered, whatever its shape.
    assert judge({**into, "to": {"db": "shop", "coll": "other"}}) is None
    assert judge({**into, "to": "orders"}) is None


def test_positions_in_a_change_stream_name_the_last_good_change() -> None:
    assert stream_position({"_data": "82AB"}, Timestamp(5, 1)) == "after resume token 82AB"
    assert stream_position(None, Timestamp(5, 1)) == "after cluster time 5.1"
    assert stream_position(None, None) == "at the start of the stream"


def test_the_hash_of_a_decoded_change_is_that_of_its_bson_bytes() -> None:
    change = good()
    assert raw_sha256(change) == hashlib.sha256(bson.encode(change)).hexdigest()
    assert raw_sha256(change) != raw_sha256(_with(change, "documentKey", {"_id": 8}))


def test_the_stop_error_names_source_position_and_reason() -> None:
    rejection = Rejection(
        source="ndjson", position="line 51", reason="no resume token (_id._data)", sha256="ab"
    )
    error = rejection.error()
    assert isinstance(error, BadChange)
    assert str(error) == "ndjson: line 51: no resume token (_id._data)"
    assert (error.source, error.position, error.reason) == (
        "ndjson",
        "line 51",
        "no resume token (_id._data)",
    )
    assert rejection.event_id == "rejected:ab:line 51"
    assert rejection.document == {
        "source": "ndjson",
        "position": "line 51",
        "reason": "no resume token (_id._data)",
        "sha256": "ab",
    }


def test_a_rejected_event_is_a_stream_event_in_the_hash_chains() -> None:
    capture = Capture(Settings(), Head(seq=4, log_hash="f" * 64))
    capture.add_heads("orders", [None], {})
    rejection = Rejection(
        source="mongo",
        position="after resume token 8201",
        reason="update without updateDescription",
        sha256="c" * 64,
        stream="orders",
        cluster_time=Timestamp(1_700_000_000, 9),
        wall_time=WHEN,
    )
    event = capture.rejected(rejection, now=datetime(2026, 2, 1, tzinfo=UTC))
    assert (event.seq, event.type, event.stream, event.entity_key) == (
        5,
        REJECTED,
        "orders",
        STREAM_KEY,
    )
    assert event.is_stream_event and event.version == 1
    assert event.id == "rejected:" + "c" * 64 + ":after resume token 8201"
    assert event.document == rejection.document
    assert event.occurred_at == WHEN and event.cluster_time == Timestamp(1_700_000_000, 9)
    assert event.prev_hash == GENESIS_HASH
    assert event.hash == chain.entity_hash(event)
    assert event.log_hash == chain.next_log_hash("f" * 64, event.hash)
    resealed = chain.seal(event, prev_hash=GENESIS_HASH, prev_log_hash="f" * 64)
    assert (resealed.hash, resealed.log_hash) == (event.hash, event.log_hash)


def test_a_rejected_event_without_wall_time_occurred_at_its_cluster_time_else_now() -> None:
    capture = Capture(Settings(), Head())
    capture.add_heads("orders", [None], {})
    now = datetime(2026, 2, 1, tzinfo=UTC)
    timed = Rejection(
        source="mongo",
        position="after resume token 8202",
        reason="not valid",
        sha256="d" * 64,
        stream="orders",
        cluster_time=Timestamp(1_700_000_000, 9),
    )
    event = capture.rejected(timed, now=now)
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert event.recorded_at == now
    untimed = Rejection(
        source="ndjson", position="line 3", reason="not valid JSON", sha256="e" * 64
    )
    later = capture.rejected(untimed, now=now)
    assert (later.occurred_at, later.cluster_time) == (now, None)


def test_bad_input_is_a_validated_setting() -> None:
    assert Settings().bad_input == "stop"
    assert load({"EVENTSTORE_BAD_INPUT": "record"}).bad_input == "record"
    assert load({}, {"bad_input": "Record"}).bad_input == "record"
    with pytest.raises(
        SettingsError, match=r"^EVENTSTORE_BAD_INPUT takes one of stop, record, got 'skip'$"
    ):
        load({"EVENTSTORE_BAD_INPUT": "skip"})
    with pytest.raises(SettingsError, match="BAD_INPUT"):
        Settings(bad_input="ignore")


@pytest.mark.parametrize("op", ["insert", "replace"])
def test_a_full_document_of_another_id_than_its_key_is_bad(op: str) -> None:
    reason = f"{op} whose fullDocument._id is not its documentKey._id"
    assert judge(_with(good(op), "fullDocument._id", 8)) == ("orders", reason)
    assert judge(_with(good(op), "fullDocument._id", "7")) == ("orders", reason)
    assert judge(_without(good(op), "fullDocument._id")) == ("orders", reason)
    # One value however it is written (MongoDB holds 7 and 7.0 as one `_id`).
    assert judge(_with(good(op), "fullDocument._id", 7.0)) is None


def test_an_empty_resume_token_is_no_resume_token() -> None:
    # Every change would share it: no position to resume after, nor an id to dedup by.
    assert judge(_with(good(), "_id", {"_data": ""})) == ("orders", "no resume token (_id._data)")
