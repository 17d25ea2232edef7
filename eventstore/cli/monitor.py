"""`eventstore monitor URL --key K --state DIR [--read-key KEY] [--interval S] [--once]`.

Exit codes with --once: 0 the log extends what was saved, 2 evidence of a fork,
rollback, another origin, bad signature or refused proof (printed as JSON), 1 the
service cannot be reached or answers what is not a checkpoint, or the state cannot
be used. Without --once it keeps running and logs findings (never saving them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import msgspec

from eventstore.awaiting import unless_set, wait_set
from eventstore.cli.common import EXIT_OK, EXIT_TAMPERED, CliError, install_stop_signals
from eventstore.monitor import Fetch, Finding, Unreachable, check_once
from eventstore.notes import NoteError, Verifier

log = logging.getLogger("eventstore.monitor")

T = TypeVar("T")


def http_fetch(base: str, read_key: str | None, timeout: float = 10.0) -> Fetch:
    """GET paths of the service at `base` (urllib in a thread of its own; no redirects followed).

    Cancelled while a request is in flight, the fetch ends at once (`off_the_loop`): the
    request runs on in its thread, at most `timeout` seconds, and its answer is dropped.
    """

    def get(path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(base.rstrip("/") + path)
        if read_key:
            request.add_header("Authorization", f"Bearer {read_key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"{base}: {exc}") from exc

    async def fetch(path: str) -> tuple[int, bytes]:
        return await off_the_loop(get, path)

    return fetch


async def off_the_loop(call: Callable[[str], T], arg: str) -> T:
    """`call(arg)` in a daemon thread of its own, awaited; a cancellation ends the wait at once.

    Not `asyncio.to_thread`: its thread is the loop's default executor, which `asyncio.run`
    joins before it returns, so a Ctrl-C (the command's task cancelled) waited for the
    request in flight, up to its timeout, before the exit. Invariant: a cancelled call's
    thread is left to end on its own (a daemon: it never holds the process's exit), and
    its outcome, which no one awaits any more, is dropped without a word.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def deliver(settle: Callable[[Any], None], outcome: Any) -> None:
        def settled() -> None:  # in the loop's thread: the waiter may be gone meanwhile
            if not answer.done():
                settle(outcome)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settled)

    def run() -> None:
        try:
            result = call(arg)
        except BaseException as exc:  # handed to the waiter, as `asyncio.to_thread` does
            deliver(answer.set_exception, exc)
        else:
            deliver(answer.set_result, result)

    threading.Thread(target=run, name="monitor-fetch", daemon=True).start()
    return await answer


def _evidence(finding: Finding, out: TextIO) -> None:
    print(json.dumps(msgspec.to_builtins(finding), ensure_ascii=False, indent=1), file=out)


async def cmd_monitor(args: argparse.Namespace, out: TextIO) -> int:
    """Watch a service's checkpoints; evidence of tampering exits 2 with --once."""
    if not args.url.startswith(("http://", "https://")):
        raise CliError(f"URL must start with http:// or https://, got {args.url!r}")
    try:
        verifier = Verifier.parse(args.key)
    except NoteError as exc:
        raise CliError(f"--key: {exc}") from None
    fetch = http_fetch(args.url, args.read_key)
    state = Path(args.state)
    stop = asyncio.Event()
    if not args.once:  # watching: stopped, exit 0; once: Ctrl-C before its answer is 130
        install_stop_signals(stop)
    while True:
        try:
            # Watching, a stop ends a check in flight at once (exit 0); with --once a Ctrl-C
            # cancels this task (exit 130). Either way nothing is half saved: `check_once`
            # saves only after its last fetch, without awaiting anything meanwhile.
            result = await unless_set(check_once(fetch, verifier, state), stop)
        except Unreachable as exc:
            if args.once:
                raise CliError(str(exc)) from None
            log.warning("monitor: %s", exc)
        except (NoteError, OSError) as exc:
            raise CliError(f"the state in {state} cannot be used: {exc}") from None
        else:
            if result is None:  # stopped while it checked
                return EXIT_OK
            if isinstance(result, Finding):
                _evidence(result, out)
                if args.once:
                    return EXIT_TAMPERED
                log.error("monitor: %s: %s", result.finding, result.detail)
            else:
                print(f"ok: tree {result.size} (saved before: {result.previous})", file=out)
                if args.once:
                    return EXIT_OK
        if await wait_set(stop, args.interval):
            return EXIT_OK
