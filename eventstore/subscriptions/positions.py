"""Where a subscription starts, and its checkpoint in the Checkpoints port."""

from __future__ import annotations

from datetime import datetime

from eventstore.model import Checkpoint, Head
from eventstore.ports import Checkpoints, EventLog
from eventstore.subscriptions.config import Start


def checkpoint_name(name: str) -> str:
    """`subscription:<name>`: the checkpoint and the lease role."""
    return f"subscription:{name}"


async def first_recorded_at_or_after(events: EventLog, at: datetime) -> int | None:
    """The seq of the first event recorded at or after `at` (binary search: O(log n) reads)."""
    head = (await events.head()).seq
    lo, hi, found = 1, head, None
    while lo <= hi:
        mid = (lo + hi) // 2
        page = await events.read(after_seq=mid - 1, limit=1)
        if not page:
            break
        if page[0].recorded_at >= at:
            found, hi = mid, mid - 1
        else:
            lo = mid + 1
    return found


async def position_of(events: EventLog, start: Start) -> int:
    """The checkpoint a start means: every event at or below it counts as settled."""
    if start.kind == "earliest":
        return 0
    if start.kind == "seq" and start.seq is not None:
        return start.seq - 1
    if start.kind == "time" and start.time is not None:
        seq = await first_recorded_at_or_after(events, start.time)
        if seq is not None:
            return seq - 1
    return (await events.head()).seq


async def read_position(checkpoints: Checkpoints, name: str) -> int | None:
    """The stored checkpoint's seq, or None before the first."""
    cp = await checkpoints.get(checkpoint_name(name))
    return None if cp is None else cp.head.seq


async def write_position(checkpoints: Checkpoints, name: str, seq: int, now: datetime) -> None:
    """Store the checkpoint (the highest seq below which every event is settled)."""
    await checkpoints.put(
        Checkpoint(name=checkpoint_name(name), head=Head(seq=seq), updated_at=now)
    )
