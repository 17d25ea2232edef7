"""A back-off of the whole sink: counted as it happens, one step per failed round, a floor under
`Retry-After: 0`, and ended by a pause, a resume, a reset or a stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from eventstore.clock import FakeClock
from eventstore.subscriptions.sinks.base import DELIVERED, SINK_FAILED, Delivery, Outcome
from eventstore.worker_state import PAUSED, RETRYING, RUNNING
from tests.realsinks import SECRET, Receiver
from tests.subscribing import Harness, until, until_async


class WaitingClock(FakeClock):
    """A fake clock whose `sleep` waits until the test moves the time past its end.

    So a back-off is a real wait, as on the system clock, but its length is the test's.
    """

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._moved = asyncio.Event()

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers."""
        super().advance(seconds)
        self._moved.set()

    async def sleep(self, seconds: float) -> None:
        """Return once the time is `seconds` later than now (never before)."""
        until_time = self.now() + timedelta(seconds=seconds)
        while self.now() < until_time:
            self._moved.clear()
            await self._moved.wait()
        await asyncio.sleep(0)


def waiting_harness() -> Harness:
    return Harness(WaitingClock(datetime.now().astimezone()))


class GatedSink:
    """Every delivery waits at a gate, then fails as a whole sink (`down`) or is delivered."""

    strict = False
    max_batch: int | None = 1

    def __init__(self, detail: str = "the receiver answered 503") -> None:
        self.gate = asyncio.Event()
        self.down = True
        self.detail = detail
        self.waiting = 0
        self.attempts: list[str] = []

    async def check(self) -> Outcome | None:
        return None

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        out = []
        for d in deliveries:
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
            self.attempts.append(d.id)
            out.append(
                Outcome(status=SINK_FAILED, detail=self.detail)
                if self.down
                else Outcome(status=DELIVERED)
            )
        return out

    async def close(self) -> None:
        return None


HOOK = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": SECRET}


async def test_lanes_failing_together_are_one_back_off_step_counted_at_once_in_the_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = waiting_harness()
    sink = GatedSink()
    await h.subscribe("hooks", {"sink": HOOK, "lanes": 8})
    for _ in range(2):
        await h.append(*[f"e{i}" for i in range(8)])  # 16 events over 8 entities
    worker = h.worker("hooks", sink_factory=lambda c: sink, backoff_first=1.0, backoff_cap=300)
    supervised = await h.start(worker)
    try:
        await until(lambda: sink.waiting == 8)  # every lane in flight at once
        sink.gate.set()  # ... and every one fails at one moment
        await until(lambda: supervised.state == RETRYING)
        backs_off = [r.getMessage() for r in caplog.records if "backs off" in r.getMessage()]
        assert len(backs_off) == 1  # one failed round: one line, one step
        assert worker.backoff.attempts == 1
        assert worker.sink_until is not None
        assert 0.5 <= (worker.sink_until - h.clock.now()).total_seconds() <= 1.0
        # The status counts every failed attempt now, with the current reason.
        status = await h.admin.status(await h.admin.get("hooks"))
        assert (status["failed_attempts"], status["last_error"]) == (
            8,
            "the receiver answered 503",
        )
        assert supervised.last_error == "the receiver answered 503"
        # The next round fails for another reason: the status says the current one.
        sink.detail = "the receiver answered 429"
        h.clock.advance(1.0)
        await until(lambda: len(sink.attempts) == 16)
        await until(lambda: worker.backoff.attempts == 2)
        await until_async(lambda: _failures_saved(h, 16))
        status = await h.admin.status(await h.admin.get("hooks"))
        assert status["last_error"] == "the receiver answered 429"
        backs_off = [r.getMessage() for r in caplog.records if "backs off" in r.getMessage()]
        assert len(backs_off) == 2
        sink.down = False
        h.clock.advance(2.0)
        await until_async(lambda: _at(h, 16))
    finally:
        await h.stop()
    status = await h.admin.status(await h.admin.get("hooks"))
    assert (status["delivered"], status["failed_attempts"], status["last_error"]) == (16, 16, None)


async def _failures_saved(h: Harness, n: int) -> bool:
    return (await h.admin.get("hooks")).failed_attempts == n


async def _at(h: Harness, position: int) -> bool:
    return await h.position("hooks") == position


@pytest.mark.parametrize("retry_after", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_a_retry_after_of_zero_or_in_the_past_waits_the_back_off_step(
    receiver: Receiver, retry_after: str
) -> None:
    h = waiting_harness()
    receiver.rule = lambda p: (503, {"retry-after": retry_after})
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}})
    await h.append("a")
    worker = h.worker("hooks", backoff_first=1.0)
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING)
        # Not a tight loop: the next attempt waits the normal step (1 s, jitter 0.5) ...
        assert worker.sink_until is not None
        assert 0.5 <= (worker.sink_until - h.clock.now()).total_seconds() <= 1.0
        assert receiver.attempts == ["hooks-1"]
        # ... and the step grows with each failed round.
        h.clock.advance(1.0)
        await until(lambda: len(receiver.attempts) == 2)
        await until(lambda: worker.backoff.attempts == 2)
        assert 1.0 <= (worker.sink_until - h.clock.now()).total_seconds() <= 2.0
    finally:
        await h.stop()


async def test_a_pause_takes_effect_during_a_back_off_and_a_resume_retries_at_once(
    receiver: Receiver,
) -> None:
    h = waiting_harness()
    down = [True]
    receiver.rule = lambda p: (503, {"retry-after": "3600"}) if down[0] else (200, {})
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}})
    await h.append("a")
    worker = h.worker("hooks")
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING)
        h.clock.advance(1)  # the operator acts a second later (within the hour)
        await h.admin.pause("hooks", actor="ops")
        await until(lambda: supervised.state == PAUSED)
        down[0] = False
        h.clock.advance(1)
        await h.admin.resume("hooks", actor="ops")
        await until(lambda: receiver.ids == ["hooks-1"])  # within the hour of Retry-After
        await until(lambda: supervised.state == RUNNING)
    finally:
        await h.stop()
    assert receiver.attempts == ["hooks-1", "hooks-1"]


async def test_a_resume_of_a_running_subscription_ends_its_back_off(receiver: Receiver) -> None:
    h = waiting_harness()
    down = [True]
    receiver.rule = lambda p: (503, {"retry-after": "3600"}) if down[0] else (200, {})
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}})
    await h.append("a")
    supervised = await h.start(h.worker("hooks"))
    try:
        await until(lambda: supervised.state == RETRYING)
        down[0] = False
        h.clock.advance(1)  # the operator acts a second later (within the hour)
        await h.admin.resume("hooks", actor="ops")  # it was not paused: it tries again now
        await until(lambda: receiver.ids == ["hooks-1"])
    finally:
        await h.stop()


async def test_a_reset_during_a_back_off_delivers_again_at_once(receiver: Receiver) -> None:
    h = waiting_harness()
    down = [True]
    receiver.rule = lambda p: (503, {"retry-after": "3600"}) if down[0] else (200, {})
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}})
    await h.append("a", "b")
    supervised = await h.start(h.worker("hooks"))
    try:
        await until(lambda: supervised.state == RETRYING)
        down[0] = False
        await h.admin.reset("hooks", {"seq": 2}, actor="ops")
        await until(lambda: receiver.ids == ["hooks-2"])
    finally:
        await h.stop()


async def test_a_stop_ends_a_back_off_wait_at_once(receiver: Receiver) -> None:
    h = waiting_harness()
    receiver.rule = lambda p: (503, {"retry-after": "3600"})
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}})
    await h.append("a")
    supervised = await h.start(h.worker("hooks"))
    grace = 20.0
    await until(lambda: supervised.state == RETRYING)
    started = time.monotonic()
    await h.supervisors[0].stop(grace=grace)
    # Nothing was in flight: the stop does not wait for its grace (a tenth of it is plenty).
    assert time.monotonic() - started < grace / 10
    assert supervised.state == "stopped"


async def test_the_status_counts_a_failed_attempt_and_its_reason_while_the_sink_backs_off(
    receiver: Receiver,
) -> None:
    h = waiting_harness()
    answers = iter([(500, {}), (503, {"retry-after": "3600"})])
    receiver.rule = lambda p: next(answers, (200, {}))
    await h.subscribe(
        "hooks",
        {
            "sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET},
            "retry": {"delays_s": [5], "jitter": 0},
        },
    )
    await h.append("a")
    supervised = await h.start(h.worker("hooks"))
    try:
        await until_async(lambda: _failures_saved(h, 1))  # the 500: a failure of the event
        h.clock.advance(5)  # its retry is answered 503 with an hour's Retry-After
        await until(lambda: supervised.state == RETRYING)
        await until_async(lambda: _failures_saved(h, 2))  # counted now, not in an hour
        status = await h.admin.status(await h.admin.get("hooks"))
        assert (status["failed_attempts"], status["last_error"]) == (
            2,
            f"the receiver 127.0.0.1:{receiver.port} answered 503",  # the current reason
        )
    finally:
        await h.stop()
    assert receiver.attempts == ["hooks-1", "hooks-1"]
