"""The CLI's commands: each builds what it needs from settings and runs it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TextIO

import msgspec

from eventstore.chain import LogVerifier
from eventstore.cli import EXIT_OK, CliError, install_stop_signals, settings_from
from eventstore.clock import SystemClock
from eventstore.ingester import Ingester, IngestStats
from eventstore.ports import ChangeSource, Clock, Store
from eventstore.settings import Settings

log = logging.getLogger(__name__)

REPORT_CHANGES = 2000  # `demo --report` without --changes


class Wiring(msgspec.Struct, kw_only=True):
    """A source and the background work it needs (the simulator's writes)."""

    source: ChangeSource
    workload: Callable[[], Coroutine[Any, Any, None]] | None = None


def build_source(
    settings: Settings, store: Store, clock: Clock, args: argparse.Namespace
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
                path, collections=list(settings.collections), batch_size=settings.batch_size
            )
        )
    from eventstore.sources.memory import MemoryChangeFeed
    from eventstore.sources.simulator import Simulator

    feed = MemoryChangeFeed(db_name=settings.source_db, clock=clock)
    simulator = Simulator(feed, seed=getattr(args, "seed", None) or 0, clock=clock)
    orders = getattr(args, "orders", 100)
    rate = getattr(args, "rate", 5.0)
    changes = getattr(args, "changes", None)  # None: the traffic goes on until stopped

    async def workload() -> None:
        await simulator.run(orders=orders, changes=changes, rate=rate)

    return Wiring(
        source=feed.source(list(settings.collections), batch_size=settings.batch_size),
        workload=workload,
    )


@contextlib.asynccontextmanager
async def opened_store(settings: Settings, args: argparse.Namespace) -> AsyncIterator[Store]:
    """The store of `URI` (or the one given to `main`), closed afterwards if opened here."""
    from eventstore.storage import open_store

    given = getattr(args, "store", None)
    if given is not None:
        yield given
        return
    store = await open_store(settings)
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

    try:
        await store.events.ensure_indexes()
        await store.snapshots.ensure_indexes()
    except OperationFailure as exc:
        log.warning(
            "could not create indexes (code %s); run `eventstore migrate` as an admin", exc.code
        )


class Progress:
    """One line on stderr every few seconds while long work runs."""

    def __init__(self, label: str, every: float = 2.0, stream: TextIO | None = None) -> None:
        self.label = label
        self.every = every
        self.stream = stream or sys.stderr
        self._last = time.monotonic()
        self._started = self._last

    def __call__(self, stats: IngestStats) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = stats.recorded / max(now - self._started, 1e-9)
            print(
                f"{self.label}: {stats.recorded} events recorded, {rate:,.0f}/s",
                file=self.stream,
                flush=True,
            )


async def cmd_ingest(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore ingest`: capture until stopped (or idle with --until-idle)."""
    settings = settings_from(args)
    clock = SystemClock()
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with opened_store(settings, args) as store:
        await store.events.ensure_indexes()
        wiring = build_source(settings, store, clock, args)
        ingester = Ingester(
            store=store,
            source=wiring.source,
            settings=settings,
            clock=clock,
            on_batch=Progress("ingest"),
        )
        workload: asyncio.Task[None] | None = None
        try:
            if wiring.workload is not None:
                # Capture starts first, so the workload is recorded as changes.
                await ingester.run(until_idle=True, stop=stop)
                workload = asyncio.create_task(wiring.workload())
                if args.until_idle:
                    await workload  # a finite workload, then drain it
            stats = await ingester.run(until_idle=args.until_idle, stop=stop)
        finally:
            if workload is not None and not workload.done():
                workload.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workload
    print(
        f"recorded {stats.recorded} events from {stats.changes_seen} changes "
        f"({stats.duplicates_skipped} already recorded, {stats.filtered} filtered) "
        f"in {stats.seconds:.2f}s",
        file=out,
    )
    return EXIT_OK


async def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore migrate`: collections, validators, indexes, pre-images, the writer role."""
    settings = settings_from(args)
    if settings.is_memory:
        print("memory:// keeps everything in this process: nothing to migrate", file=out)
        return EXIT_OK
    from eventstore.migrate import migrate
    from eventstore.mongo.store import MongoStore

    async with opened_store(settings, args) as store:
        assert isinstance(store, MongoStore)
        report = await migrate(store.client, settings)
    if args.json:
        print(json.dumps(msgspec.to_builtins(report)), file=out)
    else:
        print(str(report), file=out)
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore demo`: serve the whole service on memory://; with --report, capture and report."""
    if not args.report:
        from eventstore.commands_run import serve_demo

        return await serve_demo(args, out)
    from eventstore.memory.store import MemoryStore
    from eventstore.sources.memory import MemoryChangeFeed
    from eventstore.sources.simulator import Simulator

    settings = Settings(uri="memory://", source="simulator")
    changes = REPORT_CHANGES if args.changes is None else args.changes
    clock = SystemClock()
    store = MemoryStore()
    await store.events.ensure_indexes()
    feed = MemoryChangeFeed(db_name=settings.source_db, clock=clock)
    simulator = Simulator(feed, seed=args.seed, clock=clock)
    ingester = Ingester(
        store=store,
        source=feed.source(list(settings.collections), batch_size=settings.batch_size),
        settings=settings,
        clock=clock,
    )
    # Start capturing first (the initial snapshot of an empty shop), so the whole
    # workload arrives as a backlog of changes rather than as a final snapshot.
    await ingester.run(until_idle=True)
    print(
        f"simulating {args.orders} orders and {changes} changes (seed {args.seed})...",
        file=sys.stderr,
    )
    await simulator.run(orders=args.orders, changes=changes, rate=0)
    # The rate is the backlog's: from here, not counting the simulation or the first snapshot.
    progress = Progress("demo")
    ingester.on_batch = progress
    recorded_before, seconds_before = ingester.stats.recorded, ingester.stats.seconds
    stats = await ingester.run(until_idle=True)
    backlog = msgspec.structs.replace(
        stats, recorded=stats.recorded - recorded_before, seconds=stats.seconds - seconds_before
    )
    summary = await _summary(store, stats, rate=backlog.rate)
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        _print_summary(summary, out)
    return EXIT_OK


async def _summary(store: Store, stats: IngestStats, *, rate: float) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    entities: set[tuple[str, str]] = set()
    verifier = LogVerifier((await store.checkpoints.get("ingester:shop") or _no_cp()).head)
    after = 0
    while True:
        page = await store.events.read(after_seq=after, limit=5000)
        if not page:
            break
        for e in page:
            by_type[e.type] += 1
            entities.add((e.stream, e.entity_key))
            verifier.feed(e)
        after = page[-1].seq
    verdict = verifier.verdict()
    head = await store.events.head()
    return {
        "events": stats.recorded,
        "changes": stats.changes_seen,
        "by_type": dict(sorted(by_type.items())),
        "entities": len(entities),
        "head": {"seq": head.seq, "log_hash": head.log_hash},
        "verified": verdict.valid,
        "seconds": round(stats.seconds, 3),
        "events_per_second": round(rate, 1),
    }


def _no_cp() -> Any:
    from eventstore.model import Checkpoint

    return Checkpoint(name="none")


def _print_summary(s: dict[str, Any], out: TextIO) -> None:
    print("Captured into the in-memory event log (memory://):", file=out)
    print(f"  events recorded   {s['events']:>10,}  from {s['changes']:,} changes", file=out)
    for kind, n in s["by_type"].items():
        print(f"    {kind:<15} {n:>10,}", file=out)
    print(f"  entities          {s['entities']:>10,}", file=out)
    print(
        f"  head              seq {s['head']['seq']:,}  log_hash {s['head']['log_hash'][:16]}…",
        file=out,
    )
    print(f"  both hash chains  {'verified' if s['verified'] else 'BROKEN'}", file=out)
    print(
        f"  rate              {s['events_per_second']:>10,.0f} events/s  ({s['seconds']:.2f} s)",
        file=out,
    )
