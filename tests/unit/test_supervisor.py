"""The supervisor: transient failures retried with back-off, fatal ones stop only their worker."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from eventstore.clock import FakeClock
from eventstore.failures import Backoff
from eventstore.memory.workers import MemoryWorkers
from eventstore.supervisor import Progress, Supervisor, WorkerContext
from eventstore.worker_state import FAILED, RETRYING, RUNNING, STOPPED, WorkerRecord
from tests.supervision import ScriptedWorker, SleepRecordingClock, until


def supervisor(clock: FakeClock, **kwargs: object) -> Supervisor:
    return Supervisor(
        clock=clock,
        instance="host:1:abc",
        lease_seconds=10,
        rng_seed=1,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_transient_failures_are_retried_with_growing_capped_backoff() -> None:
    clock = SleepRecordingClock()
    sup = supervisor(clock)
    worker = ScriptedWorker("ingester:shop", [AutoReconnect("gone")] * 10)
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)

    entry = sup.get("ingester:shop")
    assert entry is not None
    assert worker.runs == 11 and entry.restarts == 10 and entry.state == RUNNING
    # 0.1 s doubling to the 30 s cap, each jittered down by at most half.
    ceilings = [min(30.0, 0.1 * 2**i) for i in range(10)]
    assert len(clock.slept) == 10
    assert all(c / 2 <= d <= c for c, d in zip(ceilings, clock.slept, strict=True))
    assert clock.slept[-1] > 15.0  # at the cap
    assert entry.last_error == "AutoReconnect: gone"
    assert entry.trouble_since is None  # healthy again
    await sup.stop()
    assert entry.state == STOPPED and worker.closed


async def test_a_fatal_failure_stops_only_that_worker_until_restarted() -> None:
    clock = SleepRecordingClock()
    sup = supervisor(clock, secrets=["adminkey"])
    bad = ScriptedWorker("ingester:shop", [OperationFailure("not authorized (key adminkey)", 13)])
    good = ScriptedWorker("projection:order_summary", [], kind="projection")
    sup.add(bad)
    sup.add(good)
    await sup.start()
    await asyncio.wait_for(sup.wait("ingester:shop"), 5)
    await asyncio.wait_for(good.running.wait(), 5)

    failed = sup.get("ingester:shop")
    assert failed is not None and failed.state == FAILED and bad.runs == 1
    assert failed.last_error == "OperationFailure: not authorized (key ***)"
    assert clock.slept == []  # not retried
    assert sup.trouble("ingester:shop", 30) == (
        "ingester:shop failed: OperationFailure: not authorized (key ***)"
    )
    assert sup.get("projection:order_summary").state == RUNNING  # type: ignore[union-attr]

    with pytest.raises(ValueError):
        await sup.restart("projection:order_summary")  # running: nothing to restart
    with pytest.raises(KeyError):
        await sup.restart("projection:nope")
    restarted = await sup.restart("ingester:shop")
    await asyncio.wait_for(bad.running.wait(), 5)
    assert restarted.state == RUNNING and restarted.restarts == 1 and bad.runs == 2
    assert sup.trouble("ingester:shop", 30) is None
    await sup.stop()


async def test_two_restarts_at_once_launch_the_worker_once() -> None:
    # The second comes before the relaunched task has run: the worker is still `failed`,
    # but its new task exists, so it is refused rather than launched a second time.
    clock = SleepRecordingClock()
    sup = supervisor(clock)
    bad = ScriptedWorker("ingester:shop", [OperationFailure("not authorized", 13)])
    sup.add(bad)
    await sup.start()
    await asyncio.wait_for(sup.wait("ingester:shop"), 5)
    results = await asyncio.gather(
        sup.restart("ingester:shop"), sup.restart("ingester:shop"), return_exceptions=True
    )
    await asyncio.wait_for(bad.running.wait(), 5)
    refused = [r for r in results if isinstance(r, ValueError)]
    assert len(refused) == 1
    assert str(refused[0]) == "ingester:shop is failed: only a failed or stopped worker restarts"
    entry = sup.get("ingester:shop")
    assert entry is not None and (entry.restarts, bad.runs) == (1, 2)
    await sup.stop()


async def test_a_bug_is_fatal_not_retried_forever() -> None:
    clock = SleepRecordingClock()
    sup = supervisor(clock)
    worker = ScriptedWorker("projection:p", [ZeroDivisionError("division by zero")] * 100)
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(sup.wait("projection:p"), 5)
    assert worker.runs == 1 and sup.get("projection:p").state == FAILED  # type: ignore[union-attr]
    await sup.stop()


async def test_retrying_past_unhealthy_after_is_trouble_until_healthy_again() -> None:
    clock = FakeClock(advance_on_sleep=False)
    sup = supervisor(clock)
    gate = asyncio.Event()

    class Flaky(ScriptedWorker):
        async def run(self, ctx: WorkerContext) -> None:
            self.runs += 1
            if not gate.is_set():
                raise AutoReconnect("connection refused")
            ctx.report(RUNNING)
            ctx.healthy()
            self.running.set()
            await ctx.stop.wait()

    worker = Flaky("ingester:shop", [])
    sup.add(worker)
    await sup.start()
    entry = sup.get("ingester:shop")
    assert entry is not None
    await until(lambda: entry.state == RETRYING)
    assert sup.trouble("ingester:shop", 30) is None
    clock.advance(29)
    assert sup.trouble("ingester:shop", 30) is None
    clock.advance(1)
    assert sup.trouble("ingester:shop", 30) is None  # exactly the limit: not yet
    clock.advance(1)
    assert sup.trouble("ingester:shop", 30) == (
        "ingester:shop has been retrying for 31s: AutoReconnect: connection refused"
    )
    gate.set()
    await asyncio.wait_for(worker.running.wait(), 5)
    assert sup.trouble("ingester:shop", 30) is None
    await sup.stop()


async def test_each_state_change_is_one_json_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.workers")
    sup = supervisor(SleepRecordingClock())
    worker = ScriptedWorker("ingester:shop", [AutoReconnect("blip")])
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    await sup.stop()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert [(line["previous"], line["state"]) for line in lines] == [
        ("stopped", "starting"),
        ("starting", "running"),
        ("running", "retrying"),
        ("retrying", "starting"),
        ("starting", "running"),
        ("running", "stopped"),
    ]
    assert lines[2]["error"] == "AutoReconnect: blip" and lines[2]["worker"] == "ingester:shop"
    assert {line["instance"] for line in lines} == {"host:1:abc"}


async def test_states_are_published_and_removed_on_a_clean_stop() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryWorkers()
    sup = supervisor(clock, workers=store)
    worker = ScriptedWorker("projection:order_summary", [], kind="projection")
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    await sup.publish()
    [record] = await store.all()
    assert (record.name, record.kind, record.instance, record.state) == (
        "projection:order_summary",
        "projection",
        "host:1:abc",
        RUNNING,
    )
    assert (record.position, record.lag, record.restarts, record.last_error) == (1, 0, 0, None)
    await sup.stop()
    assert await store.all() == []


class RecordingMetrics:
    """A `WorkerMetrics` that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []

    def worker_state(self, worker: str, state: str) -> None:
        self.calls.append(("state", worker, state))

    def worker_added(self, worker: str) -> None:
        self.calls.append(("added", worker, None))

    def worker_restarted(self, worker: str) -> None:
        self.calls.append(("restarted", worker, None))

    def capture_lag(self, worker: str, seconds: float) -> None:
        self.calls.append(("lag", worker, seconds))

    def worker_problem(self, worker: str, standing: bool) -> None:
        self.calls.append(("problem", worker, standing))

    def worker_removed(self, worker: str) -> None:
        self.calls.append(("removed", worker, None))


async def test_a_standing_problem_is_shown_counted_and_logged_until_it_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.workers")
    metrics = RecordingMetrics()
    changes: list[tuple[str, str | None]] = []
    sup = supervisor(
        SleepRecordingClock(),
        metrics=metrics,
        on_change=lambda r: changes.append((r.state, r.last_error)),
    )
    go_on = asyncio.Event()

    class Troubled(ScriptedWorker):
        async def run(self, ctx: WorkerContext) -> None:
            ctx.report(RUNNING)
            ctx.problem("signing key unreadable")
            ctx.problem("signing key unreadable")  # the same problem again: no new line
            self.running.set()
            await go_on.wait()
            ctx.problem(None)
            await ctx.stop.wait()

    worker = Troubled("ingester:shop", [])
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    entry = sup.get("ingester:shop")
    assert entry is not None
    assert (entry.state, entry.problem, entry.last_error) == (
        RUNNING,
        "signing key unreadable",
        "signing key unreadable",
    )
    go_on.set()
    await until(lambda: entry.problem is None)
    assert entry.last_error is None  # the problem was the last error: it is over
    await sup.stop()

    assert metrics.calls == [
        ("added", "ingester:shop", None),
        ("state", "ingester:shop", "starting"),
        ("state", "ingester:shop", "running"),
        ("problem", "ingester:shop", True),
        ("problem", "ingester:shop", False),
        ("state", "ingester:shop", "stopped"),
    ]
    assert changes == [
        ("starting", None),
        ("running", None),
        ("running", "signing key unreadable"),
        ("running", None),
        ("stopped", None),
    ]
    problems = [
        (r.levelno, json.loads(r.getMessage()))
        for r in caplog.records
        if r.getMessage().startswith("{") and "problem" in json.loads(r.getMessage())
    ]
    line = {"worker": "ingester:shop", "kind": "capture", "instance": "host:1:abc"}
    assert problems == [
        (logging.ERROR, {**line, "state": "running", "problem": "signing key unreadable"}),
        (logging.INFO, {**line, "state": "running", "problem": None}),
    ]


async def test_a_problem_over_keeps_a_later_error_and_restarts_are_counted() -> None:
    metrics = RecordingMetrics()
    sup = supervisor(SleepRecordingClock(), metrics=metrics)
    go_on = asyncio.Event()

    class Worker(ScriptedWorker):
        async def run(self, ctx: WorkerContext) -> None:
            self.runs += 1
            ctx.report(RUNNING)
            if self.runs == 1:
                ctx.problem("lagging")
                raise AutoReconnect("blip")  # a later error replaces the problem's text
            await go_on.wait()
            ctx.problem(None)
            self.running.set()
            await ctx.stop.wait()

    worker = Worker("ingester:shop", [])
    sup.add(worker)
    await sup.start()
    go_on.set()
    await asyncio.wait_for(worker.running.wait(), 5)
    entry = sup.get("ingester:shop")
    assert entry is not None
    assert (entry.problem, entry.last_error, entry.restarts) == (None, "AutoReconnect: blip", 1)
    assert metrics.calls.count(("restarted", "ingester:shop", None)) == 1
    await sup.stop()


async def test_restart_says_why_it_refuses_and_starts_a_stopped_or_failed_worker_afresh() -> None:
    idle = ScriptedWorker("projection:p", [], kind="projection")
    sup = supervisor(SleepRecordingClock())
    sup.add(idle)
    # added to a supervisor not started: stopped, with no task; restart starts it
    started = await sup.restart("projection:p")
    await asyncio.wait_for(idle.running.wait(), 5)
    assert (started.state, started.restarts, idle.runs) == (RUNNING, 1, 1)
    with pytest.raises(KeyError, match="projection:nope"):
        await sup.restart("projection:nope")
    with pytest.raises(
        ValueError, match=r"^projection:p is running: only a failed or stopped worker restarts$"
    ):
        await sup.restart("projection:p")
    await sup.stop()
    with pytest.raises(ValueError, match=r"^the supervisor is stopping$"):
        await sup.restart("projection:p")

    bad = ScriptedWorker("ingester:shop", [OperationFailure("not authorized", 13)])
    sup = supervisor(SleepRecordingClock())
    sup.add(bad)
    await sup.start()
    await asyncio.wait_for(sup.wait("ingester:shop"), 5)
    failed = sup.get("ingester:shop")
    assert failed is not None and isinstance(failed.failure, OperationFailure)
    again = await sup.restart("ingester:shop")
    await asyncio.wait_for(bad.running.wait(), 5)
    assert again.failure is None and again.state == RUNNING and again.restarts == 1
    await sup.stop()


async def test_a_removed_worker_is_stopped_and_leaves_no_record_and_no_series() -> None:
    metrics = RecordingMetrics()
    store = MemoryWorkers()
    sup = supervisor(FakeClock(advance_on_sleep=False), workers=store, metrics=metrics)
    kept = ScriptedWorker("projection:p", [], kind="projection")
    running = ScriptedWorker("subscription:a", [], kind="subscription")
    failed = ScriptedWorker("subscription:b", [ValueError("bug")], kind="subscription")
    for w in (kept, running, failed):
        sup.add(w)
    await sup.start()
    await asyncio.wait_for(running.running.wait(), 5)
    await asyncio.wait_for(sup.wait("subscription:b"), 5)
    await sup.publish()
    assert [(r.name, r.state) for r in await store.all()] == [
        ("projection:p", RUNNING),
        ("subscription:a", RUNNING),
        ("subscription:b", FAILED),
    ]
    task = sup.get("subscription:a").task  # type: ignore[union-attr]
    await sup.remove("subscription:a")
    await sup.remove("subscription:b")
    await sup.remove("subscription:nope")  # nothing to remove: nothing happens
    assert task is not None and task.cancelled() and running.closed and failed.closed
    assert [s.name for s in sup.workers] == ["projection:p"]
    assert [r.name for r in await store.all()] == ["projection:p"]
    assert ("removed", "subscription:a", None) in metrics.calls
    assert metrics.calls[-1] == ("removed", "subscription:b", None)
    with pytest.raises(KeyError):
        await sup.restart("subscription:b")
    # A later publication writes none of them back; a worker of the name added again is recorded.
    await sup.publish()
    assert [r.name for r in await store.all()] == ["projection:p"]
    again = ScriptedWorker("subscription:a", [], kind="subscription")
    sup.add(again)
    await asyncio.wait_for(again.running.wait(), 5)
    await sup.publish()
    assert [r.name for r in await store.all()] == ["projection:p", "subscription:a"]
    await sup.stop()


class _RemoveAway(MemoryWorkers):
    """Refuses to remove one worker's record while `away` is set."""

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__()
        self.away = True
        self.hang = hang

    async def remove_worker(self, instance: str, name: str) -> None:
        if self.away and self.hang:  # a store that never answers
            await asyncio.Event().wait()
        if self.away:
            raise AutoReconnect("the store is away (key sk-9)")
        await super().remove_worker(instance, name)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "eventstore.workers"]


async def test_a_record_the_store_would_not_remove_goes_at_the_next_publication(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.workers")
    store = _RemoveAway()
    sup = supervisor(FakeClock(advance_on_sleep=False), workers=store, secrets=["sk-9"])
    worker = ScriptedWorker("subscription:a", [], kind="subscription")
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    await sup.publish()
    await sup.remove("subscription:a")
    assert [r.name for r in await store.all()] == ["subscription:a"]
    # said as it is, the store's words with the secret masked
    assert _said(caplog)[-2:] == [
        "worker subscription:a removed",
        "could not remove the state of worker subscription:a yet: "
        "AutoReconnect: the store is away (key ***)",
    ]
    store.away = False
    await sup.publish()
    assert await store.all() == []
    await sup.stop()


async def test_removing_a_worker_waits_for_a_store_that_does_not_answer_only_so_long(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is removed at once when the store answers; a store that hangs holds the
    removal back only `REMOVE_SECONDS` (the next publication removes the record)."""
    monkeypatch.setattr("eventstore.supervisor.REMOVE_SECONDS", 0.05)
    store = _RemoveAway(hang=True)
    sup = supervisor(FakeClock(advance_on_sleep=False), workers=store)
    worker = ScriptedWorker("subscription:a", [], kind="subscription")
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    await sup.publish()
    await asyncio.wait_for(sup.remove("subscription:a"), 5)
    assert worker.closed and sup.workers == []
    assert (
        _said(caplog)[-1] == "could not remove the state of worker subscription:a yet: TimeoutError"
    )
    store.away = False
    await sup.publish()
    assert await store.all() == []
    await sup.stop()


class Lagging(ScriptedWorker):
    """Runs until stopped; its progress is set by the test (or fails)."""

    def __init__(self, name: str, kind: str, progress: Progress | None) -> None:
        super().__init__(name, [], kind=kind)
        self.next: Progress | None = progress

    async def progress(self) -> Progress:
        if self.next is None:
            raise AutoReconnect("store away")
        return self.next


async def test_records_carry_fresh_progress_and_the_capture_lag_goes_to_the_metrics() -> None:
    metrics = RecordingMetrics()
    clock = FakeClock(advance_on_sleep=False)
    sup = supervisor(clock, metrics=metrics)
    capture = Lagging("ingester:shop", "capture", Progress(position=7, lag=3, lag_seconds=2.5))
    projection = Lagging("projection:p", "projection", Progress(position=4, lag=1, lag_seconds=9.0))
    unknown = Lagging("ingester:other", "capture", Progress(position=1, lag=None))
    for w in (capture, projection, unknown):
        sup.add(w)
    await sup.start()
    await asyncio.wait_for(projection.running.wait(), 5)
    records = {r.name: r for r in await sup.records()}
    assert (records["ingester:shop"].position, records["ingester:shop"].lag) == (7, 3)
    assert records["ingester:shop"].lag_seconds == 2.5
    assert (records["projection:p"].position, records["projection:p"].lag_seconds) == (4, 9.0)
    assert records["ingester:other"].lag_seconds is None
    assert [c for c in metrics.calls if c[0] == "lag"] == [("lag", "ingester:shop", 2.5)]
    # the store away: the last progress stands
    capture.next = None
    again = {r.name: r for r in await sup.records()}
    assert (again["ingester:shop"].position, again["ingester:shop"].lag) == (7, 3)
    assert again["ingester:shop"].updated_at == clock.now()
    await sup.stop()


async def test_a_worker_name_runs_once_and_a_worker_added_later_starts_at_once() -> None:
    sup = supervisor(SleepRecordingClock())
    await sup.start()
    first = ScriptedWorker("projection:p", [], kind="projection")
    sup.add(first)
    await asyncio.wait_for(first.running.wait(), 5)  # added to a running supervisor: started
    with pytest.raises(ValueError, match=r"^a worker named projection:p is already running$"):
        sup.add(ScriptedWorker("projection:p", [], kind="projection"))
    failing = ScriptedWorker("ingester:shop", [ValueError("bug")])
    sup.add(failing)
    await asyncio.wait_for(sup.wait("ingester:shop"), 5)
    replacement = ScriptedWorker("ingester:shop", [])
    sup.add(replacement)  # the failed one may be replaced
    await asyncio.wait_for(replacement.running.wait(), 5)
    assert [s.name for s in sup.workers] == ["projection:p", "ingester:shop"]
    assert sup.get("ingester:shop") is not None and sup.get("nope") is None
    assert sup.trouble("nope", 0) is None
    await sup.stop()


async def test_a_fatal_bug_logs_its_traceback_an_expected_failure_only_its_state_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.workers")
    sup = supervisor(SleepRecordingClock())
    sup.add(ScriptedWorker("projection:bug", [ZeroDivisionError("division by zero")]))
    sup.add(ScriptedWorker("ingester:auth", [OperationFailure("not authorized", 13)]))
    await sup.start()
    await asyncio.wait_for(sup.wait("projection:bug"), 5)
    await asyncio.wait_for(sup.wait("ingester:auth"), 5)
    await sup.stop()
    tracebacks = [(r.levelno, r.getMessage()) for r in caplog.records if r.exc_info]
    assert tracebacks == [
        (logging.ERROR, "worker projection:bug failed: ZeroDivisionError: division by zero")
    ]
    failed = [
        (r.levelno, json.loads(r.getMessage()))
        for r in caplog.records
        if r.getMessage().startswith("{") and '"failed"' in r.getMessage()
    ]
    assert [(level, line["worker"], line["error"]) for level, line in failed] == [
        (logging.WARNING, "projection:bug", "ZeroDivisionError: division by zero"),
        (logging.WARNING, "ingester:auth", "OperationFailure: not authorized"),
    ]
    states = {
        json.loads(r.getMessage())["state"]: r.levelno
        for r in caplog.records
        if r.getMessage().startswith("{")
    }
    assert states == {"starting": logging.INFO, "running": logging.INFO, "failed": logging.WARNING}


class FlakyWorkers(MemoryWorkers):
    """A Workers store that refuses writes while `away` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.away = False
        self.puts = 0

    async def put(self, records: Sequence[WorkerRecord]) -> None:
        self.puts += 1
        if self.away:
            raise AutoReconnect("workers store away (key sk-123)")
        await super().put(records)

    async def remove(self, instance: str) -> None:
        if self.away:
            raise AutoReconnect("still away")
        await super().remove(instance)


async def test_states_are_recorded_every_half_lease_a_store_away_logged_once_then_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.workers")
    intervals: list[float] = []
    tick = asyncio.Event()

    async def every(seconds: float) -> None:
        intervals.append(seconds)
        tick.set()
        await asyncio.sleep(0.001)

    store = FlakyWorkers()
    sup = supervisor(
        FakeClock(advance_on_sleep=False), workers=store, publish_every=every, secrets=["sk-123"]
    )
    worker = ScriptedWorker("projection:p", [], kind="projection")
    sup.add(worker)
    store.away = True
    await sup.start()
    await until(lambda: store.puts >= 3)
    store.away = False
    await until(lambda: store.puts >= 5)
    assert set(intervals) == {5.0}  # lease_seconds / 2
    messages = [r.getMessage() for r in caplog.records if "worker states" in r.getMessage()]
    assert messages == [  # each once: the failure while it lasts, then its end
        "could not record worker states: AutoReconnect: workers store away (key ***)",
        "worker states recorded again",
    ]
    assert [r.name for r in await store.all()] == ["projection:p"]
    store.away = True
    await sup.stop()
    assert any(
        r.getMessage().startswith("could not remove this instance's worker states")
        for r in caplog.records
    )


class _NoProgress(ScriptedWorker):
    async def progress(self) -> Progress:
        raise ConnectionError("the store is away")


async def test_a_retry_is_one_json_line_its_task_named_and_its_backoff_seeded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventstore.workers")
    clock = SleepRecordingClock()
    sup = supervisor(clock, first_delay=0.5, max_delay=0.75)  # rng_seed=1
    worker = _NoProgress("projection:p", [AutoReconnect("gone")] * 3, kind="projection")
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    entry = sup.get("projection:p")
    assert entry is not None and entry.task is not None
    assert entry.task.get_name() == "projection:p"
    # tasks are named for what they do (asyncio's task dumps and debuggers show the names)
    assert "worker-states" in {task.get_name() for task in asyncio.all_tasks()}
    # the same delays as a back-off of those bounds drawing from a generator of that seed
    expected = Backoff(first=0.5, cap=0.75, rng=random.Random(1))
    assert clock.slept == [expected.delay() for _ in range(3)]
    assert max(clock.slept) <= 0.75  # the cap given, not the default 30 s
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    retrying = [line for line in lines if line["state"] == RETRYING]
    assert retrying[0] == {
        "worker": "projection:p",
        "kind": "projection",
        "instance": "host:1:abc",
        "state": RETRYING,
        "previous": RUNNING,
        "restarts": 1,
        "error": "AutoReconnect: gone",
    }
    assert [line["restarts"] for line in retrying] == [1, 2, 3]
    caplog.clear()
    (record,) = await sup.records()
    assert record.name == "projection:p"  # the state is still told without its progress
    assert [r.getMessage() for r in caplog.records] == [
        "progress of projection:p unavailable: the store is away"
    ]
    await sup.stop()


class _Deaf(ScriptedWorker):
    async def run(self, ctx: WorkerContext) -> None:
        self.running.set()
        await asyncio.Event().wait()  # ignores the stop


async def test_stop_gives_a_worker_that_ignores_it_the_grace_then_cancels_it() -> None:
    sup = supervisor(SleepRecordingClock())
    deaf = _Deaf("projection:p", [])
    sup.add(deaf)
    await sup.start()
    await asyncio.wait_for(deaf.running.wait(), 5)
    await asyncio.wait_for(sup.stop(grace=0.05), 5)
    entry = sup.get("projection:p")
    assert entry is not None and entry.task is not None and entry.task.cancelled()
    assert entry.state == STOPPED and deaf.closed


async def test_stop_waits_five_seconds_by_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The default grace, on the event loop's own clock moved forward by the test."""
    caplog.set_level(logging.WARNING, logger="eventstore.workers")
    loop = asyncio.get_running_loop()
    ahead = 0.0
    real_time = loop.time
    monkeypatch.setattr(loop, "time", lambda: real_time() + ahead)
    sup = supervisor(SleepRecordingClock())
    deaf = _Deaf("projection:p", [])
    sup.add(deaf)
    await sup.start()
    await asyncio.wait_for(deaf.running.wait(), 5)
    stopping = asyncio.ensure_future(sup.stop())
    await asyncio.sleep(0.05)  # stop has begun to wait
    ahead = 4.8
    await asyncio.sleep(0.05)
    assert not stopping.done()  # within the grace: still waiting for the worker
    ahead = 5.2
    await asyncio.sleep(0.05)
    assert stopping.done()  # the grace is over: the worker was cancelled
    await stopping
    entry = sup.get("projection:p")
    assert entry is not None and entry.task is not None and entry.task.cancelled()
    # no store: no worker states to remove, nothing to warn of
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


class _StoreAway(MemoryWorkers):
    """Keeps records, but removing them fails (`hangs`: never answers)."""

    def __init__(self, *, hangs: bool) -> None:
        super().__init__()
        self.hangs = hangs

    async def remove(self, instance: str) -> None:
        if self.hangs:
            await asyncio.Event().wait()
        raise AutoReconnect("the store is away")


@pytest.mark.parametrize(
    ("hangs", "error"), [(False, "AutoReconnect('the store is away')"), (True, "TimeoutError()")]
)
async def test_a_stop_that_cannot_remove_its_states_says_so_within_two_seconds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, hangs: bool, error: str
) -> None:
    loop = asyncio.get_running_loop()
    ahead = 0.0
    real_time = loop.time
    monkeypatch.setattr(loop, "time", lambda: real_time() + ahead)
    store = _StoreAway(hangs=hangs)
    sup = supervisor(FakeClock(advance_on_sleep=False), workers=store)
    worker = ScriptedWorker("projection:p", [], kind="projection")
    sup.add(worker)
    await sup.start()
    await asyncio.wait_for(worker.running.wait(), 5)
    await sup.publish()
    caplog.set_level(logging.WARNING, logger="eventstore.workers")
    stopping = asyncio.ensure_future(sup.stop())
    await asyncio.sleep(0.05)
    if hangs:
        ahead = 1.8
        await asyncio.sleep(0.05)
        assert not stopping.done()  # the store is given two seconds
        ahead = 2.2
        await asyncio.sleep(0.05)
    assert stopping.done()
    await stopping
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"could not remove this instance's worker states: {error}"
    ]
    assert [r.name for r in await store.all()] == ["projection:p"]  # left to go stale


async def test_an_instance_that_never_published_asks_nothing_of_the_store_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.workers")
    sup = supervisor(FakeClock(advance_on_sleep=False), workers=_StoreAway(hangs=False))
    await sup.start()  # no worker: nothing is published
    await sup.stop()
    # the failing removal was never tried
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(("lease_seconds", "interval"), [(10.0, 5.0), (0.004, 0.01)])
async def test_states_are_published_every_half_lease_and_never_more_often_than_10_ms(
    lease_seconds: float, interval: float
) -> None:
    intervals: list[float] = []

    async def every(seconds: float) -> None:
        intervals.append(seconds)
        await asyncio.sleep(0.001)

    sup = Supervisor(
        clock=FakeClock(advance_on_sleep=False),
        instance="host:1:abc",
        lease_seconds=lease_seconds,
        workers=MemoryWorkers(),
        publish_every=every,
    )
    await sup.start()
    await until(lambda: len(intervals) >= 2)
    await sup.stop()
    assert set(intervals) == {interval}
