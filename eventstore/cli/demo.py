"""`eventstore demo`: the whole service on memory:// with simulated order traffic.

Serving (the default) is `run` on memory:// with the simulator (`run.serve_demo`);
`--report` captures `--orders` and `--changes` as fast as it can and reports.
SIGINT/SIGTERM stop either at once and exit 0, as they stop `run`; a stopped
report prints no summary (its numbers would be those of a part of the workload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

import msgspec

from eventstore.awaiting import unless_set
from eventstore.chain import LogVerifier
from eventstore.cli.bootstrap import Workload, WorkloadOptions, open_service
from eventstore.cli.common import EXIT_OK, Progress, StopSignals, settings_from
from eventstore.ingester import Ingester, IngestStats
from eventstore.memory.store import MemoryStore
from eventstore.ports import Store

REPORT_CHANGES = 2000  # `demo --report` without --changes (serving: unlimited)


async def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore demo`: serve the whole service on memory://; with --report, capture and report."""
    if not args.report:
        from eventstore.cli.run import serve_demo

        return await serve_demo(args, out)
    # The settings as given (flags, EVENTSTORE_* variables), on memory:// with the simulator,
    # as the serving demo takes them: a flag taken and ignored would say nothing happened.
    settings = msgspec.structs.replace(settings_from(args), uri="memory://", source="simulator")
    changes = REPORT_CHANGES if args.changes is None else args.changes
    workload = WorkloadOptions(orders=args.orders, changes=changes, rate=0, seed=args.seed)
    with _stopped_by_signals() as stop:
        async with open_service(
            settings, store=MemoryStore(), capture=True, workload=workload
        ) as svc:
            await svc.store.events.ensure_indexes()
            assert svc.workload is not None and svc.written is not None  # the simulator's
            simulating = _Simulating(svc.workload, svc.written, args.orders + changes)
            reported = await _report(
                svc.store, svc.ingester(), simulating, changes, args, out, stop
            )
    if not reported:
        print("demo: stopped before the report", file=sys.stderr)
    return EXIT_OK


class _Stop(asyncio.Event):
    """Set by SIGINT/SIGTERM; `is_set()` answers true from the signal on.

    Capturing a memory backlog never suspends: the event loop, and so the callback
    that sets the event, would run only once all of it is captured. The ingester asks
    `is_set()` between batches, which the flag raised by the signal handler itself
    answers at once; waiters are woken by the loop as for any event.
    """

    signalled = False

    def is_set(self) -> bool:
        return self.signalled or super().is_set()


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[_Stop]:
    """A `_Stop` that SIGINT and SIGTERM set while inside (the handlers before restored after).

    Python-level handlers run between any two bytecodes of the main thread, as
    asyncio's own SIGINT handler does; the loop's `add_signal_handler` would wait for
    the loop. `main`'s (StopSignals) are used when installed: a signal received during
    the start-up sets it at once. Outside the main thread no handler is installed
    (nothing can be).
    """
    loop = asyncio.get_running_loop()
    stop = _Stop()

    def stopped() -> None:
        stop.signalled = True
        loop.call_soon_threadsafe(stop.set)

    signals = StopSignals.installed()
    if signals is not None:
        signals.on_signal(stopped)
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to stop
            stopped()

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[sig] = signal.signal(sig, handler)
        yield stop
    finally:
        for sig, before in previous.items():
            if before is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, before)


# Seconds between two lines of progress while the workload is written (as a rebuild's
# progress off a terminal).
SIMULATING_EVERY = 10.0


class _Simulating:
    """The simulator's workload, saying how far it is every SIMULATING_EVERY seconds: at
    10,000 orders and 100,000 changes it writes for minutes before capture starts."""

    def __init__(self, workload: Workload, written: Callable[[], int], total: int) -> None:
        self.workload = workload
        self.written = written
        self.total = total

    async def __call__(self) -> None:
        started = time.monotonic()
        ticker = asyncio.create_task(self._tell(started))
        try:
            await self.workload()
        finally:
            ticker.cancel()

    async def _tell(self, started: float) -> None:
        while True:
            await asyncio.sleep(SIMULATING_EVERY)
            print(
                f"demo: {self.written():,} of about {self.total:,} changes written"
                f" ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


async def _report(
    store: Store,
    ingester: Ingester,
    workload: Workload,
    changes: int,
    args: argparse.Namespace,
    out: TextIO,
    stop: asyncio.Event,
) -> bool:
    """Capture the whole simulated workload as one backlog, then print the summary.

    False when `stop` was set first: nothing is printed then.
    """
    # Start capturing first (the initial snapshot of an empty shop), so the whole
    # workload arrives as a backlog of changes rather than as a final snapshot.
    await ingester.run(until_idle=True, stop=stop)
    if stop.is_set():
        return False
    print(
        f"simulating {args.orders} orders and {changes} changes (seed {args.seed})...",
        file=sys.stderr,
        flush=True,
    )
    await unless_set(workload(), stop)  # cancelled once stopped
    if stop.is_set():
        return False
    # The rate is the backlog's: from here, not counting the simulation or the first snapshot.
    progress = Progress("demo")
    ingester.on_batch = progress
    recorded_before, seconds_before = ingester.stats.recorded, ingester.stats.seconds
    stats = await ingester.run(until_idle=True, stop=stop)
    if stop.is_set():
        return False
    backlog = msgspec.structs.replace(
        stats, recorded=stats.recorded - recorded_before, seconds=stats.seconds - seconds_before
    )
    summary = await _summary(store, stats, rate=backlog.rate, stop=stop)
    if summary is None:
        return False
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        _print_summary(summary, out)
    return True


async def _summary(
    store: Store, stats: IngestStats, *, rate: float, stop: asyncio.Event
) -> dict[str, Any] | None:
    """The report of the captured log (verified), or None when `stop` is set meanwhile."""
    by_type: Counter[str] = Counter()
    entities: set[tuple[str, str]] = set()
    verifier = LogVerifier((await store.checkpoints.get("ingester:shop") or _no_cp()).head)
    after = 0
    while True:
        if stop.is_set():
            return None
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
