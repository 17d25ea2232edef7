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
from projections.orders import NO_CUSTOMER, ORDER_PROJECTIONS, OrderSchema, Projection
from projections.runner import STATE_COLLECTION

# What rows recorded without a config were built with: the default mapping, under the first
# rules (they predate both).
DEFAULT_CONFIGS = dict.fromkeys(
    (p.name for p in ORDER_PROJECTIONS), OrderSchema().fingerprint(rules=1)
)


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
    # Its rows were built with another config (the order field mapping) than it has now.
    rebuild_needed: bool = False
    # Values its rows could not use (not money; a status or created_at that cannot be read), as
    # recorded in the rows' `problems`.
    problems: int = 0
    # customer_totals: orders that have no customer id (counted, never dropped silently).
    orders_without_customer: int | None = None
    # Entity states its runner read from history, the state cache (STATE_CACHE) not holding
    # them, since the runner started (recorded at most every 5 s while it follows).
    state_reads: int = 0


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
        built_with = row.get("built_with")
        problems = row.get("problems")
        reads = row.get("state_reads")
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
                rebuild_needed=_rebuild_needed(projection, built_with, position),
                problems=problems if isinstance(problems, int) else 0,
                orders_without_customer=await _without_customer(store, projection),
                state_reads=reads if isinstance(reads, int) and not isinstance(reads, bool) else 0,
            )
        )
    return out


def _rebuild_needed(projection: Projection, built_with: Any, position: int) -> bool:
    """True when the rows were built with another config than the projection has now.

    Rows recorded without one (built before configs were kept) were built with the defaults.
    """
    if position == 0:
        return False  # nothing built yet: it builds with the config it has
    if not isinstance(built_with, str):
        built_with = DEFAULT_CONFIGS.get(projection.name, "")
    return bool(built_with != projection.config)


async def _without_customer(store: Store, projection: Projection) -> int | None:
    if projection.name != "customer_totals":
        return None
    row = (await store.read_models.get_many(projection.collection, [NO_CUSTOMER])).get(NO_CUSTOMER)
    orders = row.get("orders") if row else 0
    return orders if isinstance(orders, int) else 0
