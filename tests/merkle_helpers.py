"""A memory store with a signed, checkpointed log: shared by the API and CLI proof tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.memory.merkle import MemoryMerkleTree
from eventstore.memory.store import MemoryStore
from eventstore.model import Checkpoint, Event, Head
from eventstore.notes import Signer
from eventstore.tree import LogTree
from tests.helpers import LogBuilder, resealed


@dataclass
class Signed:
    """The store, its signer, the events (seq order) and the checkpointed sizes."""

    store: MemoryStore
    signer: Signer
    events: list[Event]
    sizes: list[int]


async def signed_log(
    tmp_path: Path, sizes: tuple[int, ...] = (5, 13, 21), *, sign: bool = True, tail: int = 0
) -> Signed:
    """A log with a signed checkpoint at each of `sizes` (events of four entities).

    With `sign=False` the checkpoints are made unsigned, as without a signing key; `tail`
    events more are appended after the last checkpoint, in no checkpoint yet.
    """
    store = MemoryStore()
    builder = LogBuilder()
    signer = Signer.generate("log.test")
    clock = FakeClock()
    cp = Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        signer=signer if sign else None,
        state_path=str(tmp_path / "state") if sign else None,
    )
    await cp.open()
    events: list[Event] = []
    for size in sizes:
        batch = [builder.next(f"o{i % 4}") for i in range(len(events), size)]
        await store.events.append(batch)
        events += batch
        await cp.after_batch(batch)
        clock.advance(2)
        await cp.idle()
    if tail:
        batch = [builder.next(f"o{i % 4}") for i in range(len(events), len(events) + tail)]
        await store.events.append(batch)
        events += batch
    return Signed(store, signer, events, list(sizes))


async def replace_log(store: MemoryStore, events: list[Event], *, head: bool = True) -> None:
    """Swap the memory log for `events` behind the service's back; rewrite the recorded head."""
    log = MemoryEventLog()
    await log.append(events)
    store.events = log
    if head and events:
        await store.checkpoints.put(
            Checkpoint(
                name="ingester:shop",
                head=Head(seq=events[-1].seq, log_hash=events[-1].log_hash),
            )
        )


async def rebuild_tree(store: MemoryStore) -> None:
    """Rebuild the stored Merkle tree from the (rewritten) log, as a thorough attacker would."""
    store.merkle = MemoryMerkleTree()
    await LogTree(store.merkle, store.events).open()


def rewrite_event(events: list[Event], seq: int) -> list[Event]:
    """Event `seq` with another document, every hash after it recomputed."""
    changed = [
        msgspec.structs.replace(e, document={"_id": "forged", "amount": 10**6})
        if e.seq == seq
        else e
        for e in events
    ]
    return resealed(changed)


async def grow(signed: Signed, tmp_path: Path, to: int = 21) -> None:
    more = await signed_log(tmp_path / "more", sizes=(to,))
    # Same builder seed and order: the first 13 events of `more` are `signed`'s own.
    assert [e.hash for e in more.events[:13]] == [e.hash for e in signed.events]
    new = more.events[13:]
    await signed.store.events.append(new)
    signed.events += new


async def resign(signed: Signed, state: Path, signer: Signer | None = None) -> None:
    """A key holder signs whatever the store now holds (a fresh signer state: no memory)."""
    signed.store.merkle = MemoryMerkleTree()
    cp = Checkpointer(
        LogTree(signed.store.merkle, signed.store.events),
        origin="eventstore/test",
        clock=FakeClock(),
        signer=signer or signed.signer,
        state_path=str(state),
    )
    await cp.open()
    await cp.make()


async def resign_keeping_history(signed: Signed, tmp_path: Path) -> None:
    """The honest service: the tree extended from the log, signed with its own state."""
    cp = Checkpointer(
        LogTree(signed.store.merkle, signed.store.events),
        origin="eventstore/test",
        clock=FakeClock(),
        signer=signed.signer,
        state_path=str(tmp_path / "state"),
    )
    await cp.open()
    await cp.make()
