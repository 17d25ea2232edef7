"""Projections as supervised workers: one follows a projection, one runs a requested rebuild,
one claims partitions of any instance's partitioned rebuild."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from eventstore.awaiting import wait_set
from eventstore.model import Job
from eventstore.ports import Clock, Store
from eventstore.supervisor import Progress, WorkerContext
from eventstore.worker_state import PROJECTION, REBUILD
from projections.api import Projection
from projections.claims import run_claimed
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


class PartitionClaimer:
    """Claims and folds partitions of other instances' partitioned rebuilds (any projection).

    Every instance running the service has one: it looks for a running job with a
    claimable partition (queued, or claimed by an instance that died), folds it in
    a process of its own, stages its rows and marks it done (`projections.claims`).
    """

    kind = REBUILD
    name = "rebuild:partitions"

    def __init__(
        self,
        store: Store,
        projections: Sequence[Projection],
        *,
        clock: Clock,
        owner: str,
        lease_seconds: float,
        batch_size: int = 1000,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.projections = [p for p in projections if p.merge is not None]
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        # Fold in a forked process (False: in-process; tests use it).
        self.processes = True
        self.folded = 0

    async def claim_once(self) -> bool:
        """Claim one claimable partition of any projection's running job and fold it.

        True when one was claimed (whatever became of it), False when none was claimable.
        """
        for projection in self.projections:
            job = await self.store.jobs.active(projection.name)
            if job is None or job.state != "running" or not job.head or not job.partitions:
                continue
            now = self.clock.now()
            claimed = await self.store.jobs.claim_partition(
                job.job,
                owner=self.owner,
                now=now,
                until=now + timedelta(seconds=self.lease_seconds),
            )
            if claimed is None:
                continue
            if await run_claimed(
                self.store,
                projection,
                job,
                claimed,
                clock=self.clock,
                lease_seconds=self.lease_seconds,
                batch_size=self.batch_size,
                processes=self.processes,
            ):
                self.folded += 1
            return True
        return False

    async def run(self, ctx: WorkerContext) -> None:
        """Claim partitions while there are any; look again every `poll_seconds`."""
        ctx.report("running")
        while not ctx.stop.is_set():
            if await self.claim_once():
                ctx.healthy()
                continue
            await wait_set(ctx.stop, self.poll_seconds)

    async def progress(self) -> Progress:
        """No position of its own: each partition's progress is in its job."""
        return Progress()

    async def close(self) -> None:
        """Nothing outlives a run."""
