"""Rebuild jobs in MongoDB: an `active` field, unique and sparse, admits one active job per projection."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import msgspec
from pymongo.errors import DuplicateKeyError

from eventstore.codec import as_utc
from eventstore.model import Job, Partition, claimable, taken_by
from eventstore.mongo.collections import JOBS
from eventstore.ports import JobConflict


def _doc(job: Job) -> dict[str, Any]:
    doc = {"_id": job.job, **msgspec.to_builtins(job, builtin_types=(datetime,))}
    del doc["job"]
    if job.active:
        doc["active"] = job.projection  # unique: the server refuses a second active job
    return doc


def _partition_doc(p: Partition) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(p, builtin_types=(datetime,))
    return out


def _partition(doc: dict[str, Any]) -> Partition:
    fields = {k: v for k, v in doc.items() if k in Partition.__struct_fields__}
    fields["expires_at"] = as_utc(fields.get("expires_at"))
    return Partition(**fields)


def _job(doc: dict[str, Any]) -> Job:
    fields = {k: v for k, v in doc.items() if k in Job.__struct_fields__}
    for name in ("requested_at", "started_at", "finished_at"):
        fields[name] = as_utc(fields.get(name))
    fields["partitions"] = [_partition(p) for p in fields.get("partitions") or []]
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
        """Store a job's fields but its partitions (dropping `active` once it has finished).

        The partitions are left as stored: other instances claim them meanwhile.
        """
        fields = _doc(job)
        del fields["_id"], fields["partitions"]
        change: dict[str, Any] = {"$set": fields}
        if "active" not in fields:
            change["$unset"] = {"active": ""}
        await self._coll.update_one({"_id": job.job}, change, upsert=True)

    async def set_partitions(self, job_id: str, partitions: list[Partition]) -> None:
        """Replace a job's partitions."""
        await self._coll.update_one(
            {"_id": job_id}, {"$set": {"partitions": [_partition_doc(p) for p in partitions]}}
        )

    async def claim_partition(
        self, job_id: str, *, owner: str, now: datetime, until: datetime
    ) -> Partition | None:
        """Claim the next claimable partition: compare-and-set on its state and claim token.

        Two instances reading the same partition as claimable both try; the server
        applies one update, the other matches nothing and looks again.
        """
        for _ in range(_CLAIM_TRIES):
            doc = await self._coll.find_one({"_id": job_id})
            if doc is None or doc.get("state") != "running":
                return None
            found = claimable(_job(doc).partitions, now)
            if found is None:
                return None
            claimed = taken_by(found, owner=owner, claim=uuid.uuid4().hex, until=until)
            at = f"partitions.{found.index}"
            done = await self._coll.update_one(
                {"_id": job_id, f"{at}.state": found.state, f"{at}.claim": found.claim},
                {"$set": {at: _partition_doc(claimed)}},
            )
            if done.modified_count == 1:
                return claimed
        return None

    async def renew_partition(
        self, job_id: str, claimed: Partition, *, until: datetime, processed: int, total: int
    ) -> bool:
        """Extend a claim still held (its token and `running` state are the filter)."""
        at = f"partitions.{claimed.index}"
        done = await self._coll.update_one(
            _held(job_id, claimed),
            {
                "$set": {
                    f"{at}.expires_at": until,
                    f"{at}.processed": processed,
                    f"{at}.total": total,
                }
            },
        )
        return bool(done.modified_count == 1)

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
        at = f"partitions.{claimed.index}"
        done = await self._coll.update_one(
            _held(job_id, claimed),
            {
                "$set": {
                    f"{at}.state": state,
                    f"{at}.processed": processed,
                    f"{at}.total": total,
                    f"{at}.error": error,
                    f"{at}.failed_seq": failed_seq,
                    f"{at}.expires_at": None,
                }
            },
        )
        return bool(done.modified_count == 1)


# How often a claim looks again after another instance's claim won the same partition.
_CLAIM_TRIES: Final = 32


def _held(job_id: str, claimed: Partition) -> dict[str, Any]:
    """The filter matching a partition only while this claim holds it."""
    at = f"partitions.{claimed.index}"
    return {"_id": job_id, f"{at}.state": "running", f"{at}.claim": claimed.claim}
