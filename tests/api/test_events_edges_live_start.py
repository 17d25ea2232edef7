"""A live tail asked to start beyond the log's head is refused (422), not left to skip events.

`after=N` (or `Last-Event-ID: N`) past the head was taken: the tail then passed over
every event appended until the log reached N, without a word. A subscription refuses
the same mistake for its `start.seq`; the tail refuses it naming `after` (or the header).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import AuditLog

IMPOSSIBLE = "https://eventstore.dev/problems/impossible-range"


def assert_beyond(r: Any, key: str, seq: int, head: int) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["type"], body["title"], body["status"]) == (
        IMPOSSIBLE,
        HTTPStatus(422).phrase,
        422,
    )
    assert body["errors"] == [{"key": key, "message": body["detail"]}]
    detail = body["detail"]
    assert detail.startswith(f"{key}: seq {seq} is beyond the log, whose head is seq {head}:")
    assert f"at most after seq {head} (the next event is seq {head + 1})" in detail


@pytest.mark.parametrize("past", [1, 2, 10**12])
async def test_after_beyond_the_head_is_a_422_naming_after(
    client: AsyncTestClient[Any], audit_log: AuditLog, past: int
) -> None:
    head = audit_log.events[-1].seq
    seq = head + past
    # (`timeout`: taken, the tail would wait for the log to reach seq.)
    r = await client.get(f"/v1/events/live?after={seq}&timeout=0.3")
    assert_beyond(r, "after", seq, head)
    assert r.json()["detail"].endswith(", or, without `after`, at the head")
    # The same answer whatever else is asked, and for HEAD (its status is the GET's).
    r = await client.get(f"/v1/events/live?after={seq}&limit=1&stream=orders&timeout=0.3")
    assert_beyond(r, "after", seq, head)
    head_answer = await client.head(f"/v1/events/live?after={seq}")
    assert head_answer.status_code == 422
    assert head_answer.headers["content-type"] == "application/problem+json"


async def test_a_last_event_id_beyond_the_head_is_a_422_naming_the_header(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    head = audit_log.events[-1].seq
    r = await client.get("/v1/events/live?timeout=0.3", headers={"last-event-id": str(head + 1)})
    assert_beyond(r, "Last-Event-ID", head + 1, head)
    # With an `after` inside the log, the header is the one beyond it.
    r = await client.get(
        "/v1/events/live?after=3&timeout=0.3", headers={"last-event-id": str(head + 7)}
    )
    assert_beyond(r, "Last-Event-ID", head + 7, head)
    r = await client.head("/v1/events/live", headers={"last-event-id": str(head + 1)})
    assert r.status_code == 422


async def test_the_head_itself_is_a_start_and_so_is_every_seq_before_it(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    """After the head: the next event, whenever it comes. Nothing is skipped."""
    head = audit_log.events[-1].seq
    r = await client.get(f"/v1/events/live?after={head}&timeout=0.05")
    assert r.status_code == 200, r.text
    assert "data:" not in r.text  # nothing after the head yet
    r = await client.get("/v1/events/live?timeout=0.05", headers={"last-event-id": str(head)})
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/events/live?after={head - 1}&limit=1")
    assert r.status_code == 200, r.text
    assert f"id: {head}\r\n" in r.text
    r = await client.get("/v1/events/live?after=0&limit=1", headers={"last-event-id": "0"})
    assert r.status_code == 200 and "id: 1\r\n" in r.text
