"""The delivery engine: one subscription as a supervised worker.

Invariants:
- It works only while holding the lease `subscription:<name>`; other instances stand by.
- The checkpoint (`subscription:<name>` in the Checkpoints port) is the highest seq
  below which every event is settled: delivered, filtered out, or parked. Delivered
  and parked events above it are stored too (the Deliveries port) before anything
  counts them settled, so after a crash only events that were not settled are
  delivered again.
- Each entity's events go out in seq order: an event that waits for a retry holds
  back only its own entity; `lanes` entities may have a delivery in flight at once.
  A strict sink (redis-stream) gets every event in global seq order, in batches.
- A failure about one event follows the subscription's retry schedule (with
  jitter); once exhausted, the event is parked with every later event of its
  entity, and the others keep flowing. A failure of the whole sink backs off the
  subscription (`retrying`, `Retry-After` honoured up to an hour; one of 0 or in the
  past waits the back-off step), parking nothing. Deliveries that fail together
  (every lane at one moment) are one failed round: one back-off step, one WARNING
  line. A back-off wait ends at once on a stop, a pause, or any operator change of
  the record (resume, reset, PUT). Each failed attempt is saved in the status at once.
  HTTP 410 disables the subscription. A strict sink never parks.
- A sink that cannot work as configured (a secret reference that cannot be read,
  credentials Redis refuses, a Redis database that does not exist) fails the worker
  with one line (`configuration error: ...`), shown as `last_error`; a changed
  configuration starts it again (the manager).
- Every delivery id is `<name>-<seq>`: the same on every attempt, replay and reset.
- At a stop, a pause or a disabling, deliveries in flight may end for at most `DRAIN_S`
  (and a third of the lease) and their outcomes are recorded, so a receiver that took an
  event is not sent it again by the next run (or after a resume); those still in flight
  then are cancelled and go out again (at least once).
- A redis-stream refusal counts as delivered only for this subscription's own entry
  (`RedisStreamSink`): another writer's entry fails the worker, never settles an event.
- Every failed attempt is the worker's `last_error` in `/v1/workers` too (the last error
  the worker met), a failure of one event included.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

import msgspec

from eventstore.awaiting import cancel_and_wait, wait_set
from eventstore.failures import Backoff, describe
from eventstore.leasing import LeaseKeeper, LeaseLost
from eventstore.model import Event
from eventstore.ports import Clock, Store
from eventstore.render import event_json
from eventstore.settings import SettingsError
from eventstore.subscription_records import ParkedEvent, SubscriptionRecord
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions import positions
from eventstore.subscriptions.filters import admits
from eventstore.subscriptions.secrets import values_of as secret_values
from eventstore.subscriptions.sinks.base import (
    ALREADY,
    GONE,
    MISCONFIGURED,
    SINK_FAILED,
    UNHEARD,
    Delivery,
    Outcome,
    Sink,
)
from eventstore.subscriptions.sinks.build import build_sink
from eventstore.supervisor import Progress, WorkerContext
from eventstore.worker_state import DISABLED, PAUSED, RETRYING, RUNNING

log = logging.getLogger("eventstore.subscriptions")

SUBSCRIPTION: Final = "subscription"
# How long a stop waits for deliveries in flight: within the supervisor's grace (5 s) for
# the whole stop, and well within a receiver's patience for a deploy.
DRAIN_S: Final = 3.0
Entity = tuple[str, str]
SinkFactory = Callable[[cfg.SubscriptionConfig], Sink]
_ENCODER = msgspec.json.Encoder()


class _Sent(NamedTuple):
    """A delivery in flight: its events, and the back-off round it was launched in (a
    failure of one launched before the current back-off began belongs to the round
    already counted)."""

    events: list[Event]
    round: int


class Deleted(Exception):
    """The subscription's record is gone: the worker ends."""


# The beginning of every `last_error` that says the sink cannot work as configured.
CONFIGURATION_ERROR: Final = "configuration error: "


class SinkConfigError(SettingsError):
    """The sink cannot work as configured: the worker fails with this one line (no traceback).

    A `SettingsError`, so that the supervisor shows it as an expected failure (fatal,
    its message alone) rather than as a bug.
    """


def delivery_id(name: str, seq: int) -> str:
    """The stable id of a delivery: `<name>-<seq>` (no `.`: Standard Webhooks ids)."""
    return f"{name}-{seq}"


class SubscriptionWorker:
    """Delivers one subscription from its checkpoint (name: its lease role `subscription:<name>`)."""

    kind = SUBSCRIPTION

    def __init__(
        self,
        store: Store,
        subscription: str,
        *,
        clock: Clock,
        owner: str,
        lease_seconds: float,
        wall_clock: Clock | None = None,
        sink_factory: SinkFactory | None = None,
        read_batch: int = 500,
        entity_batch: int = 64,
        window: int = 5000,
        strict_batch: int = 500,
        poll_s: float = 1.0,
        rng: random.Random | None = None,
        backoff_first: float = 1.0,
        backoff_cap: float = 300.0,
        secrets: Sequence[str] = (),
        drain_s: float = DRAIN_S,
    ) -> None:
        self.store = store
        self.subscription = subscription
        self.clock = clock
        # Webhook timestamps are of the attempt, on the wall clock (receivers check them).
        self.wall_clock = wall_clock or clock
        self.sink_factory = sink_factory or (lambda c: build_sink(c, clock=self.wall_clock))
        self.read_batch = read_batch
        self.entity_batch = entity_batch
        self.window = window
        self.strict_batch = strict_batch
        self.poll_s = poll_s
        self.rng = rng or random.Random()
        self.backoff = Backoff(first=backoff_first, cap=backoff_cap, rng=self.rng)
        self.secrets = tuple(secrets)
        # The lease is not renewed while draining: the drain ends well before it lapses.
        self.drain_s = min(drain_s, lease_seconds / 3)
        self.lease = LeaseKeeper(store.leases, self.name, owner, ttl=lease_seconds, clock=clock)
        self.lease.observer = self._report
        self.wake = asyncio.Event()
        # Set whenever the loop has something to look at: a delivery ended, an append, a nudge.
        self._kick = asyncio.Event()
        self._read = asyncio.Event()
        self._more = True
        self._ctx: WorkerContext | None = None
        self._reset_state()
        self.sink: Sink | None = None
        self.config: cfg.SubscriptionConfig | None = None
        self.config_doc: dict[str, Any] | None = None
        self.record: SubscriptionRecord | None = None
        self.state = "starting"
        self._sink_secrets: tuple[str, ...] = ()
        self._sink_error: str | None = None  # why the whole sink backs off (shown as last_error)
        # The configuration the last run started with (the manager restarts a failed worker
        # whose configuration changed since).
        self.ran_config: dict[str, Any] | None = None
        # Called when the worker's state may have changed (the manager publishes it at once).
        self.on_state: Callable[[], None] | None = None
        self._warned_tops: set[str] = set()  # foreign Redis stream tops already warned about
        self._nudged = False  # an operator acted here since the record was last read

    # -- identity and status ------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The lease role, `subscription:<name>`."""
        return positions.checkpoint_name(self.subscription)

    def _report(self, state: str, error: str | None = None) -> None:
        changed = state != self.state
        self.state = state
        if self._ctx is not None:
            self._ctx.report(state, error)
        if changed:
            self._state_may_change()

    def _state_may_change(self) -> None:
        if self.on_state is not None:
            self.on_state()

    def _scrub(self, text: str | None) -> str | None:
        """An error as shown and logged: the service's keys and the sink's secrets removed."""
        if text is None:
            return None
        for secret in (*self._sink_secrets, *self.secrets):
            if secret:
                text = text.replace(secret, "***")
        return text

    def nudge(self) -> None:
        """Look at the subscription's record now (an operator changed it)."""
        self._nudged = True
        self.wake.set()
        self._kick.set()

    async def progress(self) -> Progress:
        """The checkpoint, the events behind it, and how old the oldest unsettled one is."""
        head = (await self.store.events.head()).seq
        position = await positions.read_position(self.store.checkpoints, self.subscription)
        position = position or 0
        lag = max(head - position, 0)
        lag_seconds = 0.0
        if lag:
            page = await self.store.events.read(after_seq=position, limit=1)
            if page:
                lag_seconds = max((self.clock.now() - page[0].recorded_at).total_seconds(), 0.0)
        return Progress(position=position, lag=lag, lag_seconds=lag_seconds)

    def _reset_state(self) -> None:
        self.checkpoint = 0
        self.above: set[int] = set()  # settled above the checkpoint (filtered ones included)
        self.persisted_above: set[int] = set()  # of those, the ones stored in Deliveries
        self.read_pos = 0
        self.queues: dict[Entity, deque[Event]] = {}
        self.ready: deque[Entity] = deque()
        self.waiting: list[tuple[datetime, int, Entity]] = []
        self.line: deque[Event] = deque()  # strict sinks: every pending event, in seq order
        self.attempts: dict[int, int] = {}
        self.errors: dict[int, str] = {}
        self.parked_by_entity: dict[Entity, set[int]] = {}
        self.replaying: set[int] = set()
        self.inflight: dict[asyncio.Task[list[Outcome]], _Sent] = {}
        self.round = 0
        self.sink_until: datetime | None = None
        self.buffered = 0
        self._tick = 0

    # -- the run ------------------------------------------------------------------------------
    async def run(self, ctx: WorkerContext) -> None:
        """Deliver while holding the lease (a standby waits), from the checkpoint; end when deleted."""
        try:
            await self._run(ctx)
        except Exception:
            # No await from here to the supervisor's `failed`: the publication scheduled
            # now runs after it.
            self._state_may_change()
            raise

    async def _run(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        stop = ctx.stop
        while not stop.is_set():
            if not await self.lease.acquire(stop):
                return
            lost = False
            try:
                await self._load()
                await self._check_sink()
                await self._loop(stop)
                return
            except LeaseLost:
                lost = True
                log.warning("subscription %s: lease lost, standing by", self.subscription)
            except Deleted:
                log.info("subscription %s was deleted: its worker ends", self.subscription)
                return
            except SinkConfigError as exc:
                self.last_error = str(exc)
                raise
            finally:
                await self._cancel_inflight()
                if not lost:
                    await self._save_counters()
                if self.sink is not None:
                    with contextlib.suppress(Exception):
                        await self.sink.close()
                    self.sink = None
                self.config = self.config_doc = None
                await self.lease.release()

    async def run_commands_once(self) -> bool:
        """Carry out queued operator commands here when no instance delivers (False if one does)."""
        if not await self.lease.try_acquire():
            return False
        try:
            await self._load(build=False)
            # A replay needs a sink: it waits for the instance that delivers.
            await self._control(build=False, only=("reset", "skip"))
        except Deleted:
            pass
        finally:
            await self.lease.release()
        return True

    async def _check_sink(self) -> None:
        """A configuration the destination refuses as such fails the worker before any
        delivery (a Redis database that does not exist, wrong credentials): a subscription
        with nothing to deliver yet showed `running` until its first event."""
        if self.sink is None:
            return
        refused = await self.sink.check()
        if refused is not None:
            raise SinkConfigError(f"{CONFIGURATION_ERROR}{refused.detail}")

    async def _load(self, *, build: bool = True) -> None:
        self._reset_state()
        record = await self.store.subscriptions.get(self.subscription)
        if record is None:
            raise Deleted(self.subscription)
        # The counters first: a sink that cannot be built saves them with its error.
        self._restore_counters(
            {
                "delivered": record.delivered,
                "failed_attempts": record.failed_attempts,
                "unheard": record.unheard,
                "already_delivered": record.already_delivered,
                "last_error": record.last_error,
                "last_delivery_at": record.last_delivery_at,
            }
        )
        self._apply_record(record, build=build)
        if build and (self.last_error or "").startswith(CONFIGURATION_ERROR):
            self.last_error = None  # the sink works as configured now
            await self._save_counters()
        assert self.config is not None
        position = await positions.read_position(self.store.checkpoints, self.subscription)
        if position is None:
            position = await positions.position_of(self.store.events, self.config.start)
            await positions.write_position(
                self.store.checkpoints, self.subscription, position, self.clock.now()
            )
        self.checkpoint = self.read_pos = position
        settled = await self.store.deliveries.settled(self.subscription, above=position)
        self.above = set(settled)
        self.persisted_above = set(settled)
        for p in await self.store.deliveries.parked(self.subscription):
            self.parked_by_entity.setdefault((p.stream, p.entity_key), set()).add(p.seq)
            if p.seq > self.checkpoint:
                self.above.add(p.seq)
        self._advance()

    def _apply_record(self, record: SubscriptionRecord, *, build: bool) -> None:
        self.record = record
        if build:
            self.ran_config = record.config  # what a failure of this run was with
        if record.config != self.config_doc:
            config = cfg.from_doc(record.config)
            if build and self.sink is not None:
                old = self.sink
                self.sink = None
                task = asyncio.ensure_future(old.close())
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            self.config, self.config_doc = config, record.config
            self._sink_secrets = tuple(secret_values(config.sink))
        if build and self.sink is None and self.config is not None:
            try:
                self.sink = self.sink_factory(self.config)
            except Exception as exc:  # a secret reference that cannot be read, a bad URL
                detail = describe(exc, (*self._sink_secrets, *self.secrets))
                raise SinkConfigError(
                    f"{CONFIGURATION_ERROR}the sink cannot start: {detail}"
                ) from None

    async def _loop(self, stop: asyncio.Event) -> None:
        watcher = asyncio.ensure_future(self._watch_appends())
        stopping = asyncio.ensure_future(self._kick_on(stop))
        try:
            await self._steps(stop)
            await self._drain()
        finally:
            await cancel_and_wait((watcher, stopping))

    async def _kick_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self._kick.set()

    async def _watch_appends(self) -> None:
        """Kick the loop when events are appended past what it has read."""
        while True:
            seen = self.read_pos
            if await self.store.events.wait_for_append(seen, timeout=self.poll_s):
                self._more = True
                self._kick.set()
                while self.read_pos == seen:
                    self._read.clear()
                    await wait_set(self._read, self.poll_s)

    async def _steps(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        last_poll = loop.time()
        while not stop.is_set():
            await self.lease.keep()
            if self.wake.is_set() or loop.time() - last_poll >= self.poll_s:
                self.wake.clear()
                last_poll = loop.time()
                await self._control()
            record = self.record
            assert record is not None
            if record.disabled_reason is not None or record.paused:
                if record.disabled_reason is not None:
                    self._report(DISABLED, record.disabled_reason)
                else:
                    self._report(PAUSED)
                # Launch nothing more; let deliveries in flight end (bounded, as at a stop)
                # and record them, so a receiver that took one is not sent it again.
                await self._drain("the pause" if record.paused else "the disabling")
                await self._cancel_inflight()
                await self._wait_for_wake(self.poll_s)
                continue
            now = self.clock.now()
            if self.sink_until is not None:
                if now < self.sink_until and not self.inflight:
                    self._report(RETRYING, self._sink_error)
                    await self._wait_backing_off((self.sink_until - now).total_seconds())
                    continue
                if now >= self.sink_until:
                    self.sink_until = None
            if self.state not in (RUNNING, RETRYING):
                self._report(RUNNING)  # after a standby, a pause or a disabling
            await self._fill()
            self._wake_due(now)
            if self.sink_until is None:
                self._launch()
            await self._wait()

    # -- reading ------------------------------------------------------------------------------
    async def _wait_backing_off(self, seconds: float) -> None:
        """Wait out (part of) a back-off: at most `poll_s` of real time, so that an operator's
        change made elsewhere is seen; at once on a stop, a nudge or an append (`_kick`)."""
        waits = [
            asyncio.ensure_future(self._kick.wait()),
            asyncio.ensure_future(self._sleep(seconds)),
        ]
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(waits)
        self._kick.clear()  # nothing is in flight: the loop looks at everything anyway

    def _end_back_off(self, why: str) -> None:
        """Try the sink again now (an operator resumed, reset or changed the subscription)."""
        if self.sink_until is None:
            return
        self.sink_until = None
        self.backoff.reset()
        log.info("subscription %s: the back-off ends (%s)", self.subscription, why)

    async def _fill(self) -> None:
        room = self.window - self.buffered
        if room <= 0 or not self._more:
            return
        limit = min(room, self.read_batch)
        events = await self.store.events.read(after_seq=self.read_pos, limit=limit)
        self._more = len(events) == limit
        if not events:
            return
        self._read.set()
        assert self.config is not None
        strict = self.sink is not None and self.sink.strict
        to_park: list[ParkedEvent] = []
        for e in events:
            self.read_pos = e.seq
            if e.seq in self.above or e.seq <= self.checkpoint:
                continue
            if not admits(self.config.filter, e):
                self._settle_in_memory(e.seq)
                continue
            entity = (e.stream, e.entity_key)
            held = self.parked_by_entity.get(entity)
            if held and not strict:
                to_park.append(self._parked(e, 0, f"held behind parked seq {min(held)}"))
                continue
            self.buffered += 1
            if strict:
                self.line.append(e)
                continue
            queue = self.queues.get(entity)
            if queue is None:
                self.queues[entity] = deque([e])
                self.ready.append(entity)
            else:
                queue.append(e)
        if to_park:
            await self._park(to_park)
        await self._persist_checkpoint()

    # -- delivering ---------------------------------------------------------------------------
    def _delivery(self, e: Event) -> Delivery:
        return Delivery(
            id=delivery_id(self.subscription, e.seq), event=e, body=_ENCODER.encode(event_json(e))
        )

    def _launch(self) -> None:
        sink = self.sink
        assert sink is not None and self.config is not None
        if sink.strict:
            if self.inflight or not self.line:
                return
            first = [self.line[i] for i in range(min(self.strict_batch, len(self.line)))]
            self._start(sink, first)
            return
        # Each lane takes the heads of several ready entities (never two events of one entity):
        # the sink delivers them one after the other, so at most `lanes` are in flight.
        most = sink.max_batch or self.entity_batch
        while len(self.inflight) < self.config.lanes and self.ready:
            free = self.config.lanes - len(self.inflight)
            size = max(1, min(most, -(-len(self.ready) // free)))
            batch: list[Event] = []
            while self.ready and len(batch) < size:
                queue = self.queues.get(self.ready.popleft())
                if queue:
                    batch.append(queue[0])
            if batch:
                self._start(sink, batch)

    def _start(self, sink: Sink, events: list[Event]) -> None:
        deliveries = [self._delivery(e) for e in events]
        task = asyncio.ensure_future(sink.deliver(deliveries))
        task.add_done_callback(lambda _: self._kick.set())
        self.inflight[task] = _Sent(events, self.round)

    async def _wait(self) -> None:
        """Until a delivery ends, a retry is due, the operator nudges, or new events arrive."""
        if not self._kick.is_set() and not (self._more and self.buffered < self.window):
            timeout: float | None = None
            due = self._next_due()
            if due is not None and (self.sink_until is None or self.inflight):
                timeout = max(due, 0.0)
            if self.sink_until is not None:
                pause = max((self.sink_until - self.clock.now()).total_seconds(), 0.0)
                timeout = pause if timeout is None else min(timeout, pause)
            if timeout is None:
                await wait_set(self._kick, self.poll_s)
            else:
                waits = [
                    asyncio.ensure_future(self._kick.wait()),
                    asyncio.ensure_future(self._sleep(timeout)),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await cancel_and_wait(waits)
        self._kick.clear()
        await self._collect()

    async def _collect(self) -> None:
        """Record the outcome of every delivery that has ended."""
        for task in [t for t in self.inflight if t.done()]:
            events, launched = self.inflight.pop(task)
            try:
                outcomes = task.result()
            except Exception as exc:  # a sink bug or an unexpected client error: back off
                detail = describe(exc, (*self._sink_secrets, *self.secrets))
                outcomes = [Outcome(status=SINK_FAILED, detail=detail)]
            await self._handle(events, outcomes, launched=launched)

    async def _drain(self, at: str = "the stop") -> None:
        """At a stop, a pause or a disabling: let deliveries in flight end (for at most
        `drain_s`) and record them; launch nothing. Those still in flight then go out again
        (on the next run, or after a resume): at least once."""
        if not self.inflight:
            return
        pending = [t for t in self.inflight if not t.done()]
        if pending:
            log.info(
                "subscription %s: %s, waiting up to %.1fs for deliveries in flight (%d)",
                self.subscription,
                "stopping" if at == "the stop" else f"{at.removeprefix('the ')} takes effect",
                self.drain_s,
                len(pending),
            )
            _, pending_now = await asyncio.wait(pending, timeout=self.drain_s)
            if pending_now:
                log.warning(
                    "subscription %s: deliveries still in flight at %s (%d) go out again %s",
                    self.subscription,
                    at,
                    len(pending_now),
                    "on the next run" if at == "the stop" else "when it is resumed",
                )
        await self._collect()  # what is still in flight is cancelled by the run's end

    async def _handle(
        self, events: list[Event], outcomes: list[Outcome], *, launched: int | None = None
    ) -> None:
        strict = self.sink is not None and self.sink.strict
        now = self.clock.now()
        settled: list[int] = []
        failed = False
        back: list[Event] = []  # to go out again, in their order
        for i, e in enumerate(events):
            if i >= len(outcomes):  # the sink stopped early: the rest goes out again
                back.append(e)
                continue
            outcome = outcomes[i]
            if outcome.detail is not None:
                outcome = msgspec.structs.replace(outcome, detail=self._scrub(outcome.detail))
            if outcome.settled:
                settled.append(e.seq)
                self.delivered += 1
                if outcome.status == UNHEARD:
                    self.unheard += 1
                elif outcome.status == ALREADY:
                    self.already += 1
                    if outcome.top is not None:
                        await self._foreign_top(outcome.top)
                self.last_delivery_at = now
                self._done_with(e, strict)
                continue
            self.failed_attempts += 1
            self.last_error = outcome.detail
            # `/v1/workers` shows the last error the worker met, whatever its kind (a failure
            # of one event included: the worker runs on, its state unchanged).
            self._report(self.state, outcome.detail)
            failed = True
            if outcome.status == MISCONFIGURED:
                # Retrying cannot help: the worker fails with the reason (saved by `run`).
                # What the sink took before it is settled first (never delivered again).
                if settled:
                    await self._settle(settled)
                raise SinkConfigError(f"{CONFIGURATION_ERROR}{outcome.detail}")
            if outcome.status == GONE:
                await self._disable(outcome.detail or "the receiver answered 410 Gone")
                back.append(e)
            elif outcome.status == SINK_FAILED or strict:
                # A strict sink never parks: any failure backs off the whole subscription.
                self._back_off(outcome, now, launched)
                back.append(e)
            else:
                await self._event_failed(e, outcome, now)
                if not strict:
                    continue  # a batch holds one event per entity: the others stand alone
            back.extend(events[i + 1 :])
            break
        for e in reversed(back):
            self._requeue(e, strict)
        if settled:
            if self.state == RETRYING:
                self._report(RUNNING)  # the sink took a delivery again
            self.backoff.reset()
            if self._ctx is not None:
                self._ctx.healthy()
            await self._settle(settled)
            if not failed and not self.errors and self.sink_until is None:
                # `last_error` is the current problem: none while deliveries go through
                # and no event waits for a retry (parked events keep their own errors).
                self.last_error = None
        if failed:
            await self._save_counters()  # the status counts each failed attempt at once

    async def _foreign_top(self, top: str) -> None:
        """Warn (once per top id) when a Redis stream's top id is above any this subscription
        wrote (`<seq>-0` with seq at most the log's head): another writer put it there, and
        the events refused below it are counted as already delivered."""
        if top in self._warned_tops:
            return
        ms, _, part = top.partition("-")
        ours = ms.isdigit() and part == "0"
        if ours and int(ms) <= self.read_pos:
            return  # an entry this subscription may have written: a redelivery
        head = (await self.store.events.head()).seq
        if ours and int(ms) <= head:
            return
        self._warned_tops.add(top)
        log.warning(
            "subscription %s: the Redis stream's top id %s is above any id this subscription "
            "wrote (the log's head is seq %d): another writer added it, and events at or below "
            "it are refused and counted as already delivered (already_delivered)",
            self.subscription,
            top,
            head,
        )

    def _done_with(self, e: Event, strict: bool) -> None:
        self.buffered -= 1
        self.attempts.pop(e.seq, None)
        self.errors.pop(e.seq, None)
        if strict:
            if self.line and self.line[0].seq == e.seq:
                self.line.popleft()
            return
        entity = (e.stream, e.entity_key)
        queue = self.queues.get(entity)
        if queue and queue[0].seq == e.seq:
            queue.popleft()
        if queue:
            self.ready.append(entity)
        else:
            self.queues.pop(entity, None)

    def _requeue(self, e: Event, strict: bool) -> None:
        """The event goes out again first (its entity to the front)."""
        if strict:
            return  # it never left the line
        entity = (e.stream, e.entity_key)
        if entity in self.queues and entity not in self.ready:
            self.ready.appendleft(entity)

    def _back_off(self, outcome: Outcome, now: datetime, launched: int | None) -> None:
        """Back off the whole sink: one step per failed round.

        A delivery launched before the current back-off began failed together with the one
        that began it (every lane at one moment): it takes no further step and logs nothing,
        but a longer `Retry-After` of it is honoured. A `Retry-After` of 0 or a date in the
        past waits the back-off step instead (else it would retry in a tight loop).
        """
        self._sink_error = outcome.detail or "the sink failed"
        if launched is not None and launched < self.round:
            if outcome.retry_after is not None:
                until = now + timedelta(seconds=outcome.retry_after)
                if self.sink_until is None or until > self.sink_until:
                    self.sink_until = until
            return
        self.round += 1
        asked = outcome.retry_after
        delay = asked if asked is not None and asked > 0 else self.backoff.delay()
        until = now + timedelta(seconds=delay)
        if self.sink_until is None or until > self.sink_until:
            self.sink_until = until
        log.warning(
            "subscription %s backs off for %.1fs: %s", self.subscription, delay, outcome.detail
        )

    async def _event_failed(self, e: Event, outcome: Outcome, now: datetime) -> None:
        assert self.config is not None
        attempts = self.attempts.get(e.seq, 0) + 1
        self.attempts[e.seq] = attempts
        self.errors[e.seq] = outcome.detail or "failed"
        delays = self.config.retry.delays_s
        entity = (e.stream, e.entity_key)
        if attempts > len(delays):
            await self._park_entity(entity)
            return
        jitter = self.config.retry.jitter
        delay = delays[attempts - 1] * (1 + self.rng.uniform(-jitter, jitter))
        self._tick += 1
        heapq.heappush(self.waiting, (now + timedelta(seconds=delay), self._tick, entity))

    def _next_due(self) -> float | None:
        if not self.waiting:
            return None
        return (self.waiting[0][0] - self.clock.now()).total_seconds()

    def _wake_due(self, now: datetime) -> None:
        while self.waiting and self.waiting[0][0] <= now:
            _, _, entity = heapq.heappop(self.waiting)
            if entity in self.queues and entity not in self.ready:
                self.ready.appendleft(entity)

    # -- settling and parking -----------------------------------------------------------------
    def _settle_in_memory(self, seq: int) -> None:
        if seq > self.checkpoint:
            self.above.add(seq)

    def _advance(self) -> bool:
        moved = False
        while self.checkpoint + 1 in self.above:
            self.checkpoint += 1
            self.above.discard(self.checkpoint)
            moved = True
        return moved

    async def _settle(self, seqs: list[int]) -> None:
        """Store settled seqs above the checkpoint first, then move the checkpoint."""
        for s in seqs:
            self._settle_in_memory(s)
        replayed = [s for s in seqs if s in self.replaying]
        if replayed:
            self.replaying.difference_update(replayed)
            await self.store.deliveries.unpark(self.subscription, replayed)
            self._forget_parked(replayed)
        before = self.checkpoint
        self._advance()
        keep = [s for s in seqs if s > self.checkpoint and s not in self.persisted_above]
        if keep:
            await self.store.deliveries.settle(self.subscription, keep)
            self.persisted_above.update(keep)
        if self.checkpoint != before:
            await self._persist_checkpoint(force=True)

    async def _persist_checkpoint(self, *, force: bool = False) -> None:
        moved = self._advance()
        if not (moved or force):
            return
        await positions.write_position(
            self.store.checkpoints, self.subscription, self.checkpoint, self.clock.now()
        )
        covered = [s for s in self.persisted_above if s <= self.checkpoint]
        if covered:
            await self.store.deliveries.forget_settled(self.subscription, up_to=self.checkpoint)
            self.persisted_above.difference_update(covered)

    def _parked(self, e: Event, attempts: int, error: str | None) -> ParkedEvent:
        return ParkedEvent(
            name=self.subscription,
            seq=e.seq,
            stream=e.stream,
            entity_key=e.entity_key,
            type=e.type,
            attempts=attempts,
            last_error=error,
            parked_at=self.clock.now(),
        )

    async def _park(self, parked: list[ParkedEvent]) -> None:
        """Store parked events, then count them settled."""
        await self.store.deliveries.park(parked)
        for p in parked:
            self.parked_by_entity.setdefault((p.stream, p.entity_key), set()).add(p.seq)
            self._settle_in_memory(p.seq)
            self.replaying.discard(p.seq)

    async def _park_entity(self, entity: Entity) -> None:
        """Park the entity's failing event and every later one of it (sequenced parking)."""
        queue = self.queues.pop(entity, deque())
        with contextlib.suppress(ValueError):
            self.ready.remove(entity)
        if not queue:
            return
        first = queue[0].seq
        parked = [
            self._parked(
                e,
                self.attempts.pop(e.seq, 0),
                self.errors.pop(e.seq, None)
                if e.seq == first
                else f"held behind parked seq {first}",
            )
            for e in queue
        ]
        self.buffered -= len(queue)
        log.warning(
            "subscription %s parked %d event(s) of %s/%s from seq %d",
            self.subscription,
            len(parked),
            entity[0],
            entity[1],
            first,
        )
        await self._park(parked)
        await self._persist_checkpoint()

    def _forget_parked(self, seqs: Sequence[int]) -> None:
        gone = set(seqs)
        for entity in list(self.parked_by_entity):
            left = self.parked_by_entity[entity] - gone
            if left:
                self.parked_by_entity[entity] = left
            else:
                del self.parked_by_entity[entity]

    async def _disable(self, reason: str) -> None:
        now = self.clock.now()
        await self.store.subscriptions.patch(
            self.subscription, {"disabled_reason": reason, "updated_at": now}
        )
        if self.record is not None:
            self.record = msgspec.structs.replace(
                self.record, disabled_reason=reason, updated_at=now
            )
        log.warning("subscription %s disabled: %s", self.subscription, reason)

    # -- operator commands --------------------------------------------------------------------
    async def _control(self, *, build: bool = True, only: Sequence[str] | None = None) -> None:
        record = await self.store.subscriptions.get(self.subscription)
        if record is None:
            raise Deleted(self.subscription)
        previous = self.record
        nudged, self._nudged = self._nudged, False
        self._apply_record(record, build=build)
        if nudged or (previous is not None and record.updated_at != previous.updated_at):
            # An operator paused, resumed or changed it (here: a nudge; on another instance:
            # `updated_at` moved): a back-off in progress ends (a pause then holds everything;
            # a resume or a new configuration tries again at once).
            self._end_back_off("an operator acted")
        commands = [c for c in record.commands if only is None or c.get("action") in only]
        if commands:
            for command in commands:
                await self._command(command)
            await self.store.subscriptions.drop_commands(
                self.subscription, [str(c.get("id")) for c in commands]
            )
            fresh = await self.store.subscriptions.get(self.subscription)
            if fresh is None:
                raise Deleted(self.subscription)
            self.record = fresh
        await self._save_counters()

    async def _command(self, command: dict[str, Any]) -> None:
        action = command.get("action")
        log.info("subscription %s: carrying out %s", self.subscription, action)
        if action == "reset":
            start = cfg.parse_start(command.get("start"))
            await self._cancel_inflight()
            self._end_back_off("reset")
            position = await positions.position_of(self.store.events, start)
            await self.store.deliveries.clear(self.subscription)
            counters = self._counters()
            self._reset_state()
            self._restore_counters(counters)
            self.checkpoint = self.read_pos = position
            await positions.write_position(
                self.store.checkpoints, self.subscription, position, self.clock.now()
            )
        elif action == "replay":
            up_to = command.get("up_to_seq")
            await self._replay(up_to if isinstance(up_to, int) else None)
        elif action == "skip":
            seq = command.get("seq")
            if isinstance(seq, int):
                await self.store.deliveries.unpark(self.subscription, [seq])
                self._forget_parked([seq])

    async def _replay(self, up_to: int | None) -> None:
        items = await self.store.deliveries.parked(self.subscription, up_to=up_to)
        items = [p for p in items if p.seq not in self.replaying]
        if not items:
            return
        strict = self.sink is not None and self.sink.strict
        for p in items:
            page = await self.store.events.read(after_seq=p.seq - 1, limit=1)
            if not page or page[0].seq != p.seq:
                continue
            e = page[0]
            entity = (e.stream, e.entity_key)
            self.replaying.add(e.seq)
            self.parked_by_entity.get(entity, set()).discard(e.seq)
            if not self.parked_by_entity.get(entity):
                self.parked_by_entity.pop(entity, None)
            self.buffered += 1
            if strict:
                # A strict sink never parks, but a subscription may have parked events from
                # its sink before (an update from a webhook to a Redis stream): they go out
                # in seq order, after the batch in flight (the head of the line).
                in_flight = sum(len(sent.events) for sent in self.inflight.values())
                insert_in_order(self.line, e, start=in_flight)
                continue
            # Replayed events go before the entity's newer ones, in seq order.
            insert_in_order(self.queues.setdefault(entity, deque()), e, start=0)
            # An entity with a delivery in flight goes on when it ends (`_done_with`): made
            # ready now, its queue head (the event in flight) would be sent a second time.
            busy = any(
                (f.stream, f.entity_key) == entity
                for sent in self.inflight.values()
                for f in sent.events
            )
            if entity not in self.ready and not busy:
                self.ready.append(entity)

    async def _cancel_inflight(self) -> None:
        await cancel_and_wait(list(self.inflight))
        strict = self.sink is not None and self.sink.strict
        for sent in self.inflight.values():
            for e in sent.events:
                self._requeue(e, strict)
        self.inflight.clear()

    # -- counters -----------------------------------------------------------------------------
    delivered = 0
    failed_attempts = 0
    unheard = 0
    already = 0
    last_error: str | None = None
    last_delivery_at: datetime | None = None

    def _counters(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "unheard": self.unheard,
            "already_delivered": self.already,
            "last_error": self.last_error,
            "last_delivery_at": self.last_delivery_at,
        }

    def _restore_counters(self, c: dict[str, Any]) -> None:
        self.delivered = c["delivered"]
        self.failed_attempts = c["failed_attempts"]
        self.unheard = c["unheard"]
        self.already = c["already_delivered"]
        self.last_error = c["last_error"]
        self.last_delivery_at = c["last_delivery_at"]

    async def _save_counters(self) -> None:
        if self.record is None:
            return
        with contextlib.suppress(Exception):
            await self.store.subscriptions.patch(self.subscription, self._counters())

    # -- waiting ------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def _wait_for_wake(self, seconds: float) -> None:
        await wait_set(self.wake, seconds)

    async def close(self) -> None:
        """Nothing outlives a run (the sink is closed at its end)."""


def insert_in_order(events: deque[Event], e: Event, *, start: int) -> None:
    """Put `e` before the first event of `events[start:]` with a greater seq."""
    position = start
    while position < len(events) and events[position].seq < e.seq:
        position += 1
    events.insert(position, e)


def new_command(action: str, **fields: Any) -> dict[str, Any]:
    """An operator command for the delivering instance, with a unique id."""
    return {"id": uuid.uuid4().hex, "action": action, **fields}
