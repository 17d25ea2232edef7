"""Projections as supervised workers: one follows a projection, one runs a requested rebuild."""

from __future__ import annotations

from eventstore.model import Job
from eventstore.supervisor import Progress, WorkerContext
from eventstore.worker_state import PROJECTION, REBUILD
from projections.runner import ProjectionRunner


class ProjectionWorker:
    """Follows one projection from its checkpoint (name: its lease role, `projection:<name>`)."""

    kind = PROJECTION

    def __init__(self, runner: ProjectionRunner, *, until_caught_up: bool = False) -> None:
        self.runner = runner
        self.until_caught_up = until_caught_up
        self._ctx: WorkerContext | None = None
        runner.on_step = self._on_step
        runner.lease.observer = self._on_lease

    @property
    def name(self) -> str:
        """The projection's lease role."""
        return self.runner.role

    def _on_step(self) -> None:
        if self._ctx is not None:
            self._ctx.healthy()

    def _on_lease(self, state: str) -> None:
        if self._ctx is not None:
            self._ctx.report(state)

    async def run(self, ctx: WorkerContext) -> None:
        """Follow the log while holding the lease (a standby waits), from the checkpoint."""
        self._ctx = ctx
        await self.runner.run(stop=ctx.stop, until_caught_up=self.until_caught_up)

    async def progress(self) -> Progress:
        """The checkpoint's seq, the events between it and the head, and how long the oldest
        of those has waited (since it was recorded; 0 when caught up)."""
        store = self.runner.store
        head = (await store.events.head()).seq
        position = await self.runner.position()
        lag = max(head - position, 0)
        seconds = 0.0
        if lag:
            oldest = await store.events.read(after_seq=position, limit=1)
            if oldest:
                waited = self.runner.clock.now() - oldest[0].recorded_at
                seconds = max(waited.total_seconds(), 0.0)
        return Progress(position=position, lag=lag, lag_seconds=seconds)

    async def close(self) -> None:
        """Nothing outlives a run."""


class RebuildWorker:
    """Runs one requested rebuild here (nobody held the projection's lease), then ends.

    Named `rebuild:<projection>`: the instance may also supervise the projection itself.
    """

    kind = REBUILD

    def __init__(self, runner: ProjectionRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        self.done = False

    @property
    def name(self) -> str:
        """`rebuild:<projection>`."""
        return f"rebuild:{self.runner.projection.name}"

    async def run(self, ctx: WorkerContext) -> None:
        """Run the job while holding the lease, then give the lease back (a retry takes it again)."""
        if self.done:
            return
        if not self.runner.lease.held and not await self.runner.lease.try_acquire():
            return  # another instance took the projection: its holder runs queued jobs
        ctx.report("running")
        try:
            await self.runner.run_job(self.job)
            self.done = True
        finally:
            await self.runner.hand_back()

    async def progress(self) -> Progress:
        """The rebuild's progress as recorded in its job."""
        job = await self.runner.store.jobs.get(self.job.job) or self.job
        return Progress(position=job.processed, lag=max(job.total - job.processed, 0))

    async def close(self) -> None:
        """Nothing outlives a run."""
