"""A server that answers the handshake and then nothing: operations fail at the reply
timeout, and closing takes a few seconds, not the reply timeout.

A server can answer the handshake and then nothing (wedged, or a connection a firewall
dropped). Closing sends it a killCursors (the live tails' change stream) and an
endSessions (the client's), and PyMongo waits for each answer up to the reply timeout
(`socketTimeoutMS`, 30 s by default): a stopping service outlived its grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mockupdb import MockupDB, Request
from pymongo import AsyncMongoClient
from pymongo.errors import NetworkTimeout

from eventstore import storage
from eventstore.mongo import append_watch
from eventstore.mongo import store as mongo_store
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.store import MongoStore
from eventstore.settings import Settings
from tests.contract.test_eventlog_wire import NS, head_reply
from tests.contract.wire import HELLO, WAIT, Wire, first_batch, stop_quickly, token

# Far beyond the test's own wait: an unbounded close would fail it, not pass late.
REPLY_TIMEOUT_MS = 60_000


def handshakes_only(request: Request) -> bool:
    """Autoresponder of a server that answers `hello` and nothing else it is sent."""
    if (request.command_name or "").lower() in ("hello", "ismaster"):
        return bool(request.replies(HELLO))
    return False


@pytest.fixture
def stalling() -> Iterator[MockupDB]:
    server = MockupDB(request_timeout=WAIT)
    server.autoresponds(handshakes_only)
    server.run()
    try:
        yield server
    finally:
        stop_quickly(server)


async def test_closing_a_store_whose_server_stopped_answering_is_bounded(
    stalling: MockupDB, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(append_watch, "CLOSE_SECONDS", 0.3)
    monkeypatch.setattr(mongo_store, "CLIENT_CLOSE_SECONDS", 0.3)
    wire = Wire(stalling)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stalling.uri,
        directConnection=True,
        serverSelectionTimeoutMS=2000,
        socketTimeoutMS=REPLY_TIMEOUT_MS,
    )
    store = MongoStore(client, "eventstore", owns_client=True)
    log = store.events
    assert isinstance(log, MongoEventLog)
    # A live tail's wait opens the shared change stream, which then waits in a getMore.
    waiting = asyncio.create_task(log.wait_for_append(3, 0.2))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    await wire.receives("getMore")  # never answered: the server has stopped answering
    assert await wire.result(waiting) is False
    assert log.watcher.watching

    closing = asyncio.create_task(store.close())
    kill = await wire.receives("killCursors")  # the stream's close: never answered
    end = await wire.receives("endSessions")  # the client's close: never answered
    with caplog.at_level(logging.WARNING):
        await wire.result(closing)  # within WAIT (5 s), where it waited 60 s

    assert kill.doc["killCursors"] == "events"
    assert end.namespace == "admin"
    assert not log.watcher.watching
    said = [r.getMessage() for r in caplog.records]
    assert "closed the change stream waking live tails without the server's answer" in said
    assert "closing the MongoDB client without the server's answers" in said


@pytest.mark.parametrize("bounded", [True, False])
async def test_an_operation_on_a_server_that_stopped_answering_fails_at_the_reply_timeout(
    stalling: MockupDB, monkeypatch: pytest.MonkeyPatch, bounded: bool
) -> None:
    # The store's own client (open_store): its reply timeout, not the test's, ends the wait.
    monkeypatch.setattr(storage, "OPERATION_TIMEOUT_MS", 200)
    monkeypatch.setattr(mongo_store, "CLIENT_CLOSE_SECONDS", 0.2)
    wire = Wire(stalling)
    host, port = stalling.address
    settings = Settings(uri=f"mongodb://{host}:{port}/?directConnection=true")
    store = await storage.open_store(settings, bounded=bounded)
    try:
        reading = asyncio.create_task(store.events.head())
        await wire.receives("find")  # never answered
        if not bounded:  # `migrate`'s client: an index build answers when it is done
            await asyncio.sleep(1.0)  # five times the timeout: still waiting
            assert not reading.done()
            reading.cancel()
            return
        # retried once on a fresh connection (a retryable read), then given up
        await wire.receives("find")
        with pytest.raises(NetworkTimeout):
            await Wire.result(reading)
    finally:
        await store.close()
