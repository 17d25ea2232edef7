"""Worker states on MongoDB: the `workers` collection, one document per instance and worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore.codec import as_utc, utc_ms
from eventstore.mongo.collections import WORKERS
from eventstore.worker_state import WorkerRecord


def _doc(record: WorkerRecord) -> dict[str, Any]:
    doc = msgspec.to_builtins(record, builtin_types=(datetime,))
    doc["since"] = utc_ms(record.since)
    doc["updated_at"] = utc_ms(record.updated_at)
    return {"_id": record.key, **doc}


def _record(doc: dict[str, Any]) -> WorkerRecord:
    fields = {k: v for k, v in doc.items() if k in WorkerRecord.__struct_fields__}
    fields["since"] = as_utc(fields["since"])
    fields["updated_at"] = as_utc(fields["updated_at"])
    return WorkerRecord(**fields)


class MongoWorkers:
    """The `Workers` port over the `workers` collection (`_id` = `<instance>/<name>`)."""

    def __init__(self, db: Any) -> None:
        self._coll = db[WORKERS]

    async def put(self, records: Sequence[WorkerRecord]) -> None:
        """Store (replace) these records; an instance has a handful, one command each."""
        for record in records:
            doc = _doc(record)
            await self._coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def all(self) -> list[WorkerRecord]:
        """Every record, by name then instance."""
        docs = [doc async for doc in self._coll.find({})]
        return sorted((_record(d) for d in docs), key=lambda r: (r.name, r.instance))

    async def remove(self, instance: str) -> None:
        """Forget an instance's records."""
        await self._coll.delete_many({"instance": instance})

    async def remove_worker(self, instance: str, name: str) -> None:
        """Forget an instance's record of one worker."""
        await self._coll.delete_one({"_id": f"{instance}/{name}"})
