"""Scripting a mockupdb server from async tests (receiving blocks, so it runs in a worker thread)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from bson import Int64
from mockupdb import MockupDB, Request

T = TypeVar("T")

# What the driver needs to treat mockupdb as a replica-set primary: a setName, a wire
# version PyMongo 4.20 accepts, and logicalSessionTimeoutMinutes (else: no sessions).
HELLO: Final[dict[str, Any]] = {
    "ismaster": True,
    "isWritablePrimary": True,
    "setName": "rs0",
    "minWireVersion": 0,
    "maxWireVersion": 21,
    "logicalSessionTimeoutMinutes": 30,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "maxWriteBatchSize": 100_000,
}
# Seconds a test waits for the next request or for the client's answer.
WAIT: Final = 5.0
CURSOR_ID: Final = Int64(4242)


def housekeeping(request: Request) -> bool:
    """Autoresponder: handshakes and monitoring, and the commands a client sends when closing.

    `hello` on another database than admin is the code under test asking: left to the test.
    """
    name = (request.command_name or "").lower()
    if name in ("hello", "ismaster") and request.namespace == "admin":
        return bool(request.replies(HELLO))
    if name in ("endsessions", "killcursors"):
        return bool(request.replies())
    return False


def stop_quickly(server: MockupDB) -> None:
    """Stop the server without waiting out its accept loop's one-second poll."""
    # The accept loop checks `_stopped` before each select(); a connection made after
    # setting it wakes a select() in progress, so the thread ends promptly. Joining it
    # before stop() closes the listening socket keeps select() off a closed descriptor.
    server._stopped = True
    with contextlib.suppress(OSError):
        socket.create_connection(server.address, timeout=0.5).close()
    accept_thread = server._accept_thread
    if accept_thread is not None:
        accept_thread.join(2)
    server.stop()


class Wire:
    """The test's side of the wire: receive the client's next request, reply to it."""

    def __init__(self, server: MockupDB) -> None:
        self.server = server

    @property
    def address(self) -> str:
        """`host:port` of the server, as messages name it."""
        host, port = self.server.address
        return f"{host}:{port}"

    async def receives(self, command: str | None = None) -> Request:
        """The next request that no autoresponder took (asserting its command name)."""
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(
            None, functools.partial(self.server.receives, timeout=WAIT)
        )
        assert request is not None, "the server stopped"
        if command is not None:
            assert request.command_name == command, f"expected {command}, got {request}"
        return request

    @staticmethod
    async def result(task: Awaitable[T]) -> T:
        """The client's answer, or a failure instead of a hang."""
        async with asyncio.timeout(WAIT):
            return await task


def token(n: int) -> dict[str, Any]:
    """A resume token (opaque to the service; ordered here only for reading the tests)."""
    return {"_data": f"82{n:04d}"}


def change(n: int, *, coll: str = "orders", op: str = "insert") -> dict[str, Any]:
    """A change event whose `_id` is `token(n)`."""
    event: dict[str, Any] = {
        "_id": token(n),
        "operationType": op,
        "ns": {"db": "shop", "coll": coll},
        "documentKey": {"_id": n},
    }
    if op == "insert":
        event["fullDocument"] = {"_id": n, "status": "pending"}
    return event


def first_batch(
    docs: list[dict[str, Any]],
    *,
    post_batch: dict[str, Any] | None,
    ns: str = "shop.$cmd.aggregate",
    cursor_id: Int64 = CURSOR_ID,
) -> dict[str, Any]:
    """An `aggregate`/`find` reply."""
    cursor: dict[str, Any] = {"id": cursor_id, "ns": ns, "firstBatch": docs}
    if post_batch is not None:
        cursor["postBatchResumeToken"] = post_batch
    return {"cursor": cursor}


def next_batch(
    docs: list[dict[str, Any]],
    *,
    post_batch: dict[str, Any] | None,
    ns: str = "shop.$cmd.aggregate",
    cursor_id: Int64 = CURSOR_ID,
) -> dict[str, Any]:
    """A `getMore` reply."""
    cursor: dict[str, Any] = {"id": cursor_id, "ns": ns, "nextBatch": docs}
    if post_batch is not None:
        cursor["postBatchResumeToken"] = post_batch
    return {"cursor": cursor}
