"""A memory store with a signed, checkpointed log: shared by the API and CLI proof tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import Event
from eventstore.notes import Signer
from eventstore.tree import LogTree
from tests.helpers import LogBuilder


@dataclass
class Signed:
    """The store, its signer, the events (seq order) and the checkpointed sizes."""

    store: MemoryStore
    signer: Signer
    events: list[Event]
    sizes: list[int]


async def signed_log(tmp_path: Path, sizes: tuple[int, ...] = (5, 13, 21)) -> Signed:
    """A log with a signed checkpoint at each of `sizes` (events of four entities)."""
    store = MemoryStore()
    builder = LogBuilder()
    signer = Signer.generate("log.test")
    clock = FakeClock()
    cp = Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        signer=signer,
        state_path=str(tmp_path / "state"),
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
    return Signed(store, signer, events, list(sizes))
