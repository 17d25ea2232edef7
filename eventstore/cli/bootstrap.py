"""The composition root: the running service, built from settings in one place.

`open_service(settings)` opens the store (or takes one given), builds the change
source `SOURCE` names and hands back a `Service`; from it a command takes what it
runs: the ingester, the projection runners, the background workers, the API app.
Every command (`run`, `serve`, `demo`, `ingest`, `project`, …) and the tests build
the service here; nothing else wires layers together.

Where the background workers are created and started: `Service.workers()` (and
`Service.app()`, which starts and stops them in the app's lifespan), all under one
supervisor (`Service.supervisor()`, eventstore.supervisor), which the app's
readiness, `/v1/workers` and `/metrics` read.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from eventstore.checkpointing import Checkpointer, checkpointer_for
from eventstore.cli.common import CliError, NothingThere
from eventstore.clock import SystemClock
from eventstore.history import UnknownEntity, UnknownStream
from eventstore.ingester import Ingester, IngestStats
from eventstore.ports import ChangeSource, Clock, Store
from eventstore.publishing import Publisher, http_post
from eventstore.settings import Settings, load
from eventstore.supervisor import Supervisor

if TYPE_CHECKING:
    from api.app import EventStoreApp
    from api.metrics import Metrics
    from api.workers import Workers
    from eventstore.subscriptions.manager import SubscriptionManager
    from projections.orders import Projection
    from projections.runner import ProjectionRunner
    from projections.states import SharedStates

log = logging.getLogger("eventstore.bootstrap")

Workload = Callable[[], Coroutine[Any, Any, None]]


class WorkloadOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The simulator's traffic (with `SOURCE=simulator`): initial orders, then changes at a rate."""

    orders: int = 100
    rate: float = 5.0
    seed: int | None = None
    changes: int | None = None


class Wiring(msgspec.Struct, kw_only=True):
    """A source and the background work it needs (the simulator's writes)."""

    source: ChangeSource
    workload: Workload | None = None
    # How many changes the workload has written so far (its progress), with the workload.
    written: Callable[[], int] | None = None


def projections(settings: Settings | None = None) -> list[Projection]:
    """The projections this service runs: the order read models, then your own.

    Yours come from `PROJECTIONS` and the entry-point group `eventstore.projections`;
    one that cannot be used is a CliError naming it (nothing runs).
    """
    from projections.orders import ORDER_PROJECTIONS, OrderSchema, order_projections
    from projections.plugins import PluginError, load_plugins

    builtin = list(
        order_projections(OrderSchema.from_settings(settings)) if settings else ORDER_PROJECTIONS
    )
    try:
        plugins = load_plugins(settings.projections if settings else (), builtin=builtin)
    except PluginError as exc:
        raise CliError(str(exc)) from None
    return builtin + plugins


def build_source(
    settings: Settings, store: Store, clock: Clock, workload: WorkloadOptions | None = None
) -> Wiring:
    """The change source named by `SOURCE` (errors before anything runs)."""
    kind = settings.source
    if kind == "mongo":
        if settings.is_memory or settings.uri is None:
            raise CliError(
                "the mongo source needs a mongodb:// URI (memory:// has no change streams); "
                "use --source simulator or --source ndjson:FILE with memory://"
            )
        from eventstore.mongo.store import MongoStore
        from eventstore.sources.mongo import MongoChangeSource

        assert isinstance(store, MongoStore)
        return Wiring(
            source=MongoChangeSource(
                store.client,
                source_db=settings.source_db,
                collections=list(settings.collections),
                pre_images=settings.pre_images,
                batch_size=settings.batch_size,
            )
        )
    if kind.startswith("ndjson:"):
        from eventstore.sources.ndjson import NdjsonChangeSource

        path = kind.removeprefix("ndjson:")
        return Wiring(
            source=NdjsonChangeSource(
                path,
                collections=list(settings.collections),
                batch_size=settings.batch_size,
                source_db=settings.source_db,
            )
        )
    from eventstore.sources.memory import MemoryChangeFeed
    from eventstore.sources.simulator import Simulator

    options = workload or WorkloadOptions()
    feed = MemoryChangeFeed(db_name=settings.source_db, clock=clock)
    simulator = Simulator(feed, seed=options.seed or 0, clock=clock)

    async def run_workload() -> None:
        if options.changes is None:
            await simulator.run(orders=options.orders, rate=options.rate)
        else:
            await simulator.run(orders=options.orders, changes=options.changes, rate=options.rate)

    return Wiring(
        source=feed.source(list(settings.collections), batch_size=settings.batch_size),
        workload=run_workload,
        written=lambda: feed.position,
    )


@contextlib.asynccontextmanager
async def opened_store(
    settings: Settings, given: Store | None = None, *, bounded: bool = True
) -> AsyncIterator[Store]:
    """The store of `URI` (or the one given), closed afterwards if opened here."""
    from eventstore.storage import open_store

    if given is not None:
        yield given
        return
    store = await open_store(settings, bounded=bounded)
    try:
        await _ensure_indexes(store)
        yield store
    finally:
        await store.close()


async def _ensure_indexes(store: Store) -> None:
    """Create the event and snapshot indexes if missing (idempotent; `migrate` does it too).

    A user without the createIndex privilege (a read-only auditor) gets a warning, not an error.
    """
    from pymongo.errors import OperationFailure

    from eventstore.storage import AUTH_FAILED

    try:
        await store.events.ensure_indexes()
        await store.snapshots.ensure_indexes()
    except OperationFailure as exc:
        if exc.code == AUTH_FAILED:  # a wrong login, not a missing privilege: the error itself
            raise
        log.warning(
            "could not create indexes (code %s); run `eventstore migrate` as an admin", exc.code
        )


class Service:
    """The running service: settings, clock, store, and (when it captures) the source.

    Built by `open_service`; what a command runs is taken from it.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        wiring: Wiring | None = None,
        projections_: Sequence[Projection] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.wiring = wiring
        self.projections = list(projections_) if projections_ is not None else projections(settings)
        self.running: Workers | None = None
        self._metrics: Metrics | None = None

    @property
    def metrics(self) -> Metrics:
        """The figures this process reports on `/metrics` (one `Metrics`, made on first use).

        The app counts its requests there; the background workers' supervisor reports
        their states, restarts and the capture lag there (`Metrics.worker_state`, ...).
        """
        if self._metrics is None:
            from api.metrics import Metrics

            self._metrics = Metrics()
        return self._metrics

    @property
    def source(self) -> ChangeSource:
        """The change source (a CliError when the service was opened without one)."""
        if self.wiring is None:
            raise CliError("this command captures nothing: it has no change source")
        return self.wiring.source

    @property
    def workload(self) -> Workload | None:
        """The simulator's traffic, when `SOURCE=simulator`."""
        return self.wiring.workload if self.wiring is not None else None

    @property
    def written(self) -> Callable[[], int] | None:
        """How many changes the simulator's traffic has written so far."""
        return self.wiring.written if self.wiring is not None else None

    def ingester(
        self,
        *,
        on_batch: Callable[[IngestStats], None] | None = None,
        owner: str | None = None,
    ) -> Ingester:
        """The ingester of the source into the store."""
        return Ingester(
            store=self.store,
            source=self.source,
            settings=self.settings,
            clock=self.clock,
            on_batch=on_batch,
            owner=owner,
            checkpointer=self.checkpointer(),
            entity_rows=[(p.collection, p.per_entity) for p in self.projections if p.per_entity],
        )

    def checkpointer(self, publisher: Publisher | None = None) -> Checkpointer:
        """The Merkle tree and checkpoints kept by whoever captures (SettingsError: bad key)."""
        return checkpointer_for(
            self.store.merkle,
            self.store.events,
            self.settings,
            self.clock,
            on_checkpoint=publisher.offer if publisher is not None else None,
        )

    def publisher(self) -> Publisher | None:
        """The worker publishing signed checkpoints and asking witnesses, if any are set."""
        return Publisher.from_settings(
            self.store.merkle, self.settings, post=http_post, clock=self.clock
        )

    def runner(
        self,
        projection: Projection,
        *,
        owner: str | None = None,
        states: SharedStates | None = None,
    ) -> ProjectionRunner:
        """The runner of one projection (follow, rebuild) over the store.

        Runners following side by side share `states` (each event folded once for all).
        """
        from projections.runner import ProjectionRunner

        return ProjectionRunner(
            self.store,
            projection,
            clock=self.clock,
            batch_size=self.settings.batch_size,
            lease_seconds=self.settings.lease_seconds,
            state_cache=self.settings.state_cache,
            states=states,
            owner=owner,
        )

    def supervisor(self, instance: str) -> Supervisor:
        """The supervisor of this process's workers, recording their states in the store."""
        settings = self.settings
        return Supervisor(
            clock=self.clock,
            instance=instance,
            lease_seconds=settings.lease_seconds,
            workers=self.store.workers,
            secrets=[k for k in (settings.admin_key, *settings.read_keys) if k],
            metrics=self.metrics,
        )

    def workers(self, *, owner: str | None = None) -> Workers:
        """The background workers of `run`: the ingester (and workload) and every projection."""
        from api.workers import Workers
        from eventstore.leasing import default_owner

        publisher = self.publisher()
        instance = owner or default_owner()
        self.running = Workers(
            self.store,
            self.settings,
            self.source,
            clock=self.clock,
            workload=self.workload,
            projections=self.projections,
            owner=instance,
            supervisor=self.supervisor(instance),
            checkpointer=self.checkpointer(publisher),
            publisher=publisher,
        )
        self.running.supervisor.add(self.subscription_manager(self.running.supervisor, instance))
        return self.running

    def subscription_manager(self, supervisor: Supervisor, instance: str) -> SubscriptionManager:
        """The worker that runs one delivery worker per stored subscription under `supervisor`."""
        from eventstore.subscriptions.manager import SubscriptionManager

        settings = self.settings
        return SubscriptionManager(
            self.store,
            supervisor,
            clock=self.clock,
            owner=instance,
            lease_seconds=settings.lease_seconds,
            secrets=[k for k in (settings.admin_key, *settings.read_keys) if k],
        )

    async def apply_subscriptions(self) -> list[str]:
        """Apply `EVENTSTORE_SUBSCRIPTIONS` (a CliError naming the entry and field when bad)."""
        path = self.settings.subscriptions
        if path is None:
            return []
        from eventstore.subscriptions.control import SubscriptionAdmin
        from eventstore.subscriptions.declarative import DeclarativeError, apply_file

        admin = SubscriptionAdmin(
            self.store,
            clock=self.clock,
            owner="declarative",
            lease_seconds=self.settings.lease_seconds,
        )
        try:
            changed = await apply_file(admin, path)
        except DeclarativeError as exc:
            raise CliError(f"EVENTSTORE_SUBSCRIPTIONS: {exc}") from None
        if changed:
            log.info("subscriptions applied from %s: %s", path, ", ".join(changed))
        return changed

    def app(
        self,
        *,
        workers: Workers | None = None,
        on_started: Callable[[EventStoreApp], None] | None = None,
    ) -> EventStoreApp:
        """The API app over this store; `workers` start and stop in its lifespan."""
        app = build_app(
            self.settings,
            store=self.store,
            clock=self.clock,
            projections_=self.projections,
            workers=workers,
            metrics=self.metrics,
        )
        if on_started is not None:

            async def started() -> None:
                on_started(app)

            app.on_startup.append(started)
        return app


# What a command reading or writing a fresh `memory://` store says (it holds nothing else's):
# after its answer, or (shorter) in its error when it finds nothing.
MEMORY_EMPTY = (
    "this command's memory:// store is new and empty: ask a running service through its"
    " HTTP API, or give a MongoDB URI"
)
MEMORY_ALONE = (
    "note: memory:// is a store inside one process, and this command's is new and empty:"
    " it holds nothing another process captured and keeps nothing after it. Ask a running"
    " service through its HTTP API (e.g. GET /v1/verify), or give a MongoDB URI."
)


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    store: Store | None = None,
    capture: bool = False,
    workload: WorkloadOptions | None = None,
    clock: Clock | None = None,
    bounded: bool = True,
) -> AsyncIterator[Service]:
    """The service of `settings`: the store opened (or `store`), the source built if `capture`.

    `bounded=False` lets an operation wait for its reply without limit (`open_store`).

    A command that only reads or writes a `memory://` store opened here sees an empty
    store that ends with it: it says so on standard error (its answer stays as it is).
    """
    clock = clock or SystemClock()
    alone = store is None and settings.is_memory and not capture
    try:
        async with opened_store(settings, store, bounded=bounded) as opened:
            wiring = build_source(settings, opened, clock, workload) if capture else None
            yield Service(settings, opened, clock=clock, wiring=wiring)
    except (UnknownStream, UnknownEntity, NothingThere) as exc:
        # On a new memory:// store nothing is found because nothing is there: the one
        # error line says why.
        raise CliError(f"{exc} ({MEMORY_EMPTY})" if alone else str(exc)) from None
    if alone:
        print(MEMORY_ALONE, file=sys.stderr)  # after its answer (an error says it itself)


def build_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    projections_: Sequence[Projection] | None = None,
    workers: Workers | None = None,
    metrics: Metrics | None = None,
) -> EventStoreApp:
    """The API app; with `store` None it opens the store in its lifespan (and keeps retrying).

    `metrics`: what the app reports on `/metrics` (a new `Metrics` by default).
    """
    from api.app import create_app

    app = create_app(
        settings,
        store=store,
        clock=clock,
        projections_=projections_ if projections_ is not None else projections(settings),
        caught_up=workers.caught_up if workers is not None else None,
        supervisor=workers.supervisor if workers is not None else None,
        capture=workers.capture.name if workers is not None else None,
        metrics=metrics,
    )
    if workers is not None:
        running = workers

        async def start_workers() -> None:
            await running.start()

        async def stop_workers() -> None:
            await running.stop()

        app.on_startup.append(start_workers)
        app.on_shutdown.append(stop_workers)
    return app


def app_from_env() -> EventStoreApp:
    """A new app over the store `EVENTSTORE_URI` names, for uvicorn's `factory=True`.

    `eventstore serve --workers N` (N > 1) points each worker process here; the same
    works directly: `uvicorn --factory eventstore.cli.bootstrap:app_from_env`. Nothing
    connects here: the app opens its store in its lifespan. A bad setting raises SettingsError.
    (uvicorn configures logging in each worker: `serve` passes `logs.logging_config()`.)
    """
    return build_app(load())
