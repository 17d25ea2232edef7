"""The first read of an entity of many versions folds them all (no snapshot is laid yet):
it gives the loop a turn as it goes, so other requests go on and a client gone cancels it.

An outside tester found the first `state` of a 100,001-version entity holding the whole
server (every other request, health probes too) for 450-930 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventstore.history import History
from eventstore.memory.store import MemoryStore
from eventstore.model import Event, EventQuery
from tests.helpers import LogBuilder

VERSIONS = 5000


async def turns_during(read: Callable[[], Awaitable[Any]]) -> int:
    """How many turns a task that only yields got while `read` ran (a memory store's reads
    never wait: only the read's own turns let it run)."""
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await read()
    finally:
        task.cancel()
    return turns


@pytest.mark.parametrize("read", ["state", "state-at", "history"])
async def test_a_first_fold_of_thousands_of_versions_gives_the_loop_turns(read: str) -> None:
    store = MemoryStore()
    log = LogBuilder()
    events = [log.next("hot") for _ in range(VERSIONS)]
    await store.events.append(events)
    history = History(store, snapshot_every=VERSIONS * 2)  # no snapshot on the way
    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "state": lambda: history.state("orders", "hot", version=VERSIONS),
        "state-at": lambda: history.state("orders", "hot", at=events[-1].occurred_at),
        "history": lambda: history.history("orders", "hot", from_version=VERSIONS, limit=1),
    }
    # One turn per 1,024 versions folded (the ticker's own first turn aside).
    assert await turns_during(reads[read]) >= VERSIONS // 1024


async def test_an_audit_query_walking_many_candidates_gives_the_loop_turns() -> None:
    # Half the events are `created` (no changed field), half `updated` changing `status`:
    # `type=created` with `field=status` walks half the log for a page it never fills.
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(f"o{i // 2}") for i in range(6 * 4096)])
    query = EventQuery(types=("created",), field="status")
    found: list[Event] = []

    async def read() -> None:
        found.extend(await store.events.query(query, limit=100))

    assert await turns_during(read) >= 2
    assert found == []
