"""`main`: parse the command line, configure logging once, run the command, map errors to exits.

Exit codes: 0 success, 1 error (bad input, unreachable server, unknown entity),
2 verification found tampering, 130 interrupted (Ctrl-C) before its answer, 141 the reader
of the output went away (`| head`).
Errors are one line on stderr, never a traceback; whatever it quotes (an argument, a
path, a setting) is printed with its control characters escaped, so it stays one line.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, TextIO

# Only what handles the stop signals is imported before `main` installs them (StopSignals):
# the rest, imported in `main`, would be a moment of its own where a signal is lost.
from eventstore.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    StopSignals,
    one_line,
    setting_flags,
)
from eventstore.cli.logs import configure_logging

if TYPE_CHECKING:
    import argparse
    from types import ModuleType

Command = Callable[["argparse.Namespace", TextIO], Coroutine[Any, Any, int]]

# 128 + SIGPIPE: the status of `git log | head`, `cat`, `grep` when their reader goes
# away (killed by SIGPIPE, which Python ignores: it gets BrokenPipeError instead).
EXIT_OUTPUT_CLOSED: Final = 141
# 128 + SIGINT: Ctrl-C ended a command before its answer (an interrupted verify is no verdict).
EXIT_INTERRUPTED: Final = 130


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


def console() -> NoReturn:
    """The console script: `main`, then an exit that does not free the heap object by object.

    A service over memory:// holds the whole log as objects (1.15 GB at 200,000 events);
    the interpreter's own exit freed them one by one, for seconds (30 s on a loaded
    machine) after the service had stopped, releasing nothing. When `main` returns,
    everything is stopped, released and written: the exit handlers run (logging's flush
    among them), the standard streams are flushed, and the process ends with the code.
    """
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, store: Any = None) -> int:
    """Run a command; returns (and, as the console script, exits with) its code.

    `store`: an already open store to use instead of the URI's (in-process use
    and tests, e.g. a pre-populated memory store); it is left open.
    """
    signals = StopSignals()
    signals.install()  # first: a signal from here on is noted, whatever runs meanwhile
    try:
        return _main(argv, out or sys.stdout, store, signals)
    finally:
        signals.restore()


def is_service(args: argparse.Namespace) -> bool:
    """Whether the command runs until stopped: SIGINT/SIGTERM stop it and it exits 0.

    Any other command has an answer; Ctrl-C before it is exit 130 (`monitor --once` too).
    """
    command = args.command
    if command == "subscriptions":
        return bool(args.action == "run")
    if command == "monitor":
        return not args.once
    return command in ("run", "serve", "demo", "ingest", "project")


def _main(argv: Sequence[str] | None, out: TextIO, store: Any, signals: StopSignals) -> int:
    import asyncio

    from eventstore.cli.parser import build_parser
    from eventstore.settings import SettingsError, named_by_origin

    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # before the command: a command's own are its parser's usage error
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            parser.error("the following arguments are required: COMMAND")
    except SystemExit as exc:  # usage errors (1) and --help (0) return like any command
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    args.store = store
    service = is_service(args)
    try:
        if not service:
            signals.release()  # Python's own SIGINT again: Ctrl-C is KeyboardInterrupt
        configure_logging(args.verbose)
        command = _command(args.command)
        if signals.received is not None:  # a service stopped before it started
            return EXIT_OK
        code = asyncio.run(_run(command, args, out, signals if service else None))
        out.flush()  # a buffered answer meets a closed pipe here, not at the interpreter's exit
        return code
    except KeyboardInterrupt:  # a command with no stop of its own (a service stops with 0)
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:  # a service's start-up, cancelled by SIGINT/SIGTERM
        if service and signals.received is not None:
            return EXIT_OK
        raise
    except BrokenPipeError as exc:
        if _reader_gone(out):
            _discard_output(out)
            return EXIT_OUTPUT_CLOSED
        _print_error(CliError(str(exc)))
        return EXIT_ERROR
    except (CliError, SettingsError) as exc:
        # A line about a setting (a key file refused when it is read, the SUBSCRIPTIONS file)
        # names the flag when the flag was given, else the variable, as `load`'s own do.
        _print_error(exc, named_by_origin(str(exc), setting_flags(args)))
        return EXIT_ERROR


def _print_error(exc: Exception, message: str | None = None) -> None:
    """The one line of an error (`message`, else the error's own) on stderr, then a
    CliError's details, each escaped."""
    lines = [f"eventstore: error: {message or exc}", *getattr(exc, "details", ())]
    with contextlib.suppress(BrokenPipeError):  # nobody reads stderr either: nothing to say
        for line in lines:
            print(one_line(line), file=sys.stderr)


def _reader_gone(out: TextIO) -> bool:
    """Whether what reads `out` has gone (a pipe whose reader exited), not another pipe broke."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (in-process use)
        return False
    if not hasattr(select, "poll"):  # Windows: no way to ask; it was our output most likely
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    # A pipe without a reader polls POLLERR, a socket whose peer closed POLLHUP.
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _discard_output(out: TextIO) -> None:
    """Point `out`'s descriptor at /dev/null (Python's recipe for a closed pipe).

    The interpreter's last flush of what is still buffered must not fail again
    ("Exception ignored ... BrokenPipeError" on stderr).
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


async def _run(
    command: Command, args: argparse.Namespace, out: TextIO, signals: StopSignals | None = None
) -> int:
    import asyncio

    from eventstore.settings import SettingsError

    if signals is not None:  # a service: a signal before it registers its stop cancels this
        task = asyncio.current_task()
        assert task is not None
        signals.attach(task)
        if signals.received is not None:
            return EXIT_OK
    try:
        return await command(args, out)
    except (CliError, SettingsError, BrokenPipeError):
        raise
    except Exception as exc:
        from eventstore.errors import scrub, user_message
        from eventstore.migrate import MigrationError

        if isinstance(exc, MigrationError):  # the error, then the steps done before it
            done = str(exc.report).strip()
            details = done.splitlines() if done else []
            raise CliError(scrub(f"migration failed: {exc}"), details=details) from exc
        message = user_message(exc)
        if message is None:
            raise
        raise CliError(message) from exc
