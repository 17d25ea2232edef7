"""What every command shares: exit codes, the one-line error, settings from flags, stop signals."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, TextIO

from eventstore.settings import SETTING_NAMES, Settings, load

if TYPE_CHECKING:
    from eventstore.ingester import IngestStats

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_TAMPERED: Final = 2


# What a terminal would act on rather than show: C0 and C1 controls (escape sequences, the
# 8-bit CSI, newlines and carriage returns that forge lines), DEL, and the marks and
# overrides that reorder what is displayed (bidirectional text).
_UNPRINTABLE: Final = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}


def printable(text: str) -> str:
    """`text` from the log as a terminal should show it: every control character escaped.

    Keys, actors, field names and values come from the captured documents; printed
    raw, one could move the cursor, retitle the window or forge a line of a table
    or of a verdict. `--json` output is left exact (JSON escapes what it must).
    """
    return text.translate(_UNPRINTABLE)


def one_line(text: str) -> str:
    """`text` as one line of a message: every control character and undecodable byte escaped.

    Control characters as `printable` escapes them; the bytes of an argument or a path
    that are not UTF-8 (which Python holds as lone surrogates) as `\\udcff`.
    """
    return printable(text).encode("utf-8", "backslashreplace").decode("utf-8")


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1.

    `details`: lines printed after it (a failed migration's steps done before it),
    each escaped as the error line is.
    """

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


def settings_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment with this command's flags on top."""
    overrides = {name: getattr(args, "setting_" + name, None) for name in SETTING_NAMES}
    return load(environ, overrides)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop` so work ends cleanly (checkpoints stored, leases released)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)


class Progress:
    """One line on stderr every few seconds while long work runs."""

    def __init__(self, label: str, every: float = 2.0, stream: TextIO | None = None) -> None:
        self.label = label
        self.every = every
        self.stream = stream or sys.stderr
        self._last = time.monotonic()
        self._started = self._last

    def __call__(self, stats: IngestStats) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = stats.recorded / max(now - self._started, 1e-9)
            print(
                f"{self.label}: {stats.recorded} events recorded, {rate:,.0f}/s",
                file=self.stream,
                flush=True,
            )


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """The objects alive now are left out of the garbage collector's full passes meanwhile.

    For a command that owns its process: a projection rebuild (walking an unchanged
    log again on every full pass was a third of its time), and the long-running
    `run`, `serve`, `demo` and `subscriptions run`, which freeze what start-up made
    (modules, the app) before serving: a full pass over it stalled every delivery
    and request for 30-130 ms, the whole webhook p99. `gc.freeze` is process-wide,
    so only a command may use it, never library code that shares a process
    (`create_app`, the workers, a runner). Unfrozen after.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
