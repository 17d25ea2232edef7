"""What a subscription worker reports to the supervisor: its checkpoint and how far behind it is."""

from __future__ import annotations

from datetime import timedelta

from eventstore.clock import FakeClock
from eventstore.subscriptions import positions
from eventstore.subscriptions.config import Start, parse_start
from eventstore.supervisor import Progress
from tests.helpers import T0
from tests.realsinks import SECRET
from tests.subscribing import Harness


async def test_progress_is_the_checkpoint_the_events_behind_it_and_the_oldest_ones_age() -> None:
    clock = FakeClock(T0 + timedelta(seconds=10))
    h = Harness(clock)
    await h.append("a", "b", "c", "d", "e")  # seq n recorded at T0 + n s + 1 ms
    await h.subscribe(
        "hooks", {"sink": {"kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": SECRET}}
    )
    worker = h.worker("hooks")
    # no checkpoint written yet: everything is behind, the oldest since seq 1
    assert await worker.progress() == Progress(position=0, lag=5, lag_seconds=8.999)

    async def at(seq: int) -> None:
        await positions.write_position(h.store.checkpoints, "hooks", seq, clock.now())

    await at(3)
    assert await worker.progress() == Progress(position=3, lag=2, lag_seconds=5.999)
    await at(5)
    assert await worker.progress() == Progress(position=5, lag=0, lag_seconds=0.0)
    # a clock behind the events' own times reads as no age, never a negative one
    clock.advance(-9)
    await at(3)
    assert await worker.progress() == Progress(position=3, lag=2, lag_seconds=0.0)


async def test_a_start_time_is_the_position_just_before_the_first_event_recorded_then() -> None:
    h = Harness()
    events = await h.append("a", "b", "a", "c", "b", "a", "d")  # recorded T0 + seq s + 1 ms
    log = h.store.events
    for e in events:
        assert await positions.first_recorded_at_or_after(log, e.recorded_at) == e.seq
        just_after = e.recorded_at + timedelta(microseconds=1)
        expected = e.seq + 1 if e.seq < len(events) else None
        assert await positions.first_recorded_at_or_after(log, just_after) == expected
        start = Start(kind="time", time=e.recorded_at)
        assert await positions.position_of(log, start) == e.seq - 1
    assert await positions.first_recorded_at_or_after(log, T0) == 1
    assert await positions.position_of(log, Start(kind="time", time=T0)) == 0
    later = T0 + timedelta(days=1)
    assert await positions.position_of(log, Start(kind="time", time=later)) == 7  # the head
    assert await positions.position_of(log, Start(kind="seq", seq=3)) == 2
    assert await positions.position_of(log, Start(kind="earliest")) == 0
    assert await positions.position_of(log, Start(kind="latest")) == 7
    # the kind decides: a seq or time a start of another kind carries is not read, and a seq
    # or time start without its value starts at the latest
    assert await positions.position_of(log, Start(kind="latest", seq=3, time=T0)) == 7
    assert await positions.position_of(log, Start(kind="seq")) == 7
    assert await positions.position_of(log, Start(kind="time")) == 7
    empty = Harness().store.events
    assert await positions.first_recorded_at_or_after(empty, T0) is None
    assert await positions.position_of(empty, Start(kind="time", time=T0)) == 0


async def test_a_start_time_a_fraction_of_a_microsecond_after_an_event_starts_after_it() -> None:
    # Digits beyond microseconds were cut: the start fell on the event's own millisecond
    # and the event, recorded before the start, was delivered.
    h = Harness()
    events = await h.append("a", "b", "c")
    log = h.store.events
    second = events[1].recorded_at  # whole milliseconds
    text = second.isoformat().replace("+00:00", "") + "0001Z"  # ...:02.0010000001Z
    start = parse_start({"time": text})
    assert start.time is not None and start.time > second
    assert await positions.position_of(log, start) == 2  # the second event is not delivered


async def test_a_position_is_none_until_its_checkpoint_is_first_written() -> None:
    """A subscription with no checkpoint (never started) reads as none, not as position 0."""
    h = Harness()
    assert await positions.read_position(h.store.checkpoints, "new") is None
    await positions.write_position(h.store.checkpoints, "new", 0, T0)
    assert await positions.read_position(h.store.checkpoints, "new") == 0
    await positions.write_position(h.store.checkpoints, "new", 4, T0)
    assert await positions.read_position(h.store.checkpoints, "new") == 4
    assert await positions.read_position(h.store.checkpoints, "other") is None
