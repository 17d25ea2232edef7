"""The background work of `eventstore run`: the ingester and the projector, in the API's lifespan.

Every instance starts both; leases decide who works (DESIGN.md "Leases"): one
instance captures and one runs each projection, the others stand by and take
over when a holder's lease expires. On stop: no new batches, checkpoints are
already stored with each batch, leases are released.

Readiness: a standby is ready when the database answers; the capturing instance
once its ingester has caught up with the source (`caught_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from eventstore.badinput import BadChange
from eventstore.ingester import Ingester
from eventstore.ports import ChangeSource, Clock, Store
from eventstore.settings import Settings
from projections.orders import ORDER_PROJECTIONS, Projection
from projections.runner import ProjectionRunner

log = logging.getLogger("eventstore.run")

Workload = Callable[[], Coroutine[Any, Any, None]]


class Workers:
    """The ingester (with the simulator's workload, if any) and one runner per projection."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        source: ChangeSource,
        *,
        clock: Clock,
        workload: Workload | None = None,
        projections: Sequence[Projection] = ORDER_PROJECTIONS,
        owner: str | None = None,
        on_caught_up: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.ingester = Ingester(
            store=store, source=source, settings=settings, clock=clock, owner=owner
        )
        self.runners = [
            ProjectionRunner(
                store,
                p,
                clock=clock,
                batch_size=settings.batch_size,
                lease_seconds=settings.lease_seconds,
                owner=owner,
            )
            for p in projections
        ]
        self.workload = workload
        self.on_caught_up = on_caught_up
        self.stopping = asyncio.Event()
        self._caught_up_once = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.failure: BaseException | None = None

    def caught_up(self) -> bool:
        """Readiness of capture: caught up once, or standing by (another instance captures)."""
        return self._caught_up_once or not self.ingester.lease.held

    async def start(self) -> None:
        """Start capturing and projecting in the background."""
        self._tasks = [asyncio.create_task(self._capture(), name="ingester")]
        self._tasks += [
            asyncio.create_task(r.run(stop=self.stopping), name=f"projection:{r.projection.name}")
            for r in self.runners
        ]

    async def _capture(self) -> None:
        workload: asyncio.Task[None] | None = None
        try:
            await self.ingester.run(until_idle=True, stop=self.stopping)
            if self.stopping.is_set():
                return
            self._caught_up_once = True
            log.info("capture caught up at seq %s", (await self.store.events.head()).seq)
            if self.on_caught_up is not None:
                await self.on_caught_up()
            if self.workload is not None:
                workload = asyncio.create_task(self.workload(), name="workload")
            await self.ingester.run(stop=self.stopping)
        except BadChange as exc:  # expected, and fatal: one line naming source and position
            self.failure = exc
            log.error("capture stopped at a change it cannot interpret: %s", exc)
        except Exception as exc:
            self.failure = exc
            log.exception("capture stopped")
        finally:
            if workload is not None and not workload.done():
                workload.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workload

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work and wait (bounded) for batches in flight; leases are released."""
        self.stopping.set()
        if not self._tasks:
            return
        done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("%s ended with %r", task.get_name(), task.exception())
