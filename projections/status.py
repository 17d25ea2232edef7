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
from eventstore.worker_state import (
    FAILED,
    RETRYING,
    RUNNING,
    STANDBY,
    STARTING,
    STOPPED,
    WorkerRecord,
)
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


def supervised_state(
    recorded: str, error: str | None, workers: Sequence[WorkerRecord]
) -> tuple[str, str | None]:
    """A projection's state and error, given the runner's record and its workers' states.

    The runner records `running`, `rebuilding`, `stopped` or `failed` (a failing apply);
    while no instance runs it, its supervised workers say why: one `retrying` (a transient
    failure), `failed` (a fatal one, with its error), `starting` or `standby`.
    """
    states = {w.state for w in workers}
    if RUNNING in states or not workers:
        return recorded, error
    for state in (RETRYING, FAILED, STARTING, STANDBY):
        if state in states:
            if recorded == FAILED:  # the runner's own record says more (the seq that failed)
                return recorded, error
            worker = next(w for w in workers if w.state == state)
            return state, error or worker.last_error
    return recorded, error


async def projection_statuses(
    store: Store,
    projections: Sequence[Projection],
    workers: Sequence[WorkerRecord] = (),
) -> list[ProjectionStatus]:
    """One status per projection, in the order given (one read per state document).

    `workers`: every instance's worker records (stale ones marked); a projection no
    instance runs shows what its workers say (`retrying`, `failed`, `standby`).
    """
    head = (await store.events.head()).seq
    recorded = await store.read_models.get_many(STATE_COLLECTION, [p.name for p in projections])
    out: list[ProjectionStatus] = []
    for projection in projections:
        row = recorded.get(projection.name, {})
        role = f"projection:{projection.name}"
        cp = await store.checkpoints.get(role)
        lease = await store.leases.get(role)
        position = cp.head.seq if cp is not None else 0
        state, error = supervised_state(
            str(row.get("state") or STOPPED),
            row.get("error"),
            [w for w in workers if w.name == role],
        )
        out.append(
            ProjectionStatus(
                name=projection.name,
                position=position,
                lag=max(head - position, 0),
                state=state,
                rebuilt_at=_time(row.get("rebuilt_at")),
                failed_seq=row.get("failed_seq"),
                error=error,
                held_by=lease.owner if lease is not None else None,
            )
        )
    return out
