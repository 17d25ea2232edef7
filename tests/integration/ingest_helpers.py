"""Shared pieces of the ingester tests: a feed with orders, running until idle, reading the log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bson import Timestamp

from eventstore.chain import LogVerifier, verify_entity
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.model import Checkpoint, Event
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from tests.helpers import fixed_salt

ROLE = "ingester:shop"


def settings(**kw: Any) -> Settings:
    """Test settings: short leases, small batches unless told otherwise."""
    base: dict[str, Any] = {"uri": "memory://", "source": "simulator", "lease_seconds": 10.0}
    base.update(kw)
    return Settings(**base)


def ingester(store: Store, feed: MemoryChangeFeed, clock: FakeClock, **kw: Any) -> Ingester:
    """An ingester of the feed's `orders` (and whatever COLLECTIONS says); deterministic salts."""
    owner = kw.pop("owner", None)
    entity_rows = kw.pop("entity_rows", ())
    on_batch = kw.pop("on_batch", None)
    s = settings(**kw)
    return Ingester(
        store=store,
        source=feed.source(
            list(s.collections), batch_size=s.batch_size, max_await=0.01, pre_images=s.pre_images
        ),
        settings=s,
        clock=clock,
        owner=owner,
        salts=fixed_salt,
        entity_rows=entity_rows,
        on_batch=on_batch,
    )


async def wait_until(predicate: Callable[[], object], *, seconds: float = 5.0) -> None:
    """Poll (bounded) until `predicate()` is true; fail the test if it never is."""
    for _ in range(int(seconds / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


async def start_from_the_beginning(store: Store) -> None:
    """A checkpoint before any change: the feed's whole history is a backlog to capture."""
    await store.checkpoints.put(Checkpoint(name=ROLE, phase="streaming", start_at=Timestamp(1, 0)))


async def all_events(store: Store) -> list[Event]:
    """The whole log in seq order."""
    out: list[Event] = []
    while page := await store.events.read(after_seq=out[-1].seq if out else 0, limit=500):
        out.extend(page)
    return out


async def assert_log_intact(store: Store) -> list[Event]:
    """Dense seq, dense versions, both chains valid against the checkpoint's head."""
    events = await all_events(store)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None
    verifier = LogVerifier(cp.head)
    for e in events:
        verifier.feed(e)
    verdict = verifier.verdict()
    assert verdict.valid, verdict.reason
    by_entity: dict[tuple[str, str], list[Event]] = {}
    for e in events:
        by_entity.setdefault((e.stream, e.entity_key), []).append(e)
    for (stream, key), evs in by_entity.items():
        assert [e.version for e in evs] == list(range(1, len(evs) + 1)), (stream, key)
        assert verify_entity(evs).valid, (stream, key)
    return events


def feed_changes(
    feed: MemoryChangeFeed, collections: tuple[str, ...] = ("orders",)
) -> list[dict[str, Any]]:
    """Every remembered data change of the captured collections, oldest first."""
    out = []
    for position in range(feed.horizon + 1, feed.position + 1):
        entry = feed.entry_at(position)
        if entry is None:
            continue
        ev = entry.event
        if (
            ev.get("operationType") in ("insert", "update", "replace", "delete")
            and ev["ns"]["coll"] in collections
        ):
            out.append(ev)
    return out


class RecordedCheckpoints:
    """Every checkpoint the ingester stores, in order. `fail_next` (or `fail_on`: the put
    call of that number, from 1) makes a put fail after the batch's events were appended:
    an acknowledgement lost with the connection."""

    def __init__(self, store: Store) -> None:
        self.put: list[Checkpoint] = []
        self.fail_next = False
        self.fail_on: int | None = None
        self.calls = 0
        original = store.checkpoints.put

        async def put(cp: Checkpoint, **kw: Any) -> None:
            self.calls += 1
            if self.fail_next or self.calls == self.fail_on:
                self.fail_next = False
                raise ConnectionError("checkpoint write lost")
            await original(cp, **kw)
            self.put.append(cp)

        store.checkpoints.put = put  # type: ignore[method-assign,assignment]
