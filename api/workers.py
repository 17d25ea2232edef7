"""The background work of `eventstore run`: the ingester and the projections, under one supervisor.

Every instance starts both; leases decide who works (DESIGN.md "Leases"): one
instance captures and one runs each projection, the others stand by and take
over when a holder's lease expires. A transient failure is retried from the
checkpoint, a fatal one leaves that worker `failed` (eventstore.supervisor). On
stop: no new batches, checkpoints are already stored with each batch, leases
are released.

Readiness: a standby is ready when the database answers; the capturing instance
once its ingester has caught up with the source, and while capture is neither
failed nor retrying longer than UNHEALTHY_AFTER.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from eventstore.capture_worker import CaptureWorker, Workload
from eventstore.checkpointing import Checkpointer
from eventstore.ingester import Ingester
from eventstore.leasing import default_owner
from eventstore.ports import ChangeSource, Clock, Store
from eventstore.publishing import Publisher, PublisherWorker
from eventstore.settings import Settings
from eventstore.supervisor import Supervisor
from projections.orders import ORDER_PROJECTIONS, Projection
from projections.runner import ProjectionRunner
from projections.states import SharedStates
from projections.worker import PartitionClaimer, ProjectionWorker


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The configured keys, never to appear in a worker's error."""
    return tuple(k for k in (settings.admin_key, *settings.read_keys) if k)


def claimer(
    store: Store,
    projections: Sequence[Projection],
    settings: Settings,
    *,
    clock: Clock,
    owner: str,
) -> PartitionClaimer:
    """The worker claiming partitions of any instance's partitioned rebuilds (`run`, `serve`)."""
    return PartitionClaimer(
        store,
        projections,
        clock=clock,
        owner=owner,
        lease_seconds=settings.lease_seconds,
        batch_size=settings.batch_size,
    )


class Workers:
    """The ingester (with the simulator's workload, if any) and one runner per projection."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        source: ChangeSource,
        *,
        clock: Clock,
        workload: Workload | None = None,
        projections: Sequence[Projection] = ORDER_PROJECTIONS,
        owner: str | None = None,
        on_caught_up: Callable[[], Coroutine[Any, Any, None]] | None = None,
        supervisor: Supervisor | None = None,
        checkpointer: Checkpointer | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner or default_owner()
        self.supervisor = supervisor or Supervisor(
            clock=clock,
            instance=self.owner,
            lease_seconds=settings.lease_seconds,
            workers=store.workers,
            secrets=secrets_of(settings),
        )
        self.ingester = Ingester(
            store=store,
            source=source,
            settings=settings,
            clock=clock,
            owner=self.owner,
            checkpointer=checkpointer,
            entity_rows=[(p.collection, p.per_entity) for p in projections if p.per_entity],
        )
        # A file's end does not end the service's capture: erasure requests are still its.
        self.capture = CaptureWorker(
            self.ingester, linger=True, workload=workload, on_caught_up=on_caught_up
        )
        self.supervisor.add(self.capture)
        # One cache of entity states for every projection here: each event is folded once.
        self.states = SharedStates(entities=settings.state_cache)
        self.runners = [
            ProjectionRunner(
                store,
                p,
                clock=clock,
                batch_size=settings.batch_size,
                lease_seconds=settings.lease_seconds,
                state_cache=settings.state_cache,
                states=self.states,
                owner=self.owner,
            )
            for p in projections
        ]
        for runner in self.runners:
            self.supervisor.add(ProjectionWorker(runner))
        # Partitions of any instance's partitioned rebuild are claimed here too (a memory
        # store has one instance: the one running the rebuild folds every partition).
        self.claimer: PartitionClaimer | None = None
        if not settings.is_memory:
            self.claimer = claimer(store, projections, settings, clock=clock, owner=self.owner)
            self.supervisor.add(self.claimer)
        # Publication never blocks capture: a worker of its own, retried by the supervisor.
        self.publisher = publisher
        if publisher is not None:
            self.supervisor.add(PublisherWorker(publisher, settings.origin))

    def caught_up(self) -> bool:
        """Readiness of capture: caught up once, or standing by (another instance captures)."""
        return self.capture.caught_up()

    @property
    def failure(self) -> BaseException | None:
        """Why capture failed fatally, if it did."""
        supervised = self.supervisor.get(self.capture.name)
        return supervised.failure if supervised is not None else None

    @property
    def failed_error(self) -> str | None:
        """Capture's fatal error as shown everywhere (credentials and keys scrubbed)."""
        supervised = self.supervisor.get(self.capture.name)
        return supervised.last_error if supervised is not None and self.failure else None

    async def start(self) -> None:
        """Start capturing and projecting in the background."""
        await self.supervisor.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work and wait (bounded) for batches in flight; leases are released.

        The releases (and the removal of this instance's records) wait for the database
        together for at most SERVER_TIMEOUT_MS: during an outage the stop takes at most
        `grace` plus that.
        """
        await self.supervisor.stop(grace, release=self.settings.server_timeout_ms / 1000)
