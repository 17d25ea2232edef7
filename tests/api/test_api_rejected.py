"""Rejected changes (BAD_INPUT=record) through the API: audit query, streams, history, verify, live tail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.api.conftest import AppFactory
from tests.api.test_api_live import parse_sse
from tests.integration.ingest_helpers import settings
from tests.integration.test_ingester_bad_input import NO_UPDATE_DESCRIPTION, NOT_JSON, line, sha


@pytest.fixture
async def client(tmp_path: Path, make_app: AppFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    """An app over a log of 8 good changes (orders 1, 3, 5, 7) and 2 rejected ones (lines 3, 7)."""
    lines = [line(n) for n in range(1, 9)]
    lines.insert(2, NOT_JSON)
    lines.insert(6, NO_UPDATE_DESCRIPTION)
    path = tmp_path / "changes.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = MemoryStore()
    s = settings(source=f"ndjson:{path}", bad_input="record")
    source = NdjsonChangeSource(path, collections=s.collections)
    await Ingester(store=store, source=source, settings=s, clock=FakeClock()).run(until_idle=True)
    async with AsyncTestClient(make_app(store)) as c:
        yield c


async def test_the_audit_query_finds_rejected_events_by_type(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/events", params={"type": "rejected"})
    assert r.status_code == 200
    found = r.json()["events"]
    assert [(e["seq"], e["stream"], e["entity_key"], e["type"]) for e in found] == [
        (3, "$source", "$stream", "rejected"),
        (7, "orders", "$stream", "rejected"),
    ]
    assert found[0]["id"] == f"rejected:{sha(NOT_JSON)}:line 3"
    assert found[0]["document"]["source"] == "ndjson"
    assert found[0]["document"]["reason"].startswith("not valid JSON (")
    assert found[1]["document"] == {
        "source": "ndjson",
        "position": "line 7",
        "reason": "update without updateDescription",
        "sha256": sha(NO_UPDATE_DESCRIPTION),
    }
    # Never the raw input: nothing of the line is in the event.
    assert "oops" not in r.text
    r = await client.get("/v1/events", params={"type": "rejected", "stream": "orders"})
    assert [e["seq"] for e in r.json()["events"]] == [7]


async def test_streams_list_the_source_stream_and_entities_leave_out_stream_events(
    client: AsyncTestClient[Any],
) -> None:
    streams = {s["stream"]: s for s in (await client.get("/v1/streams")).json()}
    assert set(streams) == {"orders", "$source"}
    assert (streams["$source"]["entities"], streams["$source"]["events"]) == (0, 1)
    assert (streams["orders"]["entities"], streams["orders"]["events"]) == (4, 9)
    r = await client.get("/v1/streams/orders/entities")
    assert "$stream" not in [e["entity_key"] for e in r.json()["items"]]
    r = await client.get("/v1/streams/%24source/entities")
    assert r.status_code == 200 and r.json()["items"] == []


async def test_the_stream_record_has_the_rejected_event_in_its_history_and_verifies(
    client: AsyncTestClient[Any],
) -> None:
    for stream, seq in (("orders", 7), ("%24source", 3)):
        r = await client.get(f"/v1/streams/{stream}/entities/%24stream/history")
        assert r.status_code == 200
        [event] = r.json()["events"]
        assert (event["seq"], event["type"], event["version"]) == (seq, "rejected", 1)
        r = await client.get(f"/v1/streams/{stream}/entities/%24stream/verify")
        assert r.status_code == 200 and r.json()["valid"] is True
        r = await client.get(f"/v1/streams/{stream}/verify")
        assert r.status_code == 200 and r.json()["valid"] is True
    r = await client.get("/v1/streams/orders/entities/%24stream/state")
    assert r.status_code in (400, 422) and "history, not a state" in r.json()["detail"]
    r = await client.get("/v1/verify")
    assert r.json()["valid"] is True and r.json()["events_checked"] == 10


async def test_entity_histories_around_a_rejected_change_are_untouched(
    client: AsyncTestClient[Any],
) -> None:
    # Order 5 was created before line 7's rejected change and updated after it.
    r = await client.get("/v1/streams/orders/entities/5/history")
    assert [(e["seq"], e["type"], e["version"]) for e in r.json()["events"]] == [
        (6, "created", 1),
        (8, "updated", 2),
    ]
    r = await client.get("/v1/streams/orders/entities/5/state")
    assert r.json()["document"]["status"] == "paid"


async def test_the_live_tail_delivers_rejected_events_in_their_place(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/events/live", params={"after": 0, "limit": 10})
    frames = [f for f in parse_sse(r.text) if f.is_event]
    assert [f.event for f in frames] == [
        "created",
        "updated",
        "rejected",
        "created",
        "updated",
        "created",
        "rejected",
        "updated",
        "created",
        "updated",
    ]
    assert frames[2].json()["stream"] == "$source" and frames[2].id == "3"
