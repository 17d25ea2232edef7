"""Serving an app in this process with uvicorn: SIGINT/SIGTERM stop it gracefully, exit 0.

uvicorn re-raises a caught signal after its graceful shutdown (so the process
dies by it); a service that stopped cleanly should instead return and exit 0.

Requests still open when the grace for them is over are cancelled by uvicorn; each is
then answered 503 (`application/problem+json`: the service is stopping), never a 500
with a `CancelledError` traceback in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator, Iterable
from types import FrameType
from typing import Any, Final

import uvicorn

log = logging.getLogger("eventstore.api")

STOPPING: Final = json.dumps(
    {
        "type": "https://eventstore.dev/problems/unavailable",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the service is stopping; try again shortly",
    }
).encode()


class EndedAtStop:
    """ASGI around the app: a request cancelled at the end of the server's grace is a 503.

    uvicorn cancels the requests still open when `timeout_graceful_shutdown` is over;
    the cancellation reaching it is logged as an error with its traceback and answered
    500. Here it is answered 503 (when nothing was sent yet) or its body ended.
    """

    def __init__(self, app: Any, server: uvicorn.Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = ended = False

        async def sending(message: Any) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if not self.server.should_exit:
                raise  # not the stop's: as it came
            log.warning(
                "%s %s was still open when the stop's grace ended: answered 503",
                scope.get("method"),
                scope.get("path"),
            )
            with contextlib.suppress(Exception):  # the client may be gone as well
                if not started:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [
                                (b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(STOPPING)).encode()),
                                (b"connection", b"close"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": STOPPING})
                elif not ended:
                    await send({"type": "http.response.body", "body": b""})


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with signals that only ask it to stop.

    On the signal, an app with a `drain()` (EventStoreApp) is told at once, so open
    live tails end now rather than holding the shutdown for its grace period, and so
    is each of `on_stop` (the app's start-up waiting for the database gives up): a stop
    asked at any moment, during the start-up too, is a stop at once.
    """

    _loop: asyncio.AbstractEventLoop | None = None

    def __init__(
        self, config: uvicorn.Config, *, on_stop: Iterable[Callable[[], None]] = ()
    ) -> None:
        super().__init__(config)
        self.on_stop = list(on_stop)
        self._told = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.config.loaded:
            self.config.load()
        if not isinstance(self.config.loaded_app, EndedAtStop):
            self.config.loaded_app = EndedAtStop(self.config.loaded_app, self)
        if self.should_exit:  # asked before serving (`stop_serving_on_signals`)
            self._tell_app()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn forces the exit on a second SIGINT, cancelling the app's lifespan
        # mid-shutdown (an ERROR traceback, the workers' stop cut short). The shutdown
        # is bounded already (`timeout_graceful_shutdown`): a second signal only asks again.
        self._captured_signals.append(sig)
        self.ask_to_stop()

    def ask_to_stop(self) -> None:
        """Stop serving (safe in a signal handler): the app is told on its loop at once."""
        self.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
                self._loop.call_soon_threadsafe(self._tell_app)

    def _tell_app(self) -> None:
        if self._told:
            return
        self._told = True
        drain = getattr(self.config.app, "drain", None)
        for stop in [*([drain] if drain is not None else []), *self.on_stop]:
            stop()

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
