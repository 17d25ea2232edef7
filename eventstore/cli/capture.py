"""The capture commands: `ingest` (the ingester alone) and `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import TextIO

import msgspec

from eventstore.cli.bootstrap import WorkloadOptions, open_service
from eventstore.cli.common import EXIT_OK, Progress, install_stop_signals, settings_from


def workload_options(args: argparse.Namespace) -> WorkloadOptions:
    """The simulator's `--orders`, `--rate`, `--seed` and `--changes` (None: unlimited) of a command."""
    return WorkloadOptions(
        orders=getattr(args, "orders", 100),
        rate=getattr(args, "rate", 5.0),
        seed=getattr(args, "seed", None),
        changes=getattr(args, "changes", None),
    )


async def cmd_ingest(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore ingest`: capture until stopped (or idle with --until-idle)."""
    settings = settings_from(args)
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with open_service(
        settings, store=args.store, capture=True, workload=workload_options(args)
    ) as service:
        await service.store.events.ensure_indexes()
        ingester = service.ingester(on_batch=Progress("ingest"))
        workload: asyncio.Task[None] | None = None
        try:
            if service.workload is not None:
                # Capture starts first, so the workload is recorded as changes.
                await ingester.run(until_idle=True, stop=stop)
                workload = asyncio.create_task(service.workload())
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
        f"({stats.duplicates_skipped} already recorded, {stats.filtered} filtered, "
        f"{stats.rejected} rejected) "
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

    async with open_service(settings, store=args.store) as service:
        assert isinstance(service.store, MongoStore)
        report = await migrate(service.store.client, settings)
    if args.json:
        print(json.dumps(msgspec.to_builtins(report)), file=out)
    else:
        print(str(report), file=out)
    return EXIT_OK
