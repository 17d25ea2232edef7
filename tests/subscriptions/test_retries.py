"""The delivery engine against a scripted sink: the retry schedule, parking, reset, offline commands."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.codec import rfc3339, utc_ms
from eventstore.subscriptions.config import SubscriptionConfig
from eventstore.subscriptions.sinks.base import (
    ALREADY,
    DELIVERED,
    EVENT_FAILED,
    GONE,
    SINK_FAILED,
    UNHEARD,
    Delivery,
    Outcome,
    Sink,
)
from eventstore.worker_state import DISABLED, RETRYING, RUNNING, STANDBY
from tests.realsinks import SECRET
from tests.subscribing import Harness, fake_clock, until, until_async

HOOK = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": SECRET}


class ScriptedSink:
    """Answers each delivery by `rule`, keeping every attempt with the fake clock's time."""

    strict = False
    max_batch: int | None = None  # the worker's entity_batch

    def __init__(self, clock: FakeClock, rule: Callable[[Delivery], Outcome]) -> None:
        self.clock = clock
        self.rule = rule
        self.attempts: list[tuple[str, datetime]] = []
        self.closed = 0

    async def check(self) -> Outcome | None:
        return None

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One outcome per delivery, by the rule."""
        out = []
        for d in deliveries:
            self.attempts.append((d.id, self.clock.now()))
            out.append(self.rule(d))
        return out

    async def close(self) -> None:
        """Count closings."""
        self.closed += 1


def failing(entity: str, detail: str | None = None) -> Callable[[Delivery], Outcome]:
    """Every event of `entity` fails (with `detail`), the others are delivered."""

    def rule(d: Delivery) -> Outcome:
        if d.event.entity_key == entity:
            return Outcome(status=EVENT_FAILED, detail=detail)
        return Outcome(status=DELIVERED)

    return rule


async def test_each_retry_waits_its_delay_with_jitter_then_the_event_is_parked() -> None:
    h = Harness()
    t0 = h.clock.now()
    sink = ScriptedSink(h.clock, failing("bad"))
    built: list[SubscriptionConfig] = []

    def factory(config: SubscriptionConfig) -> Sink:
        built.append(config)
        return sink

    retry = {"delays_s": [5, 60], "jitter": 0.2}
    await h.subscribe("hooks", {"sink": HOOK, "retry": retry})
    await h.append("bad", "ok")  # 1, 2
    await h.start(h.worker("hooks", sink_factory=factory, rng=random.Random(7)))
    try:
        await until_async(lambda: _parked(h, 1))
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    rng = random.Random(7)
    first = 5 * (1 + rng.uniform(-0.2, 0.2))
    second = 60 * (1 + rng.uniform(-0.2, 0.2))
    tries = [at for i, at in sink.attempts if i == "hooks-1"]
    assert tries == [
        t0,
        t0 + timedelta(seconds=first),
        t0 + timedelta(seconds=first) + timedelta(seconds=second),
    ]
    [parked], _ = await h.admin.parked("hooks")
    assert (parked.seq, parked.attempts, parked.last_error) == (1, 3, "failed")  # no detail
    assert parked.parked_at == utc_ms(tries[-1])  # stored at millisecond precision
    assert [c.name for c in built] == ["hooks"] and sink.closed == 1


async def test_a_reset_forgets_parked_and_settled_events_and_delivers_again_from_its_start() -> (
    None
):
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad", "nope"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": [1]}})
    await h.append("bad", "ok", "ok")  # 1, 2, 3
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _parked(h, 1))
        await until_async(lambda: _at(h, 3))
        sink.rule = failing("nobody")
        await h.admin.reset("hooks", "earliest", actor="ops")
        await until_async(lambda: _parked(h, 0))
        await until(lambda: [i for i, _ in sink.attempts].count("hooks-2") == 2)
        await until_async(lambda: _at(h, 3))
    finally:
        await h.stop()
    ids = [i for i, _ in sink.attempts]
    assert ids[-3:] == ["hooks-1", "hooks-2", "hooks-3"]  # all again, in order, the same ids
    checkpoint = await h.store.checkpoints.get("subscription:hooks")
    assert checkpoint is not None and checkpoint.updated_at == utc_ms(h.clock.now())


async def test_queued_commands_are_carried_out_offline_except_a_replay_which_needs_a_sink() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}})
    await h.append("bad", "bad", "ok", "ok2")  # 1, 2 (held), 3, 4
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _parked(h, 2))
        await until_async(lambda: _at(h, 4))
    finally:
        await h.stop()
    built: list[str] = []

    def factory(config: SubscriptionConfig) -> Sink:
        built.append(config.name)
        return sink

    offline = h.worker("hooks", sink_factory=factory)
    await h.admin.replay("hooks", None, actor="ops")
    await h.admin.skip("hooks", 2, actor="ops")
    await h.admin.reset("hooks", {"seq": 4}, actor="ops")
    assert await offline.run_commands_once() is True
    assert built == []  # no sink is built to carry out commands
    assert await h.position("hooks") == 3  # reset: from seq 4 on
    checkpoint = await h.store.checkpoints.get("subscription:hooks")
    assert checkpoint is not None and checkpoint.updated_at == utc_ms(h.clock.now())
    record = await h.admin.get("hooks")
    assert [c["action"] for c in record.commands] == ["replay"]  # waits for a delivering one
    assert await h.store.deliveries.count_parked("hooks") == 0  # reset cleared them
    # while another instance holds the lease, nothing is done here
    holder = h.worker("hooks", owner="b", sink_factory=factory)
    assert await holder.lease.try_acquire()
    assert await offline.run_commands_once() is False
    await holder.lease.release()


async def _no_commands(h: Harness) -> bool:
    return (await h.admin.get("hooks")).commands == []


async def _parked(h: Harness, n: int) -> bool:
    return await h.store.deliveries.count_parked("hooks") == n


async def _at(h: Harness, position: int) -> bool:
    return await h.position("hooks") == position


async def _status(h: Harness) -> dict[str, Any]:
    return await h.admin.status(await h.admin.get("hooks"))


async def test_a_sink_failure_backs_off_the_whole_subscription_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.subscriptions")
    h = Harness()
    t0 = h.clock.now()
    down = [True]

    def rule(d: Delivery) -> Outcome:
        if down[0]:
            down[0] = False
            return Outcome(status=SINK_FAILED, detail="down", retry_after=30.0)
        return Outcome(status=DELIVERED)

    sink = ScriptedSink(h.clock, rule)
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _at(h, 1))
        await h.admin.reset("hooks", "earliest", actor="ops")
        await until(lambda: len(sink.attempts) == 3)
    finally:
        await h.stop()
    assert [at for _, at in sink.attempts[:2]] == [t0, t0 + timedelta(seconds=30)]
    lines = [r.getMessage() for r in caplog.records if r.name == "eventstore.subscriptions"]
    assert "subscription hooks backs off for 30.0s: down" in lines
    assert "subscription hooks: carrying out reset" in lines
    assert await h.store.deliveries.count_parked("hooks") == 0  # a sink failure parks nothing


async def test_a_worker_that_loses_its_lease_says_so_stands_by_and_ends_when_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = fake_clock()
    clock._advance_on_sleep = False  # the test moves time
    h = Harness(clock, lease_seconds=10)
    sink = ScriptedSink(clock, lambda d: Outcome(status=DELIVERED))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    worker = h.worker("hooks", sink_factory=lambda c: sink)
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    supervised = await h.start(worker)
    try:
        await until(lambda: len(sink.attempts) == 1)
        clock.advance(11)  # the instance stalled past its lease; another one takes it
        taken = await h.store.leases.acquire(worker.lease.role, "b", now=clock.now(), ttl=10)
        assert taken is not None
        await h.store.subscriptions.patch("hooks", {"delivered": 7})  # as b counts on
        await until(lambda: supervised.state == STANDBY)
        lines = [r.getMessage() for r in caplog.records if r.name == "eventstore.subscriptions"]
        assert lines == ["subscription hooks: lease lost, standing by"]
        # the worker that lost the lease leaves the counters to the one that holds it
        assert (await h.admin.get("hooks")).delivered == 7
        h.supervisors[0].stopping.set()
        assert supervised.task is not None  # standing by, it ends with the stop by itself
        await asyncio.wait_for(asyncio.shield(supervised.task), 5)
    finally:
        await h.stop()


@pytest.mark.parametrize(
    ("detail", "shown"),
    [
        (f"the receiver refused key {SECRET}", "the receiver refused key ***"),  # masked
        (None, "the sink failed"),  # no detail given
    ],
)
async def test_a_sink_failure_is_shown_in_the_workers_state(detail: str | None, shown: str) -> None:
    h = Harness()
    sink = ScriptedSink(
        h.clock, lambda d: Outcome(status=SINK_FAILED, detail=detail, retry_after=30.0)
    )
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    supervised = await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until(lambda: supervised.state == RETRYING)
        assert supervised.last_error == shown
    finally:
        await h.stop()


async def test_replaying_more_of_an_entity_while_its_replayed_event_is_in_flight_sends_it_once() -> (
    None
):
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}, "lanes": 4})
    await h.append("bad", "bad", "bad")  # 1 fails and parks, 2 and 3 held behind it
    worker = h.worker("hooks", sink_factory=lambda c: sink)
    await h.start(worker)
    gate = asyncio.Event()
    batches: list[list[str]] = []

    async def slow(deliveries: Sequence[Delivery]) -> list[Outcome]:
        batches.append([d.id for d in deliveries])
        if any(d.id == "hooks-1" for d in deliveries):
            await gate.wait()  # seq 1 stays in flight until the test lets it go
        return [Outcome(status=DELIVERED) for _ in deliveries]

    try:
        await until_async(lambda: _parked(h, 3))
        sink.deliver = slow  # type: ignore[method-assign]
        await h.admin.replay("hooks", 1, actor="ops")
        await until(lambda: batches == [["hooks-1"]])
        await h.admin.replay("hooks", None, actor="ops")  # 2 and 3 queue behind 1
        await until_async(lambda: _no_commands(h))  # the worker carried the replay out
        await asyncio.sleep(0.05)  # and has had its chance to launch anything
        assert batches == [["hooks-1"]]  # one event of the entity in flight, never twice
        # nothing of the entity is parked any more: a new event queues behind the replayed
        await h.append("bad")  # 4
        await asyncio.sleep(0.05)
        gate.set()
        await until_async(lambda: _parked(h, 0))  # each unparked once delivered
        await until(lambda: len(batches) >= 4)
        await asyncio.sleep(0.05)
        # everything parked, replayed and delivered: nothing counts against the read window
        assert (worker.buffered, dict(worker.queues)) == (0, {})
    finally:
        await h.stop()
    assert batches == [["hooks-1"], ["hooks-2"], ["hooks-3"], ["hooks-4"]]


@pytest.mark.parametrize(("held", "above"), [({1}, [2, 3]), ({1, 2}, [3])])
async def test_events_settled_above_the_checkpoint_are_stored_until_it_passes_them(
    held: set[int], above: list[int]
) -> None:
    h = Harness()
    gate = asyncio.Event()

    async def held_first(deliveries: Sequence[Delivery]) -> list[Outcome]:
        if any(d.event.seq in held for d in deliveries):
            await gate.wait()
        return [Outcome(status=DELIVERED) for _ in deliveries]

    sink = ScriptedSink(h.clock, failing("nobody"))
    sink.deliver = held_first  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 3})  # one event per lane
    await h.append("a", "b", "c")  # `held` stay in flight; the others are delivered meanwhile
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _settled_above(h, above))
        assert await h.position("hooks") == 0  # 1 is not settled: the checkpoint waits
        gate.set()
        await until_async(lambda: _at(h, 3))
        await until_async(lambda: _settled_above(h, []))  # covered by the checkpoint: forgotten
    finally:
        await h.stop()


async def test_a_worker_runs_again_after_its_run_ended_and_ends_when_its_subscription_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.subscriptions")
    h = Harness()
    sink = ScriptedSink(h.clock, failing("nobody"))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    worker = h.worker("hooks", sink_factory=lambda c: sink)
    await h.start(worker)
    await until_async(lambda: _at(h, 1))
    await h.stop()
    assert sink.closed == 1
    await h.append("b")
    supervised = await h.start(worker, instance="again")  # the same worker, a second run
    try:
        await until_async(lambda: _at(h, 2))
        await h.admin.delete("hooks", actor="ops")
        await until(lambda: supervised.state == "stopped")
    finally:
        await h.stop()
    assert [i for i, _ in sink.attempts] == ["hooks-1", "hooks-2"]
    ended = [r.getMessage() for r in caplog.records if "deleted" in r.getMessage()]
    assert ended == ["subscription hooks was deleted: its worker ends"]


async def _settled_above(h: Harness, seqs: list[int]) -> bool:
    return await h.store.deliveries.settled("hooks", above=0) == seqs


async def test_an_event_after_one_the_filter_leaves_out_goes_out_without_another_append() -> None:
    # One short read holds both; the second goes out though nothing is appended after it.
    # (Ending that read at the left-out event would only delay it: the append watcher
    # reads again while the log's head is past the read position.)
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    await h.subscribe("hooks", {"sink": HOOK, "filter": {"streams": ["orders"]}})
    await h.append("c1", stream="customers")
    await h.append("a")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until(lambda: len(sink.attempts) == 1)
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    assert [delivery_id for delivery_id, _ in sink.attempts] == ["hooks-2"]


async def test_an_event_after_one_held_behind_a_parked_one_goes_out_without_another_append() -> (
    None
):
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}})
    await h.append("bad")  # 1 fails and parks at once
    worker = h.worker("hooks", sink_factory=lambda c: sink)
    await h.start(worker)
    try:
        await until_async(lambda: _parked(h, 1))
        await until_async(lambda: _at(h, 1))
        # one append of two: 2 is held behind 1, 3 (another entity) must still go out
        await h.store.events.append([h.log.next("bad"), h.log.next("good")])
        await until(lambda: "hooks-3" in [i for i, _ in sink.attempts])
        await until_async(lambda: _parked(h, 2))
    finally:
        await h.stop()
    assert [i for i, _ in sink.attempts] == ["hooks-1", "hooks-3"]


async def test_the_end_of_a_delivery_starts_the_next_without_waiting_for_the_poll() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a", "a", "a")  # one entity: each delivery waits for the one before
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, poll_s=60.0))
    try:
        await until(lambda: len(sink.attempts) == 3, seconds=5)
    finally:
        await h.stop()
    assert [i for i, _ in sink.attempts] == ["hooks-1", "hooks-2", "hooks-3"]


async def test_ready_entities_are_shared_evenly_between_the_free_lanes() -> None:
    # Six entities ready, two lanes free: each lane takes the heads of three (ceil(6 / 2)),
    # one webhook after the other within a lane, never two events of one entity at once.
    h = Harness()
    batches: list[list[int]] = []

    async def deliver(deliveries: Sequence[Delivery]) -> list[Outcome]:
        batches.append([d.event.seq for d in deliveries])
        return [Outcome(status=DELIVERED) for _ in deliveries]

    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    sink.deliver = deliver  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 2})
    await h.append("a", "b", "c", "d", "e", "f")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _at(h, 6))
    finally:
        await h.stop()
    assert batches == [[1, 2, 3], [4, 5, 6]]


async def test_a_strict_sink_gets_one_batch_at_a_time_in_seq_order() -> None:
    h = Harness()
    gate = asyncio.Event()
    batches: list[list[int]] = []

    async def deliver(deliveries: Sequence[Delivery]) -> list[Outcome]:
        batches.append([d.event.seq for d in deliveries])
        if len(batches) == 1:
            await gate.wait()  # the first batch stays in flight until the test lets it go
        return [Outcome(status=DELIVERED) for _ in deliveries]

    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    sink.strict = True
    sink.deliver = deliver  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 4})
    await h.append("a", "b", "c")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, strict_batch=2))
    try:
        await until(lambda: batches == [[1, 2]])
        await asyncio.sleep(0.05)  # its chance to start anything else
        assert batches == [[1, 2]]  # nothing more while a batch is in flight
        gate.set()
        await until_async(lambda: _at(h, 3))
    finally:
        await h.stop()
    assert batches == [[1, 2], [3]]


async def test_a_strict_sink_that_fails_the_first_of_a_batch_gets_it_again() -> None:
    # The second event of the batch is delivered, the first is not: the line keeps the
    # first at its head (and the rest after it) until it goes through.
    h = Harness()
    calls: list[list[int]] = []

    async def deliver(deliveries: Sequence[Delivery]) -> list[Outcome]:
        calls.append([d.event.seq for d in deliveries])
        if len(calls) == 1:
            return [Outcome(status=EVENT_FAILED, detail="no"), Outcome(status=DELIVERED)]
        return [Outcome(status=DELIVERED) for _ in deliveries]

    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    sink.strict = True
    sink.deliver = deliver  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a", "b")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, strict_batch=2))
    try:
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    assert calls[0] == [1, 2] and calls[1][0] == 1  # 1 is sent again, first


async def test_sub_second_retry_delays_and_back_offs_are_kept_to() -> None:
    h = Harness()
    t0 = h.clock.now()
    down = [True]

    def rule(d: Delivery) -> Outcome:
        if d.event.entity_key == "bad":
            return Outcome(status=EVENT_FAILED)
        if down[0]:  # the sink is down once, for a quarter of a second
            down[0] = False
            return Outcome(status=SINK_FAILED, detail="busy", retry_after=0.25)
        return Outcome(status=DELIVERED)

    sink = ScriptedSink(h.clock, rule)
    retry = {"delays_s": [0.25, 0.5], "jitter": 0}
    await h.subscribe("hooks", {"sink": HOOK, "retry": retry, "lanes": 1})
    await h.append("bad")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _parked(h, 1))
        await h.append("ok")
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    bad = [at - t0 for i, at in sink.attempts if i == "hooks-1"]
    assert bad == [timedelta(0), timedelta(seconds=0.25), timedelta(seconds=0.75)]
    ok = [at for i, at in sink.attempts if i == "hooks-2"]
    assert ok[1] - ok[0] == timedelta(seconds=0.25)  # the sink's own retry_after


async def test_each_outcome_is_counted_in_the_status_with_the_time_of_the_last_delivery() -> None:
    h = Harness()
    answers = {
        "u": UNHEARD,
        "a": ALREADY,
        "d": DELIVERED,
        "bad": EVENT_FAILED,
        "worse": EVENT_FAILED,
    }
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=answers[d.event.entity_key]))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}})
    await h.append("u", "a", "d", "u", "a", "a", "bad", "worse")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))

    try:
        await until_async(lambda: _parked(h, 2))
        await until_async(lambda: _at(h, 8))
        await until_async(lambda: _delivered(h, 6))
        status = await _status(h)
    finally:
        await h.stop()
    assert {k: status[k] for k in ("delivered", "unheard", "already_delivered")} == {
        "delivered": 6,  # unheard and already delivered count as delivered too
        "unheard": 2,
        "already_delivered": 3,
    }
    assert (status["failed_attempts"], status["parked"]) == (2, 2)
    assert status["last_delivery_at"] == rfc3339(h.clock.now())


async def _delivered(h: Harness, n: int) -> bool:
    return bool((await _status(h))["delivered"] == n)


async def test_a_sink_that_answers_gone_without_a_reason_disables_with_a_plain_one() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=GONE))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    supervised = await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until(lambda: supervised.state == DISABLED)
        record = await h.admin.get("hooks")
    finally:
        await h.stop()
    assert record.disabled_reason == "the receiver answered 410 Gone"


def calls_of(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> list[object]:
    """The calls of `target`'s async `method` from now on (their arguments), kept in a list."""
    calls: list[object] = []
    original = getattr(target, method)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return await original(*args, **kwargs)

    monkeypatch.setattr(target, method, counted)
    return calls


async def test_an_idle_subscription_does_not_read_the_log_at_each_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It waits for appends (`wait_for_append`) instead: a read comes only with new events."""
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    reads = calls_of(monkeypatch, h.store.events, "read")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, poll_s=0.02))
    try:
        await until_async(lambda: _at(h, 1))
        await asyncio.sleep(0.1)
        before = len(reads)
        await asyncio.sleep(0.3)  # 15 polls with nothing new
        idle = len(reads) - before
        await h.append("b")
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    assert idle == 0
    assert [i for i, _ in sink.attempts] == ["hooks-1", "hooks-2"]


async def test_events_parked_before_the_sink_became_strict_are_replayed_in_seq_order() -> None:
    """A webhook subscription updated to a Redis stream (strict) keeps its parked events: a
    replay sends them in seq order, after the batch in flight and before newer events."""
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}})
    await h.append("bad", "bad", "bad")  # 1 fails and parks, 2 and 3 held behind it
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    gate = asyncio.Event()
    batches: list[list[str]] = []

    async def strict(deliveries: Sequence[Delivery]) -> list[Outcome]:
        batches.append([d.id for d in deliveries])
        if any(d.id == "hooks-4" for d in deliveries):
            await gate.wait()  # 4 stays in flight until the test lets it go
        return [Outcome(status=DELIVERED) for _ in deliveries]

    try:
        await until_async(lambda: _parked(h, 3))
        sink.strict = True
        sink.deliver = strict  # type: ignore[method-assign]
        await h.append("bad")  # 4: a strict sink holds nothing back
        await until(lambda: batches == [["hooks-4"]])
        await h.append("other")  # 5, behind 4 in the line
        await h.admin.replay("hooks", None, actor="ops")
        await until_async(lambda: _no_commands(h))
        gate.set()
        await until_async(lambda: _at(h, 5))
    finally:
        await h.stop()
    sent = [i for batch in batches for i in batch]
    assert sent == ["hooks-4", "hooks-1", "hooks-2", "hooks-3", "hooks-5"]


async def test_a_sink_that_answers_part_of_a_batch_gets_the_rest_again() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    answer = sink.deliver

    async def first_only(deliveries: Sequence[Delivery]) -> list[Outcome]:
        return (await answer(deliveries))[:1]  # stops after the first, as a sink may

    sink.deliver = first_only  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 1})
    await h.append("a", "b", "c")  # three entities: one batch of their heads
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _at(h, 3))
    finally:
        await h.stop()
    sent = [i for i, _ in sink.attempts]
    assert sent == ["hooks-1", "hooks-2", "hooks-3", "hooks-2", "hooks-3", "hooks-3"]


async def test_one_failed_event_of_a_batch_leaves_the_others_of_it_delivered_once() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad"))
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 1, "retry": {"delays_s": []}})
    await h.append("bad", "b", "c")  # one batch; the first fails and parks
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _at(h, 3))
        await until_async(lambda: _parked(h, 1))
        await asyncio.sleep(0.05)
    finally:
        await h.stop()
    assert [i for i, _ in sink.attempts] == ["hooks-1", "hooks-2", "hooks-3"]


MOVED = {**HOOK, "url": "http://127.0.0.1:9/moved"}


async def _move_sink(h: Harness) -> bool:
    """The `hooks` subscription updated to deliver to MOVED; True if that created it."""
    created, _ = await h.admin.put("hooks", {"start": "earliest", "sink": MOVED}, actor="ops")
    return created


async def test_an_updated_sink_takes_effect_without_a_restart() -> None:
    h = Harness()
    sinks: dict[str, ScriptedSink] = {}
    built: list[str] = []

    def factory(config: SubscriptionConfig) -> Sink:
        url = config.sink["url"]
        built.append(url)
        return sinks.setdefault(url, ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED)))

    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    await h.start(h.worker("hooks", sink_factory=factory))
    try:
        await until_async(lambda: _at(h, 1))
        assert not await _move_sink(h)
        await until(lambda: len(built) == 2)  # the worker built the new sink
        await h.append("b")
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    assert built == [HOOK["url"], MOVED["url"]]
    assert [i for i, _ in sinks[HOOK["url"]].attempts] == ["hooks-1"]
    assert [i for i, _ in sinks[MOVED["url"]].attempts] == ["hooks-2"]
    assert sinks[HOOK["url"]].closed == 1  # the old one was closed


async def test_a_busy_worker_reads_its_subscription_record_once_per_poll_not_per_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append(*["a"] * 20)  # one entity: twenty deliveries, one after the other
    gets = calls_of(monkeypatch, h.store.subscriptions, "get")
    worker = h.worker("hooks", sink_factory=lambda c: sink, poll_s=60.0)
    await h.start(worker)
    try:
        await until(lambda: len(sink.attempts) == 20)
        await until(lambda: worker.checkpoint == 20)
        # what it remembers of settled events does not grow with the log it has delivered
        assert (worker.above, worker.persisted_above) == (set(), set())
    finally:
        await h.stop()
    assert [i for i, _ in sink.attempts] == [f"hooks-{n}" for n in range(1, 21)]
    assert len(gets) <= 2  # loading it, and perhaps a first look for commands


async def test_a_sink_back_off_shorter_than_a_delivery_in_flight_ends_on_time() -> None:
    """Another lane's delivery still in flight, the backed-off one goes out again when the
    sink's pause ends, not when the slow one does."""
    h = Harness()
    t0 = h.clock.now()
    gate = asyncio.Event()
    busy = [True]

    async def deliver(deliveries: Sequence[Delivery]) -> list[Outcome]:
        out = []
        for d in deliveries:
            sink.attempts.append((d.id, h.clock.now()))
            if d.event.entity_key == "slow":
                await gate.wait()
                out.append(Outcome(status=DELIVERED))
            elif busy[0]:
                busy[0] = False
                out.append(Outcome(status=SINK_FAILED, detail="busy", retry_after=0.25))
            else:
                out.append(Outcome(status=DELIVERED))
        return out

    sink = ScriptedSink(h.clock, lambda d: Outcome(status=DELIVERED))
    sink.deliver = deliver  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 2})
    await h.append("slow")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, entity_batch=1))
    try:
        await until(lambda: len(sink.attempts) == 1)  # slow is in flight
        await h.append("ok")
        await until(lambda: [i for i, _ in sink.attempts].count("hooks-2") == 2)
        gate.set()
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    ok = [at - t0 for i, at in sink.attempts if i == "hooks-2"]
    assert ok[1] - ok[0] == timedelta(seconds=0.25)


async def test_an_old_sink_that_fails_to_close_after_an_update_leaves_no_unretrieved_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The old sink closes in the background; its failure must not surface later as
    asyncio's "Task exception was never retrieved" (logged when the task is collected)."""
    import gc

    h = Harness()

    class FailsToClose(ScriptedSink):
        async def close(self) -> None:
            raise RuntimeError("the old connection is already gone")

    built: list[ScriptedSink] = []

    def factory(config: SubscriptionConfig) -> Sink:
        sink = (FailsToClose if not built else ScriptedSink)(
            h.clock, lambda d: Outcome(status=DELIVERED)
        )
        built.append(sink)
        return sink

    caplog.set_level(logging.ERROR, logger="asyncio")
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    await h.start(h.worker("hooks", sink_factory=factory))
    try:
        await until_async(lambda: _at(h, 1))
        await _move_sink(h)
        await until(lambda: len(built) == 2)
        await asyncio.sleep(0.05)  # the old sink's close has run and failed
        gc.collect()
    finally:
        await h.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_a_worker_that_takes_over_keeps_the_last_error_and_delivery_time_shown() -> None:
    h = Harness()
    sink = ScriptedSink(h.clock, failing("bad", detail="the receiver said no"))
    await h.subscribe("hooks", {"sink": HOOK, "retry": {"delays_s": []}})
    await h.append("ok", "bad")  # 1 delivered, 2 fails and parks
    await h.start(h.worker("hooks", sink_factory=lambda c: sink))
    try:
        await until_async(lambda: _parked(h, 1))
        await until_async(lambda: _at(h, 2))
        await until_async(lambda: _delivered(h, 1))
    finally:
        await h.stop()
    before = await _status(h)
    assert before["last_error"] == "the receiver said no" and before["last_delivery_at"]
    h.supervisors.clear()  # another instance takes the subscription over
    taken = await h.start(h.worker("hooks", owner="b", sink_factory=lambda c: sink), instance="b")
    try:
        await until(lambda: taken.state == RUNNING)  # it holds the lease and has loaded
        await asyncio.sleep(0.2)  # and has polled its commands, saving its counters
    finally:
        await h.stop()
    after = await _status(h)
    assert {k: after[k] for k in ("delivered", "last_error", "last_delivery_at")} == {
        k: before[k] for k in ("delivered", "last_error", "last_delivery_at")
    }


async def test_a_stop_lets_a_delivery_in_flight_end_and_records_it_so_it_is_not_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.subscriptions")
    h = Harness()
    gate = asyncio.Event()
    sent: list[str] = []

    async def slow(deliveries: Sequence[Delivery]) -> list[Outcome]:
        sent.extend(d.id for d in deliveries)
        await gate.wait()  # the receiver answers while the service is stopping
        return [Outcome(status=DELIVERED) for _ in deliveries]

    sink = ScriptedSink(h.clock, failing("nobody"))
    sink.deliver = slow  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    await h.start(h.worker("hooks", sink_factory=lambda c: sink, drain_s=1.5))
    await until(lambda: sent == ["hooks-1"])
    stopping = asyncio.ensure_future(h.stop())
    await until(lambda: h.supervisors[0].stopping.is_set())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # the stop waits for the delivery in flight
    gate.set()
    await stopping
    said = [r.getMessage() for r in caplog.records if "in flight" in r.getMessage()]
    assert said == ["subscription hooks: stopping, waiting up to 1.5s for deliveries in flight (1)"]
    assert await h.position("hooks") == 1
    assert (await _status(h))["delivered"] == 1
    # the next run starts after it: the receiver is not sent seq 1 again
    h.supervisors.clear()
    again = ScriptedSink(h.clock, failing("nobody"))
    await h.append("b")
    await h.start(h.worker("hooks", sink_factory=lambda c: again), instance="again")
    try:
        await until_async(lambda: _at(h, 2))
    finally:
        await h.stop()
    assert [i for i, _ in again.attempts] == ["hooks-2"]


async def test_a_delivery_still_in_flight_when_the_drain_ends_is_cancelled_and_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.subscriptions")
    h = Harness()
    cancelled: list[str] = []

    async def hung(deliveries: Sequence[Delivery]) -> list[Outcome]:
        try:
            await asyncio.Event().wait()  # a receiver that never answers
        except asyncio.CancelledError:
            cancelled.extend(d.id for d in deliveries)
            raise
        raise AssertionError("unreachable")

    sink = ScriptedSink(h.clock, failing("nobody"))
    sink.deliver = hung  # type: ignore[method-assign]
    await h.subscribe("hooks", {"sink": HOOK})
    await h.append("a")
    supervised = await h.start(h.worker("hooks", sink_factory=lambda c: sink, drain_s=0.2))
    await until(lambda: supervised.state == RUNNING)
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await h.stop()  # its grace is 2 s; the drain gives up after a tenth of that
    assert asyncio.get_running_loop().time() - started < 2.0
    assert cancelled == ["hooks-1"]
    assert await h.position("hooks") == 0
    said = [r.getMessage() for r in caplog.records if "in flight" in r.getMessage()]
    assert said == [
        "subscription hooks: stopping, waiting up to 0.2s for deliveries in flight (1)",
        "subscription hooks: deliveries still in flight at the stop (1) go out again on the next run",
    ]
    h.supervisors.clear()
    again = ScriptedSink(h.clock, failing("nobody"))
    await h.start(h.worker("hooks", sink_factory=lambda c: again), instance="again")
    try:
        await until_async(lambda: _at(h, 1))
    finally:
        await h.stop()
    assert [i for i, _ in again.attempts] == ["hooks-1"]  # at least once
