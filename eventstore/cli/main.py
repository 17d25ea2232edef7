"""`main`: parse the command line, configure logging once, run the command, map errors to exits.

Exit codes: 0 success, 1 error (bad input, unreachable server, unknown entity),
2 verification found tampering. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import ModuleType
from typing import Any, TextIO

from eventstore.cli.common import EXIT_ERROR, EXIT_OK, CliError
from eventstore.cli.logs import configure_logging
from eventstore.cli.parser import build_parser
from eventstore.settings import SettingsError

Command = Callable[[argparse.Namespace, TextIO], Coroutine[Any, Any, int]]


def _command(name: str) -> Command:
    """The coroutine of a command, its module imported only when it runs (startup stays fast)."""
    module: ModuleType
    if name in ("ingest", "migrate"):
        from eventstore.cli import capture

        module = capture
    elif name == "demo":
        from eventstore.cli import demo

        module = demo
    elif name in ("history", "state", "diff", "verify"):
        from eventstore.cli import history

        module = history
    elif name in ("project", "projections"):
        from eventstore.cli import projections

        module = projections
    elif name in ("keygen", "proof", "verify-proof"):
        from eventstore.cli import proofs

        module = proofs
    elif name == "erase":
        from eventstore.cli import erase

        module = erase
    elif name == "monitor":
        from eventstore.cli import monitor

        module = monitor
    elif name == "run":
        from eventstore.cli import run

        module = run
    elif name == "status":
        from eventstore.cli import status

        module = status
    elif name == "subscriptions":
        from eventstore.cli import subscriptions

        module = subscriptions
    elif name == "serve":
        from eventstore.cli import serve

        module = serve
    else:
        raise CliError(f"unknown command {name!r}")
    found: Command = getattr(module, "cmd_" + name.replace("-", "_"))
    return found


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, store: Any = None) -> int:
    """Run a command; returns (and, as the console script, exits with) its code.

    `store`: an already open store to use instead of the URI's (in-process use
    and tests, e.g. a pre-populated memory store); it is left open.
    """
    out = out or sys.stdout
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command == "projections" and not any(x.startswith("-") for x in extra):
            # `projections rebuild --workers 2 NAME`: argparse gives the names before the
            # options to `names` and leaves those after them over; they are names too
            args.names = [*args.names, *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # usage errors (1) and --help (0) return like any command
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    args.store = store
    configure_logging(args.verbose)
    try:
        return asyncio.run(_run(_command(args.command), args, out))
    except KeyboardInterrupt:
        return EXIT_OK
    except (CliError, SettingsError) as exc:
        print(f"eventstore: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


async def _run(command: Command, args: argparse.Namespace, out: TextIO) -> int:
    from eventstore.errors import user_message

    try:
        return await command(args, out)
    except (CliError, SettingsError):
        raise
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        raise CliError(message) from exc
