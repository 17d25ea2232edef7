"""One supervisor runs every background worker: it retries what is transient and stops what is not.

Invariants:
- A worker's `run` continues from the worker's own checkpoint, so running it
  again after a transient failure loses nothing and records nothing twice.
- A transient failure is retried after a capped, jittered, exponential back-off
  (`eventstore.failures.Backoff`); the back-off starts over once the worker says
  it is healthy again (`WorkerContext.healthy`: a batch went through).
- A fatal failure (anything not classified transient, bugs included) leaves that
  worker `failed` with its scrubbed error; the worker released its lease on the
  way out, and every other worker keeps running. Only `restart` starts it again.
- Every state change is one JSON log line; each instance writes its workers'
  records to the `Workers` port every `lease_seconds / 2`.
- A removed worker (one whose work is gone: a deleted subscription's) leaves no
  trace: its task is cancelled, its record and its metric series go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from eventstore.awaiting import cancel_and_wait, cancel_within, within
from eventstore.errors import user_message
from eventstore.failures import FATAL, Backoff, classify, describe
from eventstore.ports import Clock, Workers
from eventstore.worker_state import (
    CAPTURE,
    FAILED,
    RETRYING,
    STARTING,
    STOPPED,
    WorkerRecord,
)

log = logging.getLogger("eventstore.workers")

# How long the supervisor's own database work may wait, unless its caller says (the API passes
# SERVER_TIMEOUT_MS): a worker's progress probe, and a stop's lease releases and record removal
# together.
REMOVE_SECONDS = 2.0
# How long a stop waits at least for the workers' `close` (nothing there waits on the database).
CLOSE_SECONDS = 1.0


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a worker is: its position (a seq), events behind, seconds behind (None: unknown)."""

    position: int | None = None
    lag: int | None = None
    lag_seconds: float | None = None


class WorkerMetrics(Protocol):
    """Where the supervisor reports its workers (the API's `Metrics` is one)."""

    def worker_state(self, worker: str, state: str) -> None:
        """`worker` is now in `state`."""
        ...

    def worker_added(self, worker: str) -> None:
        """`worker` is supervised here (its restart count starts at 0)."""
        ...

    def worker_restarted(self, worker: str) -> None:
        """`worker` was started again."""
        ...

    def capture_lag(self, worker: str, seconds: float) -> None:
        """The capture worker's lag, in seconds."""
        ...

    def worker_problem(self, worker: str, standing: bool) -> None:
        """`worker` runs on with a standing problem (True), or no longer (False)."""
        ...

    def worker_removed(self, worker: str) -> None:
        """`worker` is no longer supervised here: its series go."""
        ...


class WorkerContext:
    """What a running worker is handed: the stop signal and a way to say how it is doing."""

    def __init__(self, supervised: Supervised) -> None:
        self._supervised = supervised
        self.stop = supervised.supervisor.stopping

    def report(self, state: str, error: str | None = None) -> None:
        """The worker's own state (`running`, `standby`, `paused`, `retrying`, ...) and why."""
        self._supervised.set_state(state, error)

    def healthy(self) -> None:
        """The worker made progress (a batch went through): the back-off starts over."""
        self._supervised.healthy()

    def problem(self, error: str | None) -> None:
        """A standing problem the worker runs on through (shown as `last_error`); None: over."""
        self._supervised.set_problem(error)


class Worker(Protocol):
    """A background worker: run until stopped, raise on failure; `name` is its lease role."""

    @property
    def name(self) -> str:
        """The lease role (`ingester:shop`, `projection:order_summary`)."""
        ...

    @property
    def kind(self) -> str:
        """`capture`, `projection`, `rebuild`, ..."""
        ...

    async def run(self, ctx: WorkerContext) -> None:
        """Work from the checkpoint until `ctx.stop` is set (return), or fail (raise)."""
        ...

    async def progress(self) -> Progress:
        """Position and lag, read when the supervisor publishes states."""
        ...

    async def close(self) -> None:
        """Release what outlives one `run` (called once, when the supervisor stops)."""
        ...


class Supervised:
    """One worker under supervision: its state, restarts, last error and back-off."""

    def __init__(self, supervisor: Supervisor, worker: Worker, backoff: Backoff) -> None:
        self.supervisor = supervisor
        self.worker = worker
        self.backoff = backoff
        self.state = STOPPED
        self.since = supervisor.clock.now()
        self.restarts = 0
        self.last_error: str | None = None
        self.failure: BaseException | None = None
        # Since when the worker has been failing transiently without progress (None: it is not).
        self.trouble_since: datetime | None = None
        self.task: asyncio.Task[None] | None = None
        self.progress = Progress()
        # A problem the worker reported and runs on through (its state stays); None: none.
        self.problem: str | None = None

    @property
    def name(self) -> str:
        return self.worker.name

    def set_state(self, state: str, error: str | None = None) -> None:
        """Enter a state (a JSON log line when it changes)."""
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        previous, self.state = self.state, state
        self.since = self.supervisor.clock.now()
        metrics = self.supervisor.metrics
        if metrics is not None:
            metrics.worker_state(self.name, state)
        line = {
            "worker": self.name,
            "kind": self.worker.kind,
            "instance": self.supervisor.instance,
            "state": state,
            "previous": previous,
            "restarts": self.restarts,
        }
        if state in (FAILED, RETRYING):
            line["error"] = self.last_error
        log.log(
            logging.WARNING if state in (FAILED, RETRYING) else logging.INFO,
            json.dumps(line),
        )
        self.supervisor.changed(self)

    def set_problem(self, error: str | None) -> None:
        """Report (or clear) a standing problem: `last_error`, a metric and a log line on change."""
        if error == self.problem:
            return
        previous, self.problem = self.problem, error
        if error is not None:
            self.last_error = error
        elif self.last_error == previous:
            self.last_error = None
        metrics = self.supervisor.metrics
        if metrics is not None:
            metrics.worker_problem(self.name, error is not None)
        line = {
            "worker": self.name,
            "kind": self.worker.kind,
            "instance": self.supervisor.instance,
            "state": self.state,
            "problem": error,
        }
        log.log(logging.ERROR if error is not None else logging.INFO, json.dumps(line))
        self.supervisor.changed(self)

    def count_restart(self) -> None:
        """One more start of the worker (after a transient failure, or by `restart`)."""
        self.restarts += 1
        if self.supervisor.metrics is not None:
            self.supervisor.metrics.worker_restarted(self.name)

    def healthy(self) -> None:
        self.backoff.reset()
        self.trouble_since = None

    async def probe(self, seconds: float) -> None:
        """Read the worker's progress, for at most `seconds`; a failing probe keeps the last."""
        try:
            self.progress = await within(self.worker.progress(), seconds)
        except Exception as exc:  # the store may be away, or silent: the state is still true
            log.debug("progress of %s unavailable: %s", self.name, exc)

    def record(self) -> WorkerRecord:
        """The record written to the `Workers` port and shown by `/v1/workers`."""
        return WorkerRecord(
            name=self.name,
            kind=self.worker.kind,
            instance=self.supervisor.instance,
            state=self.state,
            since=self.since,
            restarts=self.restarts,
            last_error=self.last_error,
            position=self.progress.position,
            lag=self.progress.lag,
            lag_seconds=self.progress.lag_seconds,
            updated_at=self.supervisor.clock.now(),
        )

    async def run(self) -> None:
        """Run the worker until stopped or failed, retrying transient failures."""
        supervisor = self.supervisor
        stop = supervisor.stopping
        while not stop.is_set():
            self.set_state(STARTING)
            try:
                await self.worker.run(WorkerContext(self))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = describe(exc, supervisor.secrets)
                if classify(exc) == FATAL:
                    self.failure = exc
                    # An expected failure is the state-change line alone; a bug adds its traceback.
                    if user_message(exc) is None:
                        log.error("worker %s failed: %s", self.name, error, exc_info=exc)
                    self.set_state(FAILED, error)
                    return
                if stop.is_set():
                    break
                now = supervisor.clock.now()
                if self.trouble_since is None:
                    self.trouble_since = now
                delay = self.backoff.delay()
                self.count_restart()
                self.set_state(RETRYING, error)
                await supervisor.sleep(delay)
                continue
            break  # the worker finished (a finite source, or stop was set)
        self.set_state(STOPPED)


class Supervisor:
    """Runs workers as tasks, retries transient failures, keeps the others running after a fatal one."""

    def __init__(
        self,
        *,
        clock: Clock,
        instance: str,
        lease_seconds: float,
        workers: Workers | None = None,
        secrets: Iterable[str] = (),
        first_delay: float = 0.1,
        max_delay: float = 30.0,
        rng_seed: int | None = None,
        on_change: Callable[[WorkerRecord], None] | None = None,
        metrics: WorkerMetrics | None = None,
        publish_every: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.instance = instance
        self.lease_seconds = lease_seconds
        self.store = workers
        self.secrets = tuple(s for s in secrets if s)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.rng_seed = rng_seed
        self.on_change = on_change
        self.metrics = metrics
        # The refresh cadence of the stored states runs on real time: a fake clock that
        # advances on sleep must not be driven by it (the records' times use `clock`).
        self._publish_every = publish_every
        self.stopping = asyncio.Event()
        self._workers: dict[str, Supervised] = {}
        self._publisher: asyncio.Task[None] | None = None
        self._published = False  # records of this instance may be stored (removed at stop)
        self._removed: set[str] = set()  # removed workers whose stored records are to go
        # One publication at a time: a record being written never outlives its worker's removal.
        self._publishing = asyncio.Lock()
        self.started = False

    # -- workers -----------------------------------------------------------------------------
    def add(self, worker: Worker) -> Supervised:
        """Supervise a worker (started at once when the supervisor runs already)."""
        if worker.name in self._workers and self._workers[worker.name].state not in (
            FAILED,
            STOPPED,
        ):
            raise ValueError(f"a worker named {worker.name} is already running")
        rng = random.Random(self.rng_seed) if self.rng_seed is not None else None
        backoff = Backoff(first=self.first_delay, cap=self.max_delay, rng=rng)
        supervised = Supervised(self, worker, backoff)
        self._workers[worker.name] = supervised
        self._removed.discard(worker.name)
        if self.metrics is not None:
            self.metrics.worker_added(worker.name)
        if self.started:
            self._launch(supervised)
        return supervised

    def _launch(self, supervised: Supervised) -> None:
        supervised.task = asyncio.create_task(supervised.run(), name=supervised.name)

    async def remove(self, name: str) -> None:
        """Stop a worker (cancelled: its work is gone) and forget it: its record and series go."""
        supervised = self._workers.pop(name, None)
        if supervised is None:
            return
        if supervised.task is not None:
            await cancel_and_wait([supervised.task])
        supervised.set_state(STOPPED)
        with contextlib.suppress(Exception):
            await supervised.worker.close()
        if self.metrics is not None:
            self.metrics.worker_removed(name)
        self._removed.add(name)
        log.info("worker %s removed", name)
        try:  # at once; else the next publication removes the record
            await within(self.publish(), REMOVE_SECONDS)
        except Exception as exc:
            log.warning(
                "could not remove the state of worker %s yet: %s", name, describe(exc, self.secrets)
            )

    def get(self, name: str) -> Supervised | None:
        """The supervised worker of that name, if this instance runs it."""
        return self._workers.get(name)

    @property
    def workers(self) -> Sequence[Supervised]:
        """Every supervised worker, in the order added."""
        return list(self._workers.values())

    def changed(self, supervised: Supervised) -> None:
        """Called on each state change (metrics hook)."""
        if self.on_change is not None:
            self.on_change(supervised.record())

    async def sleep(self, seconds: float) -> None:
        """Wait on the clock, or less when the supervisor stops meanwhile."""
        await self._interruptible(self.clock.sleep(seconds))

    async def _interruptible(self, waiting: Awaitable[None]) -> None:
        sleeping = asyncio.ensure_future(waiting)
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((sleeping, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Never `await` a cancelled helper under suppress(CancelledError): a cancellation
            # of this task arriving meanwhile would be swallowed with the helper's.
            await cancel_and_wait((sleeping, stopped))

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker, and the publisher of their states."""
        self.started = True
        for supervised in self._workers.values():
            self._launch(supervised)
        # Publishes once a store is set (an app may reach its database later).
        self._publisher = asyncio.create_task(self._publish_loop(), name="worker-states")

    async def restart(self, name: str) -> Supervised:
        """Start a failed (or stopped) worker again; KeyError when unknown, ValueError when running."""
        supervised = self._workers.get(name)
        if supervised is None:
            raise KeyError(name)
        if supervised.state not in (FAILED, STOPPED) or (
            supervised.task is not None and not supervised.task.done()
        ):
            raise ValueError(
                f"{name} is {supervised.state}: only a failed or stopped worker restarts"
            )
        if self.stopping.is_set():
            raise ValueError("the supervisor is stopping")
        supervised.count_restart()
        supervised.failure = None
        supervised.healthy()
        self._launch(supervised)
        await asyncio.sleep(0)  # let it enter `starting`
        return supervised

    async def wait(self, name: str) -> None:
        """Wait until that worker's task ends (stopped or failed)."""
        supervised = self._workers[name]
        if supervised.task is not None:
            await asyncio.shield(supervised.task)

    async def stop(self, grace: float = 5.0, *, release: float = REMOVE_SECONDS) -> None:
        """Stop every worker (bounded wait for batches in flight), close them, publish, forget.

        After `grace`, what the stop still asks of the database (the lease releases of the
        workers cancelled then, the publisher's last write, the removal of this instance's
        records) shares one deadline of `release` seconds, done concurrently: a database
        that does not answer delays the stop by at most `grace + release`. A lease not
        released then expires (LEASE_SECONDS); records not removed read `stale`.
        """
        self.stopping.set()
        loop = asyncio.get_running_loop()
        tasks = [s.task for s in self._workers.values() if s.task is not None]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        deadline = loop.time() + release
        helpers = [*pending, *([self._publisher] if self._publisher is not None else [])]
        left = await cancel_within(helpers, deadline - loop.time())
        for supervised in list(self._workers.values()):
            if supervised.state != FAILED:
                supervised.set_state(STOPPED)
        closing = [
            asyncio.ensure_future(_quietly(s.worker.close())) for s in self._workers.values()
        ]
        # A close touches no database (it ends what outlives a run): each gets its turn.
        left += await cancel_within(
            closing, max(deadline - loop.time(), CLOSE_SECONDS), cancel=False
        )
        if left:
            log.warning(
                "stopped without waiting for %d task(s) still waiting on the database", left
            )
        if self.store is not None and self._published:
            # A cleanly stopped instance runs no worker: its records go (a crashed one's go
            # stale). Bounded: a database that does not answer must not hold the shutdown.
            try:
                await within(self.store.remove(self.instance), max(deadline - loop.time(), 0))
            except Exception as exc:
                log.warning("could not remove this instance's worker states: %r", exc)

    # -- what it says ------------------------------------------------------------------------
    async def records(self, seconds: float = REMOVE_SECONDS) -> list[WorkerRecord]:
        """This instance's workers as records, with fresh progress (a failing probe keeps the last).

        The probes run side by side, each for at most `seconds`: however the database
        misbehaves, the records come within about that.
        """
        supervised_now = list(self._workers.values())  # workers come and go meanwhile
        await asyncio.gather(*(s.probe(seconds) for s in supervised_now))
        out = []
        for supervised in supervised_now:
            record = supervised.record()
            if (
                self.metrics is not None
                and record.kind == CAPTURE
                and record.lag_seconds is not None
            ):
                self.metrics.capture_lag(record.name, record.lag_seconds)
            out.append(record)
        return out

    def trouble(self, name: str, unhealthy_after: float) -> str | None:
        """Why that worker is unhealthy (failed, or retrying longer than `unhealthy_after`), or None."""
        supervised = self._workers.get(name)
        if supervised is None:
            return None
        if supervised.state == FAILED:
            return f"{name} failed: {supervised.last_error}"
        since = supervised.trouble_since
        if since is not None:
            waited = (self.clock.now() - since).total_seconds()
            if waited > unhealthy_after:
                return f"{name} has been retrying for {waited:.0f}s: {supervised.last_error}"
        return None

    async def publish(self) -> None:
        """Write this instance's records to the store now, and remove those of removed workers."""
        if self.store is None:
            return
        async with self._publishing:
            if self._workers:
                await self.store.put(await self.records())
                self._published = True
            for name in sorted(self._removed - self._workers.keys()):
                await self.store.remove_worker(self.instance, name)
                self._removed.discard(name)

    async def _publish_loop(self) -> None:
        interval = max(self.lease_seconds / 2, 0.01)
        failing = False
        while not self.stopping.is_set():
            try:
                await self.publish()
                if failing:
                    log.info("worker states recorded again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("could not record worker states: %s", describe(exc, self.secrets))
                failing = True
            await self._interruptible(self._publish_every(interval))


async def _quietly(work: Awaitable[None]) -> None:
    """`await work`, its failure ignored (a worker's `close` at stop)."""
    with contextlib.suppress(Exception):
        await work
