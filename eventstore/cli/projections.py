"""The CLI's projection commands: project, projections status, projections rebuild."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

import msgspec

from eventstore.cli.argtypes import written
from eventstore.cli.bootstrap import Service, open_service
from eventstore.cli.common import (
    EXIT_OK,
    CliError,
    frozen_gc,
    install_stop_signals,
    printable,
    settings_from,
)
from eventstore.ports import JobConflict, Store

# The most partitions (processes) of a rebuild (projections.partitioned.MAX_WORKERS).
MAX_WORKERS = 16


def _projections(service: Service, names: list[str] | None) -> list[Any]:
    if not names:
        return list(service.projections)
    known = {p.name: p for p in service.projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliError(f"unknown projection {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


async def cmd_project(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore project`: run every projection, each holding its own lease, supervised.

    Transient failures are retried from each checkpoint; when a projection fails
    fatally the others go on, and the command ends with exit 1 once they stop.
    """
    from eventstore.leasing import default_owner
    from eventstore.worker_state import FAILED
    from projections.states import SharedStates
    from projections.worker import ProjectionWorker

    settings = settings_from(args)
    owner = default_owner()
    async with open_service(settings, store=args.store) as service:
        supervisor = service.supervisor(owner)
        install_stop_signals(supervisor.stopping)
        states = SharedStates(entities=settings.state_cache)
        runners = [
            service.runner(p, owner=owner, states=states) for p in _projections(service, None)
        ]
        workers = [ProjectionWorker(r, until_caught_up=args.until_caught_up) for r in runners]
        for worker in workers:
            supervisor.add(worker)
        await supervisor.start()
        try:
            await asyncio.gather(*(supervisor.wait(w.name) for w in workers))
        finally:
            await supervisor.stop()
        failed = []
        for runner, worker in zip(runners, workers, strict=True):
            supervised = supervisor.get(worker.name)
            state = runner.status
            line = f"{state.name}: position {state.position}, {state.state}"
            if supervised is not None and supervised.state == FAILED:
                line += f" ({supervised.last_error})"
                failed.append(f"{state.name}: {supervised.last_error}")
            print(printable(line), file=out)
    if failed:
        raise CliError(f"projection failed: {failed[0]}")
    return EXIT_OK


async def cmd_projections(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore projections status | rebuild NAME | --all`.

    A flag of the other action is refused (`status --workers 3`, `rebuild --json`), never
    silently ignored, before anything connects.
    """
    settings = settings_from(args)
    twice = [name for name, n in Counter(args.names).items() if n > 1]
    if twice:  # `rebuild a a` would rebuild a twice
        raise CliError(f"projections {args.action} names {', '.join(twice)} more than once")
    if args.action == "status":
        unused = [
            f
            for f, given in (("--all", args.all), ("--workers", args.workers is not None))
            if given
        ]
        if unused:
            raise CliError(f"projections status takes no {' or '.join(unused)} (rebuild does)")
    elif args.json:
        raise CliError("projections rebuild takes no --json (status does)")
    else:
        if args.all and args.names:
            raise CliError("name the projections to rebuild, or --all, not both")
        if not args.names and not args.all:
            raise CliError("name a projection to rebuild, or --all")
        if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
            given = written(args, "--workers", str(args.workers))
            raise CliError(f"--workers takes 1 to {MAX_WORKERS}, got {given}")
    async with open_service(settings, store=args.store) as service:
        if args.action == "status":
            return await _status(service, args, out)
        names = None if args.all else args.names
        workers = 1 if args.workers is None else args.workers
        for projection in _projections(service, names):
            await _rebuild(service.store, service.runner(projection), out, workers)
    return EXIT_OK


async def _rebuild(store: Store, runner: Any, out: TextIO, workers: int = 1) -> None:
    """Request a rebuild: run it here if nobody runs the projection, else follow the holder's job."""
    from projections.runner import RebuildProgress, request_rebuild

    if workers > 1 and runner.projection.merge is None:
        print(f"{runner.projection.name} has no merge: it rebuilds with one worker", file=out)
        workers = 1
    bar = ProgressBar(runner.projection.name)
    try:
        with frozen_gc():  # this process does nothing else meanwhile
            job = await request_rebuild(runner, on_progress=bar, workers=workers)
    except JobConflict as exc:
        raise CliError(str(exc)) from None
    while job.active:  # another instance holds the lease and runs the job between batches
        bar(RebuildProgress(processed=job.processed, total=job.total, seconds=0.0))
        await asyncio.sleep(0.5)
        job = await store.jobs.get(job.job) or job
    bar.done(RebuildProgress(processed=job.processed, total=job.total))
    if job.state == "failed":
        raise CliError(f"rebuild of {runner.projection.name} failed: {job.error}")
    by = f", {job.workers} workers" if job.workers > 1 else ""
    print(
        f"{runner.projection.name}: rebuilt from {job.processed} events (job {job.job}{by})",
        file=out,
    )


async def _status(service: Service, args: argparse.Namespace, out: TextIO) -> int:
    from eventstore.codec import rfc3339
    from eventstore.worker_state import shown
    from projections.status import projection_statuses

    now, lease = service.clock.now(), service.settings.lease_seconds
    workers = [shown(w, now=now, lease_seconds=lease) for w in await service.store.workers.all()]
    chosen = _projections(service, args.names or None)  # `projections status NAME ...`: those
    statuses = await projection_statuses(service.store, chosen, workers)
    rows = [
        {
            **msgspec.structs.asdict(s),
            "rebuilt_at": rfc3339(s.rebuilt_at) if s.rebuilt_at else None,
        }
        for s in statuses
    ]
    if args.json:
        print(json.dumps(rows), file=out)
    else:
        for r in rows:
            line = (
                f"{r['name']:<18} {r['state']:<10} position {r['position']:>9}  lag {r['lag']:>9}"
            )
            if r["error"]:
                line += f"  failed at seq {r['failed_seq']}: {r['error']}"
            if r["rebuild_needed"]:
                line += "  rebuild needed (built with another ORDER_* mapping)"
            if r["problems"]:
                line += f"  {r['problems']} values not money (counted as 0; see the rows' problems)"
            if r["orders_without_customer"]:
                line += f"  {r['orders_without_customer']} orders without a customer id"
            if r["state_reads"]:
                line += f"  {r['state_reads']} states read from history (see STATE_CACHE)"
            print(printable(line), file=out)
    return EXIT_OK


class ProgressBar:
    """`name [#####.....] processed/total events, rate/s, ETA` on stderr.

    On a terminal the bar is redrawn in place (`\\r`); anywhere else (a log file, a pipe)
    it is a line of its own at most every `every` seconds, and one at the end.
    """

    def __init__(
        self,
        name: str,
        stream: TextIO | None = None,
        *,
        every: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.every = every
        self.monotonic = monotonic
        self.terminal = _is_terminal(self.stream)
        self._last = monotonic()
        self._rate = 0.0

    def _bar(self, p: Any) -> str:
        if p.seconds > 0:  # a report without a time of its own (the last) keeps the last rate
            self._rate = p.processed / p.seconds
        rate = self._rate
        eta = (p.total - p.processed) / rate if rate > 0 else 0.0
        filled = int(30 * min(p.processed / max(p.total, 1), 1))
        return (
            f"{self.name} [{'#' * filled}{'.' * (30 - filled)}] {p.processed}/{p.total} events, "
            f"{rate:,.0f}/s, ETA {eta:.0f}s"
        )

    def __call__(self, p: Any) -> None:
        bar = self._bar(p)
        if self.terminal:
            print(f"\r{bar}", end="", file=self.stream, flush=True)
            return
        now = self.monotonic()
        if now - self._last >= self.every:
            self._last = now
            print(bar, file=self.stream, flush=True)

    def done(self, p: Any) -> None:
        bar = self._bar(p)
        print(f"\r{bar}" if self.terminal else bar, file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or no file at all
        return False
