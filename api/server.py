"""Serving an app in this process with uvicorn: SIGINT/SIGTERM stop it gracefully, exit 0.

uvicorn re-raises a caught signal after its graceful shutdown (so the process
dies by it); a service that stopped cleanly should instead return and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with signals that only ask it to stop.

    On the signal, an app with a `drain()` (EventStoreApp) is told at once, so open
    live tails end now rather than holding the shutdown for its grace period.
    """

    _loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn forces the exit on a second SIGINT, cancelling the app's lifespan
        # mid-shutdown (an ERROR traceback, the workers' stop cut short). The shutdown
        # is bounded already (`timeout_graceful_shutdown`): a second signal only asks again.
        self._captured_signals.append(sig)
        self.should_exit = True
        drain = getattr(self.config.app, "drain", None)
        if drain is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(drain)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
            self._captured_signals.clear()


def server(app: Any, *, host: str, port: int, **config: Any) -> GracefulServer:
    """A server for `app` with the access log off (the app logs one JSON line per request)."""
    return GracefulServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=5,
            **config,
        )
    )
