"""The JSON shapes of DESIGN.md (render.py) and the times the CLI accepts (pure)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Timestamp

from eventstore.chain import EntityVerdict, LogVerdict
from eventstore.cli.common import CliError
from eventstore.cli.history import parse_time
from eventstore.diff import FieldChange
from eventstore.fold import Finding
from eventstore.history import (
    EntityState,
    Gap,
    HistoryEntry,
    HistoryPage,
    InvalidEntity,
    StreamVerdict,
    VersionDiff,
)
from eventstore.model import Head
from eventstore.render import (
    diff_json,
    entity_verdict_json,
    event_json,
    history_json,
    log_verdict_json,
    state_json,
    stream_verdict_json,
)
from tests.helpers import EVENT_KEYS, make_event

OID = ObjectId("65f000000000000000000007")
T = datetime(2026, 11, 26, 14, 3, 0, 123456, tzinfo=UTC)


def test_an_event_renders_every_field_as_plain_json() -> None:
    session = uuid.UUID("12345678-1234-5678-1234-567812345678")
    event = make_event(
        seq=7,
        entity_id=OID,
        version=2,
        occurred_at=T,
        recorded_at=T + timedelta(seconds=1),
        changes={
            "updatedFields": {"total": Decimal128("19.90"), "items.0.by": ObjectId(OID)},
            "removedFields": ["note"],
            "truncatedArrays": [],
        },
        before={"_id": OID, "total": Decimal128("9.90"), "n": Int64(3)},
        txn={"lsid": {"id": Binary(session.bytes, 4)}, "txnNumber": Int64(5)},
        actor="bob",
        cluster_time=Timestamp(1_800_000_000, 3),
    )
    out = event_json(event, [FieldChange(path="total", op="changed", before=1, after=2)])
    assert list(out) == EVENT_KEYS
    assert out["entity_id"] == {"$oid": str(OID)} and out["entity_key"] == str(OID)
    assert out["occurred_at"] == "2026-11-26T14:03:00.123Z"
    assert out["recorded_at"] == "2026-11-26T14:03:01.123Z"
    assert out["changes"]["updatedFields"] == {"total": "19.90", "items.0.by": str(OID)}
    assert out["before"] == {"_id": str(OID), "total": "9.90", "n": 3}
    # Binary as base64, a UUID's subtype 4 too (its text would be a string's form).
    assert out["txn"] == {"lsid": {"id": "EjRWeBI0VngSNFZ4EjRWeA=="}, "txnNumber": 5}
    assert out["diff"] == [{"path": "total", "op": "changed", "before": 1, "after": 2}]
    assert (out["hash"], out["prev_hash"], out["log_hash"]) == (
        event.hash,
        event.prev_hash,
        event.log_hash,
    )
    json.dumps(out)  # plain JSON all the way down
    assert "diff" not in event_json(event)


@pytest.mark.parametrize(
    ("entity_id", "rendered"),
    [(42, 42), ("42", "42"), ({"a": 1}, {"a": 1}), (Decimal128("1.5"), {"$numberDecimal": "1.5"})],
)
def test_entity_ids_keep_their_type_in_json(entity_id: object, rendered: object) -> None:
    assert event_json(make_event(seq=1, entity_id=entity_id, version=1))["entity_id"] == rendered


def test_state_history_diff_and_verdict_shapes() -> None:
    state = EntityState(
        stream="orders",
        entity_key="A",
        version=3,
        as_of=T,
        exists=True,
        uncertain=True,
        gap=Gap(from_=T - timedelta(hours=1), to=T + timedelta(hours=1)),
        document={"total": Decimal128("1.00"), "at": T},
        findings=[Finding(version=2, kind="pre_image_mismatch", detail="x")],
    )
    assert state_json(state) == {
        "stream": "orders",
        "entity_key": "A",
        "version": 3,
        "as_of": "2026-11-26T14:03:00.123Z",
        "exists": True,
        "uncertain": True,
        "gap": {"from": "2026-11-26T13:03:00.123Z", "to": "2026-11-26T15:03:00.123Z"},
        "document": {"total": "1.00", "at": "2026-11-26T14:03:00.123Z"},
        "findings": [{"version": 2, "kind": "pre_image_mismatch", "detail": "x"}],
        "erased": False,
    }
    gone = state_json(EntityState(stream="o", entity_key="A", version=4, as_of=T, exists=False))
    assert (gone["gap"], gone["document"], gone["uncertain"]) == (None, None, False)

    event = make_event(seq=1, entity_id="A", version=1)
    page = HistoryPage(
        stream="orders",
        entity_key="A",
        events=[HistoryEntry(event=event, diff=[])],
        next="1",
    )
    rendered = history_json(page)
    assert list(rendered) == ["stream", "entity_key", "events", "next"]
    assert rendered["next"] == "1" and rendered["events"][0]["diff"] == []

    change = FieldChange(path="items.1", op="added", before=None, after={"qty": Int64(2)})
    assert diff_json(VersionDiff(from_version=1, to_version=3, changes=[change])) == {
        "from_version": 1,
        "to_version": 3,
        "changes": [{"path": "items.1", "op": "added", "before": None, "after": {"qty": 2}}],
        "erased": False,
    }
    assert entity_verdict_json(
        EntityVerdict(valid=False, events_checked=2, first_invalid_version=2, reason="r")
    ) == {
        "valid": False,
        "events_checked": 2,
        "first_invalid_version": 2,
        "reason": "r",
        "checkpoint": None,
    }
    bad = InvalidEntity(entity_key="A", first_invalid_version=2, reason="r")
    assert stream_verdict_json(
        StreamVerdict(valid=False, entities_checked=3, events_checked=9, invalid=[bad])
    ) == {
        "valid": False,
        "entities_checked": 3,
        "events_checked": 9,
        "invalid": [{"entity_key": "A", "first_invalid_version": 2, "reason": "r"}],
        "checkpoint": None,
    }
    verdict = LogVerdict(
        valid=False,
        events_checked=5,
        first_invalid_seq=6,
        reason="truncated",
        head=Head(seq=5, log_hash="a" * 64),
        head_matches=False,
    )
    assert log_verdict_json(verdict) == {
        "valid": False,
        "events_checked": 5,
        "first_invalid_seq": 6,
        "reason": "truncated",
        "head": {"seq": 5, "log_hash": "a" * 64},
        "head_matches": False,
        "checkpoint": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T14:03:00Z", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("2026-11-26t14:03:00z", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("2026-11-26 14:03:00.5Z", datetime(2026, 11, 26, 14, 3, 0, 500000, tzinfo=UTC)),
        ("2026-11-26T14:03:00.123456789Z", datetime(2026, 11, 26, 14, 3, 0, 123456, tzinfo=UTC)),
        (
            "2026-11-26T15:03:00.123+01:00",
            datetime(2026, 11, 26, 15, 3, 0, 123000, tzinfo=timezone(timedelta(hours=1))),
        ),
    ],
)
def test_rfc3339_times_with_a_zone_are_accepted(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-26T14:03:00", "has no zone"),
        ("2026-11-26T14:03:00.123", "has no zone"),
        ("2026-11-26", "not an RFC 3339 time"),
        ("14:03", "not an RFC 3339 time"),
        ("2026-11-26T14:03Z", "not an RFC 3339 time"),
        ("2026-13-01T00:00:00Z", "not a valid time"),
        ("2026-11-26T14:03:00+25:00", "not a valid time"),
    ],
)
def test_other_times_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_time(text)
