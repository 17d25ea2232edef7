"""Lines of a pipe (standard input) as they arrive, read by a thread that never holds up an exit.

A read of a pipe blocks until its writer writes or closes it. Read in the event loop's
default executor, it holds up the process's exit (the executor is joined at shutdown)
and, asking for a whole chunk of lines, it holds back the lines already there until the
chunk is full. Here one daemon thread reads: the lines there at a time are handed over
together (a read blocks only for the first), at most `BUFFERED` chunks wait for the
reader (back-pressure on the writer), and a process stopped by a signal exits at once,
leaving the thread blocked in its read.
"""

from __future__ import annotations

import asyncio
import io
import queue
import select
import threading
from typing import IO, Any, Final

BUFFERED: Final = 4  # chunks read ahead of the consumer


class PipedLines:
    """The lines of `handle`, in chunks of at most `chunk`, read by a daemon thread."""

    def __init__(self, handle: IO[Any], chunk: int) -> None:
        self._handle = handle
        self._chunk = chunk
        self._queue: queue.Queue[list[Any] | BaseException] = queue.Queue(maxsize=BUFFERED)
        self._arrived = asyncio.Event()
        self._thread: threading.Thread | None = None

    def ready(self) -> bool:
        """True when a chunk (or the end, or an error) is there to take without waiting."""
        self._start()
        return not self._queue.empty()

    async def take(self) -> list[Any]:
        """The next chunk: at least one line, or [] at the end. Raises the read's error."""
        self._start()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                self._arrived.clear()
                if self._queue.empty():  # else a chunk came between the two looks
                    await self._arrived.wait()
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def _start(self) -> None:
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._read, args=(loop,), name="ndjson-stdin", daemon=True
            )
            self._thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        """The thread: chunks until the end (an empty chunk) or an error, then it ends."""
        while True:
            try:
                lines = _available(self._handle, self._chunk)
            except Exception as exc:  # handed to the consumer, which raises it
                self._hand_over(loop, exc)
                return
            if not self._hand_over(loop, lines) or not lines:
                return

    def _hand_over(self, loop: asyncio.AbstractEventLoop, item: list[Any] | Exception) -> bool:
        """Queue `item` (waiting for room) and wake the consumer; False once the loop closed."""
        self._queue.put(item)
        try:
            loop.call_soon_threadsafe(self._arrived.set)
        except RuntimeError:  # the loop is closed: nobody takes what is read
            return False
        return True


def _available(handle: IO[Any], most: int) -> list[Any]:
    """One line (waiting for it), then the lines there without waiting, up to `most`."""
    first = handle.readline()
    if not first:
        return []
    lines = [first]
    while len(lines) < most and _readable_now(handle):
        line = handle.readline()
        if not line:
            break  # the end: the next read returns [] at once
        lines.append(line)
    return lines


def _readable_now(handle: IO[Any]) -> bool:
    """True when a read would not wait (a handle with no descriptor never does)."""
    try:
        fd = handle.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return True
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)
