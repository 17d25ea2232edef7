"""`eventstore serve`: the API under uvicorn, one JSON access line per request on stderr.

The socket is bound here, before uvicorn starts, so a port in use or a bad
address is one clear line and exit 1. With `--workers 1` the app is built in
this process (over the store given to `main`, if any); with more, uvicorn's
supervisor starts that many processes, each building its app with
`eventstore.cli.bootstrap:app_from_env` from `EVENTSTORE_*` variables (the CLI's setting
flags are passed down as those variables). SIGINT/SIGTERM stop gracefully, exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any, Final, TextIO

from eventstore.cli.bootstrap import build_app, projections
from eventstore.cli.common import EXIT_OK, CliError, StopSignals, frozen_gc, settings_from
from eventstore.cli.logs import logging_config
from eventstore.settings import PREFIX, SETTING_NAMES, Settings

log = logging.getLogger("eventstore.serve")

FACTORY: Final = "eventstore.cli.bootstrap:app_from_env"
# Seconds requests still open at a stop get to finish before they are cancelled. With one
# worker, live tails end at once (`EventStoreApp.drain`); with several, they take the grace.
GRACE_SECONDS: Final = 5


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn listens on it); CliError naming the problem otherwise."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CliError(
            f"cannot listen on {host}:{port}: unknown address ({exc.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise CliError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _export_settings(args: argparse.Namespace) -> None:
    """The setting flags given on the command line, as EVENTSTORE_* variables for the workers."""
    for name in SETTING_NAMES:
        value = getattr(args, "setting_" + name, None)
        if value is not None:
            os.environ[PREFIX + name.upper()] = value


def _check(settings: Settings, args: argparse.Namespace) -> None:
    if settings.uri is None and args.store is None:
        raise CliError(
            "serve needs a database: give --uri (mongodb://, mongodb+srv:// or memory://) "
            "or set EVENTSTORE_URI"
        )
    if args.workers < 1:
        raise CliError(f"--workers must be 1 or more, got {args.workers}")
    if args.workers > 1 and (settings.is_memory or args.store is not None):
        raise CliError(
            "memory:// lives inside one process: serve it with --workers 1 "
            "(several workers need a mongodb:// URI)"
        )
    projections(settings)  # a plugin that cannot be used is refused here, before any worker


async def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore serve`: the API only (no capture, no projector), until SIGINT/SIGTERM."""
    settings = settings_from(args)
    _check(settings, args)
    sock = bind(args.host, args.port)
    try:
        with contextlib.ExitStack() as stack:
            # The metrics' directory is ready (or its problem reported) before any worker.
            if args.workers == 1:
                clean_metrics_dir()
            else:
                stack.enter_context(shared_metrics_dir())
            await _serve(settings, args, sock)
    finally:
        sock.close()
    return EXIT_OK


async def _serve(settings: Settings, args: argparse.Namespace, sock: socket.socket) -> None:
    import uvicorn

    host, port = sock.getsockname()[:2]
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": logging_config(getattr(args, "verbose", False)),
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    shown = f"[{host}]" if ":" in host else host
    log.info("serving http://%s:%s with %d worker(s)", shown, port, args.workers)
    if args.workers == 1:
        await _serve_here(settings, args, sock, common)
    else:
        _export_settings(args)
        config = uvicorn.Config(FACTORY, factory=True, workers=args.workers, **common)
        _supervise(config, sock)


async def _serve_here(
    settings: Settings, args: argparse.Namespace, sock: socket.socket, common: dict[str, Any]
) -> None:
    import uvicorn

    from api.server import GracefulServer

    app = build_app(settings, store=args.store)
    # A stop asked while the app's start-up waits for the database ends that wait at once.
    server = GracefulServer(uvicorn.Config(app, **common), on_stop=[app.services.interrupt])
    stop_serving_on_signals(server)
    try:
        with frozen_gc():  # this process is the API's: start-up's objects stay
            await server.serve(sockets=[sock])
    except SystemExit:  # uvicorn exits when the app's startup fails; it has logged why
        raise CliError("the API did not start (see the log above)") from None
    if not server.started:
        raise CliError("the API did not start (see the log above)")


def stop_serving_on_signals(server: Any) -> None:
    """A SIGINT/SIGTERM before uvicorn handles them itself (`server.serve`) stops it too.

    One received during the start-up (see StopSignals) stops it at once: it starts (the
    app's lifespan starts and stops its workers) and shuts down without serving.
    """
    signals = StopSignals.installed()
    if signals is not None:
        ask = getattr(server, "ask_to_stop", None)  # GracefulServer: tells the app at once
        signals.on_signal(ask if ask is not None else lambda: setattr(server, "should_exit", True))


def clean_metrics_dir() -> None:
    """One process: empty a `PROMETHEUS_MULTIPROC_DIR` the operator set of an earlier run's files.

    (This process's prometheus_client decided at import whether it keeps its values in
    such a directory; without the variable they stay in memory.) CliError if unusable.
    """
    from api.metrics import clean_shared_dir

    with _metrics_dir_errors():
        clean_shared_dir()


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """Several workers: a clean directory where each writes its figures and all read everyone's.

    `PROMETHEUS_MULTIPROC_DIR` (emptied of an earlier run's files), else a temporary
    directory named to the workers in that variable and removed at the end.
    """
    from api.metrics import shared_dir

    with contextlib.ExitStack() as stack:
        with _metrics_dir_errors():
            stack.enter_context(shared_dir())
        yield


@contextlib.contextmanager
def _metrics_dir_errors() -> Iterator[None]:
    from api.metrics import MULTIPROC_ENV

    try:
        yield
    except OSError as exc:
        where = os.environ.get(MULTIPROC_ENV) or "a temporary directory"
        raise CliError(f"{MULTIPROC_ENV}: cannot use {where}: {exc.strerror or exc}") from None


def _supervise(config: Any, sock: socket.socket) -> None:
    """uvicorn's supervisor: starts the workers, restarts one that dies, stops on SIGINT/SIGTERM."""
    from uvicorn.config import STARTUP_FAILURE

    signals = StopSignals.installed()
    supervisor = _supervisor(config, sock)  # uvicorn handles SIGINT/SIGTERM from here on
    if signals is not None and signals.received is not None:
        return  # stopped during the start-up: no worker is started
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise CliError("a worker did not start (see the log above)")


def _supervisor(config: Any, sock: socket.socket) -> Any:
    """uvicorn's `Multiprocess`, telling the metrics each time one of its workers has ended.

    A worker that ends normally drops its own live gauges at shutdown; one that was
    killed or crashed cannot, so the supervisor does it once it sees the process gone
    (uvicorn checks its workers every half second), and for all of them when it stops.
    """
    from uvicorn.supervisors import Multiprocess

    from api.metrics import process_ended

    class Supervisor(Multiprocess):
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            super().__init__(config, sockets=sockets)
            self.seen: set[int] = set()  # the workers alive at the last look

        def _pids(self, *, alive: bool) -> set[int]:
            return {
                p.pid
                for p in self.processes
                if p.pid is not None and (not alive or p.process.is_alive())
            }

        def _reap(self) -> None:
            alive = self._pids(alive=True)
            for pid in self.seen - alive:
                process_ended(pid)
            self.seen = alive

        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()
            self._reap()

        def handle_signals(self) -> None:  # SIGHUP restarts all, SIGTTOU retires one
            super().handle_signals()
            self._reap()

        def run(self) -> None:
            try:
                super().run()
            finally:  # every worker has been joined
                for pid in self.seen | self._pids(alive=False):
                    process_ended(pid)

    return Supervisor(config, sockets=[sock])


__all__ = [
    "bind",
    "clean_metrics_dir",
    "cmd_serve",
    "shared_metrics_dir",
    "stop_serving_on_signals",
]
