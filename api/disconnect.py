"""Noticing a client that goes away: `ClientWatch` reads the request's messages one ahead.

Handlers that take no body never call `receive()`, so without a reader a client
that hung up before its answer goes unnoticed, and one that hung up while its
body was read made Litestar raise (a 500). The watch's reader task holds at most
one message ahead of the app (memory stays bounded whatever the body's size),
and records `http.disconnect` as `gone`: the request is then counted and logged
as 499 (client closed request) and its answer, which nobody would read, is
dropped. A client that leaves before its answer is complete (a handler still
working, a stream half sent) has the app's work cancelled (`answer`): nothing
more is computed or sent for it. `drain()` of the app (a server stopping) looks
like a disconnect to streaming responses, without counting as one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from litestar.types import HTTPDisconnectEvent, Receive, ReceiveMessage

from eventstore.awaiting import cancel_and_wait

CLIENT_CLOSED: Final = 499
DISCONNECT: Final[HTTPDisconnectEvent] = {"type": "http.disconnect"}


class ClientWatch:
    """A request's `receive`, read ahead by one, with `gone` set once the client disconnected."""

    def __init__(self, receive: Receive, draining: asyncio.Event) -> None:
        self._receive = receive
        self._draining = draining
        self._queue: asyncio.Queue[ReceiveMessage] = asyncio.Queue(maxsize=1)
        self.gone = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    return
                await self._queue.put(message)
        finally:  # a disconnect, or a server that cannot deliver any more: no one is listening
            self.gone.set()

    async def settle(self) -> None:
        """Give the reader its first turn (a client already gone is seen before the app runs)."""
        await asyncio.sleep(0)

    async def receive(self) -> ReceiveMessage:
        """The next request message; `http.disconnect` once the client is gone or the app drains."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self.gone.is_set() or self._draining.is_set():
            return DISCONNECT
        get = asyncio.ensure_future(self._queue.get())
        gone = asyncio.ensure_future(self.gone.wait())
        drain = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait((get, gone, drain), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (get, gone, drain):
                if not waiter.done():
                    waiter.cancel()  # a cancelled get takes nothing off the queue
        if get.done() and not get.cancelled():
            return get.result()
        return DISCONNECT

    async def answer(self, work: Awaitable[None], answered: Callable[[], bool]) -> bool:
        """Run the app's `work`, cancelled if the client leaves before `answered()`.

        Returns True when the client left before the answer was complete (the work
        cancelled, or ended by the client's leaving, as a stream does).
        """
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and not answered():
                return True  # cancelled on the way out: nobody reads what it would send
            await task
            return self.gone.is_set() and not answered()
        finally:
            await cancel_and_wait((task, gone))

    async def close(self) -> None:
        """Stop the reader (the response is over)."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


__all__ = ["CLIENT_CLOSED", "ClientWatch"]
