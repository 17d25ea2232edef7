"""What every instance can say about each projection: position, lag, state, failure, holder.

Read from the store (checkpoint, recorded state, lease), so the CLI and the API of
any instance show the same thing whichever instance runs the projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore.ports import Store
from eventstore.worker_state import STOPPED
from projections.orders import Projection
from projections.runner import STATE_COLLECTION


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """`{name, position, lag, state, rebuilt_at, failed_seq, error}` (+ who holds the lease)."""

    name: str
    position: int
    lag: int
    state: str
    rebuilt_at: datetime | None
    failed_seq: int | None
    error: str | None
    held_by: str | None = None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


async def projection_statuses(
    store: Store, projections: Sequence[Projection]
) -> list[ProjectionStatus]:
    """One status per projection, in the order given (one read per state document)."""
    head = (await store.events.head()).seq
    recorded = await store.read_models.get_many(STATE_COLLECTION, [p.name for p in projections])
    out: list[ProjectionStatus] = []
    for projection in projections:
        row = recorded.get(projection.name, {})
        role = f"projection:{projection.name}"
        cp = await store.checkpoints.get(role)
        lease = await store.leases.get(role)
        position = cp.head.seq if cp is not None else 0
        out.append(
            ProjectionStatus(
                name=projection.name,
                position=position,
                lag=max(head - position, 0),
                state=str(row.get("state") or STOPPED),
                rebuilt_at=_time(row.get("rebuilt_at")),
                failed_seq=row.get("failed_seq"),
                error=row.get("error"),
                held_by=lease.owner if lease is not None else None,
            )
        )
    return out
