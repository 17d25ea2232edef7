"""Rebuild jobs in MongoDB: an `active` field, unique and sparse, admits one active job per projection."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
from pymongo.errors import DuplicateKeyError

from eventstore.codec import as_utc
from eventstore.model import Job, Partition
from eventstore.mongo.collections import JOBS
from eventstore.ports import JobConflict


def _doc(job: Job) -> dict[str, Any]:
    doc = {"_id": job.job, **msgspec.to_builtins(job, builtin_types=(datetime,))}
    del doc["job"]
    if job.active:
        doc["active"] = job.projection  # unique: the server refuses a second active job
    return doc


def _job(doc: dict[str, Any]) -> Job:
    fields = {k: v for k, v in doc.items() if k in Job.__struct_fields__}
    for name in ("requested_at", "started_at", "finished_at"):
        fields[name] = as_utc(fields.get(name))
    fields["partitions"] = [msgspec.convert(p, Partition) for p in fields.get("partitions") or []]
    return Job(job=doc["_id"], **fields)


# At most one active (queued or running) job per projection: `active` holds its name while
# the job is active and is absent otherwise (unique and sparse). Migrations use it too.
ACTIVE_INDEX: Final = "active"


class MongoJobs:
    """The `Jobs` port over the `jobs` collection."""

    def __init__(self, db: Any) -> None:
        self._coll = db[JOBS]
        self._indexed = False

    async def _index(self) -> None:
        if not self._indexed:
            await self._coll.create_index(ACTIVE_INDEX, unique=True, sparse=True)
            self._indexed = True

    async def create(self, job: Job) -> None:
        """Insert a queued job; a second active one for the projection is a duplicate key."""
        await self._index()
        try:
            await self._coll.insert_one(_doc(job))
        except DuplicateKeyError:
            raise JobConflict(
                f"a rebuild of {job.projection} is already queued or running"
            ) from None

    async def get(self, job_id: str) -> Job | None:
        """A job by id."""
        doc = await self._coll.find_one({"_id": job_id})
        return _job(doc) if doc else None

    async def active(self, projection: str) -> Job | None:
        """The active job of a projection."""
        doc = await self._coll.find_one({"active": projection})
        return _job(doc) if doc else None

    async def update(self, job: Job) -> None:
        """Replace a job's record (dropping `active` once it has finished)."""
        await self._coll.replace_one({"_id": job.job}, _doc(job), upsert=True)
