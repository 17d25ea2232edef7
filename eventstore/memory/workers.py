"""Worker states in process memory."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from eventstore.codec import utc_ms
from eventstore.worker_state import WorkerRecord


class MemoryWorkers:
    """The `Workers` port over a dict keyed by instance and name."""

    def __init__(self) -> None:
        self._records: dict[str, WorkerRecord] = {}

    async def put(self, records: Sequence[WorkerRecord]) -> None:
        """Store (replace) these records, times at millisecond precision as MongoDB keeps them."""
        for r in records:
            self._records[r.key] = msgspec.structs.replace(
                r, since=utc_ms(r.since), updated_at=utc_ms(r.updated_at)
            )

    async def all(self) -> list[WorkerRecord]:
        """Every record, by name then instance."""
        return sorted(self._records.values(), key=lambda r: (r.name, r.instance))

    async def remove(self, instance: str) -> None:
        """Forget an instance's records."""
        for key in [k for k, r in self._records.items() if r.instance == instance]:
            del self._records[key]

    async def remove_worker(self, instance: str, name: str) -> None:
        """Forget an instance's record of one worker."""
        self._records.pop(f"{instance}/{name}", None)
