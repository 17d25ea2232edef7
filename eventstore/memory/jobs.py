"""Rebuild jobs in process memory."""

from __future__ import annotations

from eventstore.model import Job
from eventstore.ports import JobConflict


class MemoryJobs:
    """The `Jobs` port over a dict."""

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
        """Replace a job's record."""
        self._jobs[job.job] = job
