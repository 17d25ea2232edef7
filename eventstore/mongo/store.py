"""The store on a MongoDB deployment: every adapter over one database, and its transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import OperationFailure

from eventstore.mongo import compat
from eventstore.mongo.checkpoints import MongoCheckpoints
from eventstore.mongo.erasures import MongoErasures
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.jobs import MongoJobs
from eventstore.mongo.leases import MongoLeases
from eventstore.mongo.merkle import MongoMerkleTree
from eventstore.mongo.readmodels import MongoReadModels
from eventstore.mongo.snapshots import MongoSnapshots
from eventstore.mongo.subscriptions import MongoAdminActions, MongoDeliveries, MongoSubscriptions
from eventstore.mongo.workers import MongoWorkers
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

# How long closing the client waits for the server to end its sessions (`endSessions`).
CLIENT_CLOSE_SECONDS: Final = 2.0


class MongoStore:
    """The `Store` port on MongoDB (PyMongo Async, or mongomock-motor in tests).

    Transactions are off until `detect()` finds a replica set or a sharded
    cluster with sessions; what the deployment cannot do is listed in `degraded`.
    """

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], db_name: str, *, owns_client: bool = False
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = compat.database(client, db_name)
        # Typed as the ports: the Store protocol's attributes are invariant.
        self._events = MongoEventLog(self.db)
        self.events: EventLog = self._events
        self.checkpoints: Checkpoints = MongoCheckpoints(self.db)
        self.leases: Leases = MongoLeases(self.db)
        self.snapshots: Snapshots = MongoSnapshots(self.db)
        self.read_models: ReadModels = MongoReadModels(self.db)
        self.jobs: Jobs = MongoJobs(self.db)
        self.merkle: MerkleTree = MongoMerkleTree(self.db)
        self.erasures: Erasures = MongoErasures(self.db)
        self.workers: Workers = MongoWorkers(self.db)
        self.subscriptions: Subscriptions = MongoSubscriptions(self.db)
        self.deliveries: Deliveries = MongoDeliveries(self.db)
        self.admin_actions: AdminActions = MongoAdminActions(self.db)
        self.degraded: list[str] = []
        self._transactions = False
        self._owns_client = owns_client

    @property
    def transactions(self) -> bool:
        """True when `transaction()` gives a real multi-document transaction."""
        return self._transactions

    async def detect(self) -> None:
        """Ask the deployment once (`hello`) whether it has transactions; record what it lacks."""
        self.degraded.clear()
        self._transactions = False
        try:
            hello = await self.client.admin.command("hello")
        except NotImplementedError:  # mongomock answers `ping` only
            self.degraded.append(
                "transactions unavailable: server did not answer hello (mongomock)"
            )
            return
        except OperationFailure as exc:
            self.degraded.append(f"transactions unavailable: hello failed ({exc.code})")
            return
        self._events.max_document_bytes = int(
            hello.get("maxBsonObjectSize", self._events.max_document_bytes)
        )
        clustered = "setName" in hello or hello.get("msg") == "isdbgrid"
        sessions = hello.get("logicalSessionTimeoutMinutes") is not None
        self._transactions = clustered and sessions
        if not clustered:
            self.degraded.append(
                "transactions unavailable: a standalone server (not a replica set or "
                "sharded cluster); each batch and its checkpoint are written separately"
            )
        elif not sessions:
            self.degraded.append("transactions unavailable: the server has no logical sessions")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A session inside a transaction (committed on exit, aborted on error), or None."""
        if not self._transactions:
            yield None
            return
        # The session is entered first, so `session` is bound when the transaction starts.
        async with (
            self.client.start_session() as session,
            await session.start_transaction(),
        ):
            yield session

    async def close(self) -> None:
        """Stop the event log's change stream; close the client when this store opened it.

        Bounded: a server that stopped answering delays a close by a few seconds
        (`append_watch.CLOSE_SECONDS`, then `CLIENT_CLOSE_SECONDS` twice at most), not
        by the reply timeout, so a stopping service exits within its grace period.
        """
        await self._events.close()
        if self._owns_client:
            await compat.close_client(self.client, CLIENT_CLOSE_SECONDS)
