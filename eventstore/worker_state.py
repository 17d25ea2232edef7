"""What a background worker is doing, in one vocabulary for the API, the CLI, metrics and logs.

Pure: the record each instance writes to the `workers` collection, and how a
reader shows it (a record its instance stopped refreshing reads `stale`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

STARTING: Final = "starting"
RUNNING: Final = "running"
RETRYING: Final = "retrying"
STANDBY: Final = "standby"
PAUSED: Final = "paused"
DISABLED: Final = "disabled"
FAILED: Final = "failed"
STOPPED: Final = "stopped"
# Shown by readers only, never written: the instance stopped refreshing the record.
STALE: Final = "stale"
STATES: Final = (STARTING, RUNNING, RETRYING, STANDBY, PAUSED, DISABLED, FAILED, STOPPED)
# A stored record not refreshed for this many lease times reads `stale`.
STALE_AFTER_LEASES: Final = 3

CAPTURE: Final = "capture"
PROJECTION: Final = "projection"
REBUILD: Final = "rebuild"


class WorkerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One worker of one instance: `{name, kind, instance, state, since, restarts, ...}`.

    `name` is the worker's lease role (`ingester:shop`, `projection:order_summary`);
    `since` is when it entered `state`; `last_error` is scrubbed of credentials and keys;
    `lag` counts events behind (None where unknown, as for a change stream), `lag_seconds`
    is how far the worker's position is behind in time (0 while idle, None where unknown).
    """

    name: str
    kind: str
    instance: str
    state: str
    since: datetime
    restarts: int = 0
    last_error: str | None = None
    position: int | None = None
    lag: int | None = None
    lag_seconds: float | None = None
    updated_at: datetime

    @property
    def key(self) -> str:
        """The record's identity: one per worker per instance."""
        return f"{self.instance}/{self.name}"


def shown(record: WorkerRecord, *, now: datetime, lease_seconds: float) -> WorkerRecord:
    """The record as a reader shows it: `stale` once not refreshed for 3 lease times."""
    age = (now - record.updated_at).total_seconds()
    if age > STALE_AFTER_LEASES * lease_seconds and record.state != STALE:
        return msgspec.structs.replace(record, state=STALE)
    return record
