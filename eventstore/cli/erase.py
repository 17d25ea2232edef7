"""`eventstore erase STREAM KEY --reason TEXT --actor NAME [--yes]`: queue an erasure request.

The capturing instance carries it out (see `eventstore.erasure`). Without `--yes`
the command asks on stderr and reads the answer from stdin; with no stdin to
answer (closed, or at its end) it refuses rather than erase unconfirmed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import EXIT_ERROR, EXIT_OK, CliError, printable, settings_from
from eventstore.erasure import check_erasure, request_erasure
from eventstore.history import History, HistoryError, UnknownEntity, UnknownStream
from eventstore.keys import answer_key


def confirmed(stream: str, key: str, answer_from: TextIO | None, ask: TextIO) -> bool:
    """Ask whether to erase; True only on an explicit yes. Raises CliError with no stdin."""
    print(
        f"Erase the payload of every event of {stream}/{key}? The data cannot be recovered. "
        "Type yes to confirm: ",
        end="",
        file=ask,
        flush=True,
    )
    if answer_from is None or answer_from.closed:
        raise CliError("no stdin to confirm the erasure on: pass --yes to erase without asking")
    line = answer_from.readline()
    if not line:
        print(file=ask)
        raise CliError(
            "no answer on stdin to confirm the erasure: pass --yes to erase without asking"
        )
    return line.strip().lower() in ("yes", "y")


async def cmd_erase(args: argparse.Namespace, out: TextIO) -> int:
    """Queue the erasure of one entity's payloads; print the request id.

    Whatever would refuse the request (an unknown entity, an ambiguous key, a blank
    reason, events that cannot be erased) is said before asking; a request already
    queued or carried out is reported without asking.
    """
    settings = settings_from(args)
    async with open_service(settings, store=args.store) as service:
        history = History.from_settings(service.store, settings)
        asked = {"stream": args.stream, "key": args.key, "reason": args.reason, "actor": args.actor}
        try:
            checked = await check_erasure(service.store, history, **asked)
            ask = checked.existing is None and not args.yes
            # Named so that it names this entity alone (`int:42` beside the string "42").
            shown = answer_key(checked.entity_id, args.key)
            if ask and not confirmed(args.stream, shown, sys.stdin, sys.stderr):
                print("eventstore: not erased (not confirmed)", file=sys.stderr)
                return EXIT_ERROR
            # Checked again: while the question waited, the entity may have changed or
            # another request been queued (request_erasure answers with that one).
            outcome = await request_erasure(service.store, history, **asked, now=datetime.now(UTC))
        except (UnknownStream, UnknownEntity):
            raise  # open_service says so, and why on a new memory:// store
        except HistoryError as exc:
            raise CliError(str(exc)) from None
    request = outcome.request
    shown = answer_key(request.entity_id, args.key)
    data: dict[str, object] = {"request": request.id}
    if outcome.already_erased:
        data["already_erased"] = True
        text = (
            f"{args.stream}/{shown} is already erased by request {request.id} "
            f"(erased event seq {request.seq}): nothing new to erase"
        )
    elif outcome.already_queued:
        data["already_queued"] = True
        text = f"request {request.id} for {args.stream}/{shown} is already queued"
    else:
        text = (
            f"erasure of {args.stream}/{shown} requested: {request.id} "
            "(carried out by the capturing instance; it appends an erased event)"
        )
    print(json.dumps(data) if args.json else printable(text), file=out)
    return EXIT_OK
