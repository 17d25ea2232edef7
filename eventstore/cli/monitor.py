"""`eventstore monitor URL --key K --state DIR [--read-key KEY] [--interval S] [--once]`.

Exit codes with --once: 0 the log extends what was saved, 2 evidence of a fork,
rollback, another origin, bad signature or refused proof (printed as JSON), 1 the
service cannot be reached or answers what is not a checkpoint, or the state cannot
be used. Without --once it keeps running and logs findings (never saving them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import TextIO

import msgspec

from eventstore.awaiting import wait_set
from eventstore.cli.common import EXIT_OK, EXIT_TAMPERED, CliError, install_stop_signals
from eventstore.monitor import Fetch, Finding, Unreachable, check_once
from eventstore.notes import NoteError, Verifier

log = logging.getLogger("eventstore.monitor")


def http_fetch(base: str, read_key: str | None, timeout: float = 10.0) -> Fetch:
    """GET paths of the service at `base` (urllib in a thread; no redirects followed)."""

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
        return await asyncio.to_thread(get, path)

    return fetch


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
            result = await check_once(fetch, verifier, state)
        except Unreachable as exc:
            if args.once:
                raise CliError(str(exc)) from None
            log.warning("monitor: %s", exc)
        except (NoteError, OSError) as exc:
            raise CliError(f"the state in {state} cannot be used: {exc}") from None
        else:
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
