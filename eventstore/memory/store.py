"""The in-process store behind `memory://`: every port in plain Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventstore.memory.checkpoints import MemoryCheckpoints
from eventstore.memory.erasures import MemoryErasures
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.memory.jobs import MemoryJobs
from eventstore.memory.leases import MemoryLeases
from eventstore.memory.merkle import MemoryMerkleTree
from eventstore.memory.readmodels import MemoryReadModels
from eventstore.memory.snapshots import MemorySnapshots
from eventstore.memory.subscriptions import (
    MemoryAdminActions,
    MemoryDeliveries,
    MemorySubscriptions,
)
from eventstore.memory.workers import MemoryWorkers
from eventstore.ports import (
    AdminActions,
    Checkpoints,
    Deliveries,
    Erasures,
    EventLog,
    Jobs,
    Leases,
    MerkleTree,
    ReadModels,
    Snapshots,
    Subscriptions,
    Workers,
)


class MemoryStore:
    """The `Store` port in memory: no transactions (none are needed in one process)."""

    def __init__(self) -> None:
        # Typed as the ports: the Store protocol's attributes are invariant.
        self.events: EventLog = MemoryEventLog()
        self.checkpoints: Checkpoints = MemoryCheckpoints()
        self.leases: Leases = MemoryLeases()
        self.snapshots: Snapshots = MemorySnapshots()
        self.read_models: ReadModels = MemoryReadModels()
        self.jobs: Jobs = MemoryJobs()
        self.merkle: MerkleTree = MemoryMerkleTree()
        self.erasures: Erasures = MemoryErasures()
        self.workers: Workers = MemoryWorkers()
        self.subscriptions: Subscriptions = MemorySubscriptions()
        self.deliveries: Deliveries = MemoryDeliveries()
        self.admin_actions: AdminActions = MemoryAdminActions()
        # Same attribute as MongoStore: what this store cannot do (nothing here).
        self.degraded: list[str] = []

    @property
    def transactions(self) -> bool:
        """False: writes are not grouped (each write is atomic in one process)."""
        return False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """No transaction: yields None, which every adapter write accepts as its session."""
        yield None

    async def close(self) -> None:
        """Nothing to release."""
