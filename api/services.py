"""What the routes work with: the store, the history service, the projections, readiness.

One `Services` per app, created by the plugin at startup (nothing connects at
import). When the database cannot be reached at startup the app still serves:
`/health/live` answers, `/health/ready` and the `/v1` routes answer 503 while a
background task keeps trying to connect.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeAlias, TypeVar

from litestar.di import NamedDependency
from pymongo.errors import OperationFailure

from api.metrics import Metrics
from api.problems import ApiError
from api.rendered import RenderedHistory
from api.workers import claimer
from eventstore.awaiting import cancel_and_wait, unless_set, within
from eventstore.clock import SystemClock
from eventstore.errors import user_message
from eventstore.history import History
from eventstore.keys import shown_key
from eventstore.leasing import default_owner
from eventstore.model import Job
from eventstore.ports import Clock, JobConflict, Store
from eventstore.settings import Settings
from eventstore.storage import StoreError, open_store
from eventstore.supervisor import Supervisor
from eventstore.worker_state import WorkerRecord, shown
from projections.orders import ORDER_PROJECTIONS, Projection

log = logging.getLogger("eventstore.api")

RETRY_SECONDS: Final = 2.0

T = TypeVar("T")


class NoAnswer(Exception):
    """The database did not answer within SERVER_TIMEOUT_MS (a 503 where a route needs it)."""


class Services:
    """The app's dependencies; `store` is None until the database has been reached."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        projections: Sequence[Projection] = ORDER_PROJECTIONS,
        caught_up: Callable[[], bool] | None = None,
        supervisor: Supervisor | None = None,
        capture: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.projections = {p.name: p for p in projections}
        self.metrics = metrics or Metrics()
        self.rendered = RenderedHistory()
        # Where this process captures: True once the ingester has caught up (readiness).
        self.caught_up = caught_up
        # This process's background workers (rebuilds requested here run under it too), and
        # the name of its capture worker, whose trouble takes readiness down (None: no capture).
        self._owns_supervisor = supervisor is None
        self.supervisor = supervisor or Supervisor(
            clock=self.clock,
            instance=default_owner(),
            lease_seconds=settings.lease_seconds,
            secrets=[k for k in (settings.admin_key, *settings.read_keys) if k],
            metrics=self.metrics,
        )
        self.capture = capture
        self._store = store
        self._owns_store = store is None
        self._history: History | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: asyncio.Task[None] | None = None
        # Set when the server is asked to stop: a start-up waiting for the database gives up.
        self._interrupted = asyncio.Event()
        self.started = time.time()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, or keep trying in the background when the database is away."""
        if self._owns_supervisor:
            await self.supervisor.start()
        if self._store is not None:
            self._connected()
            return
        try:
            # A stop asked meanwhile (SIGINT/SIGTERM) ends the wait at once: the app then
            # starts without a store and stops at once, as asked.
            store = await unless_set(open_store(self.settings), self._interrupted)
        except StoreError as exc:
            log.warning("database not reachable yet (%s); retrying every %ss", exc, RETRY_SECONDS)
            self._connecting = asyncio.create_task(self._connect_later())
            return
        if store is None:
            log.info("stopping before the database was reached")
            return
        self._store = store
        self._connected()

    def interrupt(self) -> None:
        """A stop was asked (call on the app's loop): a start-up waiting for the database ends."""
        self._interrupted.set()

    def _connected(self) -> None:
        """The store is open: the supervisor this app owns records its workers' states there."""
        if self._owns_supervisor and self._store is not None:
            self.supervisor.store = self._store.workers
            if not self.settings.is_memory:  # `serve` folds partitions of any instance's rebuild
                self.supervisor.add(
                    claimer(
                        self._store,
                        list(self.projections.values()),
                        self.settings,
                        clock=self.clock,
                        owner=self.supervisor.instance,
                    )
                )

    async def _connect_later(self) -> None:
        while self._store is None:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                self._store = await open_store(self.settings)
                self._connected()
                log.info("database reached")
            except StoreError:
                continue

    async def stop(self) -> None:
        """Cancel background work (rebuilds started here resume on another instance) and close."""
        tasks = [*self._tasks, *([self._connecting] if self._connecting else [])]
        await cancel_and_wait(tasks)
        if self._owns_supervisor:
            await self.supervisor.stop(release=self.db_seconds)
        if self._store is not None and self._owns_store:
            await self._store.close()
            self._store = None

    # -- access ------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store; 503 while the database has not been reached."""
        if self._store is None:
            raise ApiError(503, "the database is not reachable yet", kind="unavailable")
        return self._store

    @property
    def connected(self) -> bool:
        return self._store is not None

    @property
    def db_seconds(self) -> float:
        """How long the app's own reads (readiness, metrics, workers) wait for the database."""
        return self.settings.server_timeout_ms / 1000

    async def answered(self, work: Awaitable[T]) -> T:
        """`await work`, or `NoAnswer` when the database does not answer within `db_seconds`."""
        try:
            return await within(work, self.db_seconds)
        except TimeoutError:
            raise NoAnswer(
                f"the database does not answer (no answer within {self.settings.server_timeout_ms} ms)"
            ) from None

    async def reachable(self, work: Awaitable[T]) -> T:
        """`await work` for a route: a 503 problem when the database does not answer in time."""
        try:
            return await self.answered(work)
        except NoAnswer as exc:
            raise ApiError(503, f"{exc}; try again shortly", kind="unavailable") from None

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History.from_settings(self.store, self.settings)
        return self._history

    def projection(self, name: str) -> Projection:
        """A projection by name; 404 listing the known ones."""
        found = self.projections.get(name)
        if found is None:
            known = ", ".join(self.projections)
            raise ApiError(
                404, f"unknown projection {shown_key(name)} (known: {known})", kind="not-found"
            )
        return found

    async def ready(self) -> tuple[bool, str]:
        """Readiness: the database answers, and this process's capture (if any) is healthy.

        Capture is unhealthy when failed, or retrying longer than UNHEALTHY_AFTER; a
        capturing process is ready once it has caught up with the source once. Other
        workers' trouble (a projection) never makes the process unready.
        """
        if self._store is None:
            return False, "the database is not reachable yet"
        try:
            await self.answered(self._store.events.head())
        except NoAnswer as exc:  # a database that never answers must not hold the probe
            return False, str(exc)
        except Exception as exc:  # any failure to read means not ready, said as what it is
            # (refused credentials are an answer: "does not answer" would send one looking
            # at the network)
            said = user_message(exc) if isinstance(exc, OperationFailure) else None
            return False, said or f"the database does not answer ({type(exc).__name__})"
        if self.capture is not None:
            trouble = self.supervisor.trouble(self.capture, self.settings.unhealthy_after)
            if trouble is not None:
                return False, trouble
        if self.caught_up is not None and not self.caught_up():
            return False, "the ingester has not caught up with the source yet"
        return True, "ready"

    def local_workers(self) -> list[dict[str, Any]]:
        """`[{name, state, last_error}]` of this process's workers (the readiness body)."""
        return [
            {"name": s.name, "state": s.state, "last_error": s.last_error}
            for s in self.supervisor.workers
        ]

    async def worker_records(
        self, mine: Awaitable[list[WorkerRecord]] | None = None
    ) -> list[WorkerRecord]:
        """Every instance's workers: this one's live, the others' as stored (or `stale`).

        Every instance's means the `workers` collection: while it cannot be read (or the
        database is not reached yet) this is a 503, never this instance's alone as if
        it were all. This instance's probes and the stored records are read side by
        side, within about SERVER_TIMEOUT_MS (`mine`: this instance's records, when the
        caller probes them already).
        """
        store = self.store  # 503 while the database has not been reached
        local, stored = await both(
            mine if mine is not None else self.supervisor.records(self.db_seconds),
            self.reachable(store.workers.all()),
        )
        instance = self.supervisor.instance
        now = self.clock.now()
        lease = self.settings.lease_seconds
        others = [shown(r, now=now, lease_seconds=lease) for r in stored if r.instance != instance]
        return sorted([*local, *others], key=lambda r: (r.name, r.instance))

    # -- rebuilds ----------------------------------------------------------------------------
    async def request_rebuild(self, name: str, *, workers: int = 1) -> Job:
        """Record a rebuild job; run it here, in the background, when nobody holds the lease.

        Raises `JobConflict` (409) while a rebuild of the projection is queued or running.
        """
        from projections.runner import ProjectionRunner

        projection = self.projection(name)
        runner = ProjectionRunner(
            self.store,
            projection,
            clock=self.clock,
            history=self.history,
            batch_size=self.settings.batch_size,
            lease_seconds=self.settings.lease_seconds,
            state_cache=self.settings.state_cache,
        )
        note = None
        if projection.merge is None and workers > 1:  # it rebuilds with one worker, and says so
            note = f"{name} has no merge: rebuilt with one worker ({workers} asked)"
            workers = 1
        job = Job(
            job=uuid.uuid4().hex,
            projection=name,
            requested_at=self.clock.now(),
            workers=workers,
            note=note,
        )
        await self.store.jobs.create(job)
        if await runner.lease.try_acquire():
            from projections.worker import RebuildWorker

            self.supervisor.add(RebuildWorker(runner, job))
        return job

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run work in the background, kept until it ends (cancelled at shutdown)."""

        async def wrapped() -> Any:
            return await work

        task = asyncio.ensure_future(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def both(first: Awaitable[T], second: Awaitable[Any]) -> tuple[T, Any]:
    """Two awaitables side by side; the first failure is raised and the other one cancelled."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await asyncio.wait(tasks)
        return tasks[0].result(), tasks[1].result()
    finally:
        await cancel_and_wait(tasks)


# What handlers declare to receive the app's `Services` (injected by name: `services`).
ServicesDep: TypeAlias = NamedDependency[Services]

__all__ = ["JobConflict", "NoAnswer", "Services", "ServicesDep", "both"]
