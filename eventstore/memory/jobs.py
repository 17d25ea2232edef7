"""Rebuild jobs in memory: at most one active job per projection; partitions claimed atomically."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from eventstore.model import Job, Partition, claimable, taken_by
from eventstore.ports import JobConflict


class MemoryJobs:
    """The `Jobs` port over a dict (one event loop: a read and its write are never interleaved)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    async def create(self, job: Job) -> None:
        """Record a queued job unless one is active for the projection."""
        if await self.active(job.projection) is not None:
            raise JobConflict(f"a rebuild of {job.projection} is already queued or running")
        self._jobs[job.job] = job

    async def get(self, job_id: str) -> Job | None:
        """A job by id."""
        return self._jobs.get(job_id)

    async def active(self, projection: str) -> Job | None:
        """The active job of a projection."""
        return next(
            (j for j in self._jobs.values() if j.projection == projection and j.active), None
        )

    async def update(self, job: Job) -> None:
        """Replace a job's record, keeping its partitions as stored."""
        old = self._jobs.get(job.job)
        if old is not None:
            job = msgspec.structs.replace(job, partitions=old.partitions)
        self._jobs[job.job] = job

    async def set_partitions(self, job_id: str, partitions: list[Partition]) -> None:
        """Replace a job's partitions."""
        job = self._jobs.get(job_id)
        if job is not None:
            self._jobs[job_id] = msgspec.structs.replace(job, partitions=list(partitions))

    async def claim_partition(
        self, job_id: str, *, owner: str, now: datetime, until: datetime
    ) -> Partition | None:
        """Claim the next claimable partition of a running job."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "running":
            return None
        found = claimable(job.partitions, now)
        if found is None:
            return None
        claimed = taken_by(found, owner=owner, claim=uuid.uuid4().hex, until=until)
        self._put(job, claimed)
        return claimed

    async def renew_partition(
        self, job_id: str, claimed: Partition, *, until: datetime, processed: int, total: int
    ) -> bool:
        """Extend a claim still held."""
        job, held = self._held(job_id, claimed)
        if job is None or held is None:
            return False
        self._put(
            job,
            msgspec.structs.replace(held, expires_at=until, processed=processed, total=total),
        )
        return True

    async def finish_partition(
        self,
        job_id: str,
        claimed: Partition,
        *,
        state: str,
        processed: int,
        total: int,
        error: str | None = None,
        failed_seq: int | None = None,
    ) -> bool:
        """End a claim still held."""
        job, held = self._held(job_id, claimed)
        if job is None or held is None:
            return False
        done = msgspec.structs.replace(
            held,
            state=state,
            processed=processed,
            total=total,
            error=error,
            failed_seq=failed_seq,
            expires_at=None,
        )
        self._put(job, done)
        return True

    def _held(self, job_id: str, claimed: Partition) -> tuple[Job | None, Partition | None]:
        job = self._jobs.get(job_id)
        if job is None or claimed.index >= len(job.partitions):
            return None, None
        held = job.partitions[claimed.index]
        if held.state != "running" or held.claim is None or held.claim != claimed.claim:
            return job, None
        return job, held

    def _put(self, job: Job, partition: Partition) -> None:
        parts = list(job.partitions)
        parts[partition.index] = partition
        self._jobs[job.job] = msgspec.structs.replace(job, partitions=parts)
