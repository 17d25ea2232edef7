"""The ingester as a supervised worker: catch up once, then follow, from the checkpoint each run.

Readiness of capture needs it to have caught up with the source once (or to
stand by while another instance captures). A simulated workload, when given,
starts after that first catch-up and outlives retries; it stops with `close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final

from eventstore.awaiting import cancel_and_wait
from eventstore.ingester import Ingester, IngestStats
from eventstore.supervisor import Progress, WorkerContext
from eventstore.worker_state import CAPTURE, STALE, STANDBY, WorkerRecord

log = logging.getLogger("eventstore.run")

# How a refused signature starts in the capture worker's `last_error` (its standing problem).
SIGNING_REFUSED: Final = "checkpoint signing refused: "

Workload = Callable[[], Coroutine[Any, Any, None]]


class CaptureWorker:
    """Runs an `Ingester` under the supervisor (name: its lease role, `ingester:<db>`)."""

    kind = CAPTURE

    def __init__(
        self,
        ingester: Ingester,
        *,
        follow: bool = True,
        linger: bool = False,
        workload: Workload | None = None,
        on_caught_up: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.ingester = ingester
        self.follow = follow
        # Following a source that ends (a file): keep carrying out erasure requests, which
        # only capture does, until stopped (the service); else the run ends with the source.
        self.linger = linger
        self.workload = workload
        self.on_caught_up = on_caught_up
        self.caught_up_once = False
        # True while another instance holds the capture lease and this one waits for it.
        self.standing_by = False
        self._workload_task: asyncio.Task[None] | None = None
        self._ctx: WorkerContext | None = None
        # Standing problems capture runs on through, by kind (signing, the listings' index):
        # shown together as the worker's `last_error` until each is over.
        self._problems: dict[str, str] = {}
        self._on_batch_before = ingester.on_batch  # e.g. the CLI's progress line
        ingester.on_batch = self._on_batch
        ingester.lease.observer = self._on_lease
        if ingester.checkpointer is not None:
            ingester.checkpointer.on_refused = self._on_signing_refused
        ingester.on_index_problem = self._on_index_problem

    @property
    def name(self) -> str:
        """The ingester's lease role."""
        return self.ingester.name

    def caught_up(self) -> bool:
        """Readiness of capture: caught up once, or standing by (another instance captures).

        Before its first attempt at the lease this instance may be the one to capture: not yet.
        """
        return self.caught_up_once or self.standing_by

    @property
    def signs(self) -> bool:
        """Whether this capture signs its checkpoints (a SIGNING_KEY is set)."""
        checkpointer = self.ingester.checkpointer
        return checkpointer is not None and checkpointer.signer is not None

    @property
    def signing_refused(self) -> str | None:
        """Why signing is refused now (the log was rolled back or forked, ...), or None."""
        checkpointer = self.ingester.checkpointer
        return checkpointer.refused if checkpointer is not None else None

    def _on_batch(self, stats: IngestStats) -> None:
        if self._on_batch_before is not None:
            self._on_batch_before(stats)
        if self._ctx is not None:
            self._ctx.healthy()

    def _on_signing_refused(self, reason: str | None) -> None:
        """A refused signature (rollback or fork) is this worker's standing problem until over."""
        self._problem("signing", None if reason is None else f"{SIGNING_REFUSED}{reason}")

    def _on_index_problem(self, problem: str | None) -> None:
        """A listings' index that cannot be written is a standing problem until written again."""
        self._problem("index", problem)

    def _problem(self, kind: str, text: str | None) -> None:
        if text is None:
            self._problems.pop(kind, None)
        else:
            self._problems[kind] = text
        self._report_problems()

    def _report_problems(self) -> None:
        if self._ctx is not None:
            self._ctx.problem("; ".join(self._problems.values()) or None)

    def _on_lease(self, state: str) -> None:
        self.standing_by = state == STANDBY
        if self._ctx is not None:
            self._ctx.report(state)

    async def run(self, ctx: WorkerContext) -> None:
        """Catch up (first run only), then follow until stopped.

        With `follow=False` it ends once idle instead; with a workload as well, it
        waits for the workload to end and then captures what it wrote.
        """
        self._ctx = ctx
        checkpointer = self.ingester.checkpointer
        if checkpointer is not None and checkpointer.refused is not None:
            self._on_signing_refused(checkpointer.refused)  # refused before this run
        self._report_problems()
        stop = ctx.stop
        if not self.caught_up_once:
            await self.ingester.run(until_idle=True, stop=stop)
            if stop.is_set():
                return
            self.caught_up_once = True
            head = await self.ingester.store.events.head()
            log.info("capture caught up at seq %s", head.seq)
            if self.on_caught_up is not None:
                await self.on_caught_up()
            if self.workload is not None and self._workload_task is None:
                self._workload_task = asyncio.create_task(self.workload(), name="workload")
        if self.follow:
            await self.ingester.run(stop=stop, linger=self.linger)
            return
        task = self._workload_task
        if task is not None and not task.done():
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait([stopped])
            if stop.is_set():
                return
        if task is not None:
            await self.ingester.run(until_idle=True, stop=stop)  # what the workload wrote

    async def progress(self) -> Progress:
        """The log's head as position; lag in events unknown (a change stream has no count)."""
        head = await self.ingester.store.events.head()
        return Progress(
            position=head.seq,
            lag=None,
            lag_seconds=self.ingester.lag_seconds(self.ingester.clock.now()),
        )

    async def close(self) -> None:
        """Stop the workload, if any."""
        task = self._workload_task
        if task is not None:
            # asyncio.wait inside: a cancellation of the caller meanwhile is not swallowed.
            await cancel_and_wait([task])


def signing_refusal(records: Iterable[WorkerRecord]) -> str | None:
    """Which capture worker refuses to sign and why, from the workers' records (None: none).

    Any instance's: the one answering may not be the one capturing. A record that went
    stale (its instance is gone) says nothing about now.
    """
    for record in records:
        error = record.last_error
        if record.kind == CAPTURE and record.state != STALE and error and SIGNING_REFUSED in error:
            return f"{record.name} on {record.instance}: {error}"
    return None
