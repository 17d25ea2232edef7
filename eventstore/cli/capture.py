"""The capture commands: `ingest` (the ingester alone) and `migrate`."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

import msgspec

from eventstore.cli.argtypes import written
from eventstore.cli.bootstrap import WorkloadOptions, open_service
from eventstore.cli.common import EXIT_OK, CliError, Progress, install_stop_signals, settings_from


def refuse_workload_elsewhere(args: argparse.Namespace, source: str) -> None:
    """CliError when `--orders`, `--rate` or `--seed` was typed for a source that is not the
    simulator (they drive it alone): taken and ignored, they would say nothing happened."""
    workload = ("--orders", "--rate", "--seed")
    given = tuple(o for o in getattr(args, "given_options", ()) if o in workload)
    if given and source != "simulator":
        them = "them" if len(given) > 1 else "it"
        raise CliError(
            f"{' and '.join(given)} drive the simulator, not --source {source}: "
            f"give --source simulator, or leave {them} out"
        )


def workload_options(args: argparse.Namespace) -> WorkloadOptions:
    """The simulator's `--orders`, `--rate`, `--seed` and `--changes` (None: unlimited) of a command."""
    return WorkloadOptions(
        orders=getattr(args, "orders", 100),
        rate=getattr(args, "rate", 5.0),
        seed=getattr(args, "seed", None),
        changes=getattr(args, "changes", None),
    )


async def cmd_ingest(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore ingest`: capture until stopped (or idle with --until-idle), supervised.

    Transient failures are retried from the checkpoint; a fatal one ends the command
    with one line and exit 1. With the simulator, `--until-idle` writes the initial
    orders, captures them and stops; it takes `--rate 0` (a paced traffic has no end,
    so capture would never be idle: refused before anything starts).
    """
    from eventstore.capture_worker import CaptureWorker
    from eventstore.leasing import default_owner
    from eventstore.worker_state import FAILED

    settings = settings_from(args)
    refuse_workload_elsewhere(args, settings.source)
    workload = workload_options(args)
    if args.until_idle and settings.source == "simulator" and workload.rate > 0:
        # Its traffic never ends: capture would wait for the end of it for ever.
        rate = written(args, "--rate", f"{workload.rate:g}")
        raise CliError(
            f"--until-idle with --source simulator needs --rate 0: at --rate {rate} "
            "the simulated traffic never ends, so capture is never idle "
            "(--rate 0 writes the --orders, captures them and stops)"
        )
    async with open_service(settings, store=args.store, capture=True, workload=workload) as service:
        await service.store.events.ensure_indexes()
        owner = default_owner()
        ingester = service.ingester(on_batch=Progress("ingest"), owner=owner)
        # Capture starts first, so the workload is recorded as changes.
        capture = CaptureWorker(ingester, follow=not args.until_idle, workload=service.workload)
        supervisor = service.supervisor(owner)
        install_stop_signals(supervisor.stopping)
        supervisor.add(capture)
        await supervisor.start()
        try:
            await supervisor.wait(capture.name)
        finally:
            await supervisor.stop()
        supervised = supervisor.get(capture.name)
        if supervised is not None and supervised.state == FAILED:
            raise CliError(f"capture failed: {supervised.last_error}")
    stats = ingester.stats
    print(
        f"recorded {stats.recorded} events from {stats.changes_seen} changes "
        f"({stats.duplicates_skipped} already recorded, {stats.filtered} filtered, "
        f"{stats.rejected} rejected) "
        f"in {stats.seconds:.2f}s",
        file=out,
    )
    return EXIT_OK


# What `migrate` says on memory://, and the reason each step is skipped in its `--json` report.
NOTHING_TO_MIGRATE = "memory:// keeps everything in this process: nothing to migrate"


async def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore migrate`: collections, validators, indexes, pre-images, the writer role."""
    from eventstore.migrate import SKIPPED, MigrationReport, StepResult, load_steps, migrate

    settings = settings_from(args)
    if settings.is_memory:
        if not args.json:
            print(NOTHING_TO_MIGRATE, file=out)
            return EXIT_OK
        # The report's shape on MongoDB: every step, here skipped with the reason.
        steps = [
            StepResult(name=s.name, status=SKIPPED, reason=NOTHING_TO_MIGRATE) for s in load_steps()
        ]
        report = MigrationReport(real_server=False, steps=steps)
        print(json.dumps(msgspec.to_builtins(report)), file=out)
        return EXIT_OK
    from eventstore.mongo.store import MongoStore

    # An index build on a large collection answers when it is done: no reply timeout.
    async with open_service(settings, store=args.store, bounded=False) as service:
        assert isinstance(service.store, MongoStore)
        report = await migrate(service.store.client, settings)
    if args.json:
        print(json.dumps(msgspec.to_builtins(report)), file=out)
    else:
        print(str(report), file=out)
    return EXIT_OK
