"""What every command shares: exit codes, the one-line error, settings from flags, stop signals.

Imported by `main` before it can handle a signal: it imports only what the stop signals
need (the rest where it is used), so that moment comes early.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    import argparse
    import asyncio
    from types import FrameType

    from eventstore.ingester import IngestStats
    from eventstore.settings import Settings

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


class NothingThere(CliError):
    """A `CliError` saying that what was asked for is not there (an entity, a stream, a
    subscription, a checkpoint): on a new memory:// store, `open_service` says why."""


def setting_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """This command's setting flags by setting, as `settings.load` takes them (None: not given)."""
    from eventstore.settings import SETTING_NAMES

    return {name: getattr(args, "setting_" + name, None) for name in SETTING_NAMES}


def settings_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment with this command's flags on top."""
    from eventstore.settings import load

    return load(environ, setting_flags(args))


STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM from the first line of `main` on: noted at once, never lost.

    A signal may come at any moment of a start-up (imports, parsing, opening the store),
    before the command has anything to stop; a handler the command installed only then
    would never see it, and Python's own would end the start-up with a traceback (or, for
    a SIGINT ignored by whoever started the process, as a shell does for `cmd &`, the
    signal would be lost). `main` installs these handlers first; they only note the
    signal. Once the command is known:

    - a service (`run`, `serve`, `demo`, `ingest`, `project`, `subscriptions run`,
      `monitor`) keeps them: what a signal stops is registered with `on_signal` (and
      stopped at once when the signal came before); until something is, a signal
      cancels the command's task (`attach`), so a start-up stops where it is. Either way
      the service exits 0.
    - any other command gets the handlers it had before back (`release`; SIGINT ignored
      before is Python's own instead), and a signal noted meanwhile is raised again for
      them: Ctrl-C is a KeyboardInterrupt (exit 130).

    Outside the main thread nothing is installed (nothing can be).
    """

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal noted
        self._previous: dict[int, Any] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[Any] | None = None

    @staticmethod
    def installed() -> StopSignals | None:
        """The stop signals whose handler SIGINT has now (`main`'s), if any."""
        owner = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
        return owner if isinstance(owner, StopSignals) else None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM here (the handlers before are kept for `restore`)."""
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                return

    def restore(self) -> None:
        """Give SIGINT and SIGTERM back the handlers they had before `install`."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)

    def release(self) -> None:
        """Not a service: the handlers before are back, and a signal noted is raised for them.

        SIGINT ignored before (a background job of a script, `eventstore verify &`, starts
        so) is Python's own KeyboardInterrupt instead, as the services take SIGINT however
        they were started (`kill -INT` is how such a job is stopped). Left ignored, Ctrl-C
        reached nothing: a command waiting for MongoDB ran on until its server selection
        gave up, and exited 1. Invariant: after `release`, SIGINT is a KeyboardInterrupt
        unless whoever called `main` in this process installed a handler of its own; with
        it, `asyncio.run` cancels the command's task, whose store is closed (bounded) on
        the way out. `restore` puts the ignored disposition back.
        """
        self.restore()
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to install
                self._previous[signal.SIGINT] = signal.signal(
                    signal.SIGINT, signal.default_int_handler
                )
        if self.received is not None:
            signal.raise_signal(self.received)

    def on_signal(self, callback: Callable[[], None]) -> None:
        """Call `callback` on SIGINT/SIGTERM, or now when one came already.

        It runs in a signal handler: it may only set flags or hand work to a loop
        (`loop.call_soon_threadsafe`). A RuntimeError (its loop is closed) is ignored.
        """
        self._callbacks.append(callback)
        if self.received is not None:
            with contextlib.suppress(RuntimeError):
                callback()

    def attach(self, task: asyncio.Task[Any]) -> None:
        """The command's task, cancelled by a signal while nothing is registered to stop."""
        self._task = task

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        for callback in list(self._callbacks):
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing to stop
                callback()
        task = self._task
        if not self._callbacks and task is not None and not task.done():
            with contextlib.suppress(RuntimeError):
                task.get_loop().call_soon_threadsafe(self._cancel_start_up)

    def _cancel_start_up(self) -> None:
        # Something may have registered since the signal (and been told at once).
        task = self._task
        if not self._callbacks and task is not None and not task.done():
            task.cancel()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop` so work ends cleanly (checkpoints stored, leases released).

    With `main`'s stop signals (see StopSignals), a signal received before, during the
    start-up, sets it at once.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    signals = StopSignals.installed()
    if signals is not None:

        def stopped() -> None:
            loop.call_soon_threadsafe(stop.set)

        signals.on_signal(stopped)
        return
    for sig in STOP_SIGNALS:
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
