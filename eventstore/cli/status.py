"""`eventstore status`: every instance's background workers, as `GET /v1/workers` shows them."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, TextIO

import msgspec

from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import EXIT_OK, printable, settings_from
from eventstore.worker_state import shown

if TYPE_CHECKING:
    from api.schemas import WorkerOut

COLUMNS = ("name", "kind", "instance", "state", "since", "restarts", "position", "lag", "lag_s")


async def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    """Print the stored worker states (stale ones marked), a table or `--json`."""
    from api.routes.workers import worker_out

    settings = settings_from(args)
    # Answered inside: on memory://, `open_service` says after the answer that its store is new.
    async with open_service(settings, store=args.store) as service:
        now = service.clock.now()
        records = [
            shown(r, now=now, lease_seconds=settings.lease_seconds)
            for r in await service.store.workers.all()
        ]
        return _print_workers([worker_out(r) for r in records], args, out)


def _print_workers(workers: list[WorkerOut], args: argparse.Namespace, out: TextIO) -> int:
    """The workers as a table, or `--json`."""
    if args.json:
        print(json.dumps(msgspec.to_builtins(workers)), file=out)
        return EXIT_OK
    if not workers:
        print("no worker states recorded: no instance runs workers on this store", file=out)
        return EXIT_OK
    rows = [
        (
            w.name,
            w.kind,
            w.instance,
            w.state,
            w.since,
            str(w.restarts),
            "-" if w.position is None else str(w.position),
            "-" if w.lag is None else str(w.lag),
            "-" if w.lag_seconds is None else f"{w.lag_seconds:.1f}",
        )
        for w in workers
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.upper().ljust(n) for c, n in zip(COLUMNS, widths, strict=True)), file=out)
    for row, w in zip(rows, workers, strict=True):
        line = "  ".join(v.ljust(n) for v, n in zip(row, widths, strict=True)).rstrip()
        print(printable(line), file=out)
        if w.last_error:
            print(printable(f"    last error: {w.last_error}"), file=out)
    return EXIT_OK
