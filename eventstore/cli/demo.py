"""`eventstore demo`: the whole service on memory:// with simulated order traffic.

Serving (the default) is `run` on memory:// with the simulator (`run.serve_demo`);
`--report` captures `--orders` and `--changes` as fast as it can and reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any, TextIO

import msgspec

from eventstore.chain import LogVerifier
from eventstore.cli.bootstrap import Workload, WorkloadOptions, open_service
from eventstore.cli.common import EXIT_OK, Progress
from eventstore.ingester import Ingester, IngestStats
from eventstore.memory.store import MemoryStore
from eventstore.ports import Store
from eventstore.settings import Settings

REPORT_CHANGES = 2000  # `demo --report` without --changes (serving: unlimited)


async def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore demo`: serve the whole service on memory://; with --report, capture and report."""
    if not args.report:
        from eventstore.cli.run import serve_demo

        return await serve_demo(args, out)
    settings = Settings(uri="memory://", source="simulator")
    changes = REPORT_CHANGES if args.changes is None else args.changes
    workload = WorkloadOptions(orders=args.orders, changes=changes, rate=0, seed=args.seed)
    async with open_service(settings, store=MemoryStore(), capture=True, workload=workload) as svc:
        await svc.store.events.ensure_indexes()
        assert svc.workload is not None  # the simulator's
        return await _report(svc.store, svc.ingester(), svc.workload, changes, args, out)


async def _report(
    store: Store,
    ingester: Ingester,
    workload: Workload,
    changes: int,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """Capture the whole simulated workload as one backlog, then print the summary."""
    # Start capturing first (the initial snapshot of an empty shop), so the whole
    # workload arrives as a backlog of changes rather than as a final snapshot.
    await ingester.run(until_idle=True)
    print(
        f"simulating {args.orders} orders and {changes} changes (seed {args.seed})...",
        file=sys.stderr,
    )
    await workload()
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
