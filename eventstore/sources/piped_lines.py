"""Lines of a pipe (standard input) as they arrive, read by a thread that never holds up an exit.

A read of a pipe blocks until its writer writes or closes it. Read in the event loop's
default executor, it holds up the process's exit (the executor is joined at shutdown)
and, asking for a whole chunk of lines, it holds back the lines already there until the
chunk is full. Here one daemon thread reads: the lines there at a time are handed over
together (a read blocks only for the first), at most `BUFFERED` chunks wait for the
reader (back-pressure on the writer), and a process stopped by a signal exits at once,
leaving the thread blocked in its read.

A pipe with a descriptor is read with `os.read`, below Python's buffered reader: a
thread blocked in `readline()` holds that reader's lock, and a process forked meanwhile
(a partitioned rebuild's workers) inherits it held. `multiprocessing` closes the
child's `sys.stdin` as it starts, and waits for ever on that lock. Lines are decoded
as UTF-8 with `surrogateescape` (a BOM at the start dropped), so a line that is not
UTF-8 is one bad line, as in a file, not an unreadable pipe. Only `\n` ends a line, as
in a file (a handle without a descriptor is set to read so, when it can be).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import os
import queue
import select
import threading
from collections.abc import Callable
from typing import IO, Any, Final

BUFFERED: Final = 4  # chunks read ahead of the consumer


class PipedLines:
    """The lines of `handle`, in chunks of at most `chunk`, read by a daemon thread.

    `handle` may be a callable that opens it: called by the thread, so an open that
    blocks (a named pipe waits for its writer) holds up neither the loop nor an exit.
    """

    def __init__(self, handle: IO[Any] | Callable[[], IO[Any]], chunk: int) -> None:
        self._handle = handle
        self._chunk = chunk
        self._queue: queue.Queue[list[Any] | BaseException] = queue.Queue(maxsize=BUFFERED)
        self._arrived = asyncio.Event()
        self._thread: threading.Thread | None = None
        # Whether the end was taken: a pipe is read once, and a later watch finds it ended.
        self._ended = False

    @property
    def started(self) -> bool:
        """True once its reading has begun (a stream has read from it)."""
        return self._thread is not None or self._ended

    def ready(self) -> bool:
        """True when a chunk (or the end, or an error) is there to take without waiting."""
        if self._ended:
            return True
        self._start()
        return not self._queue.empty()

    async def take(self) -> list[Any]:
        """The next chunk: at least one line, or [] at the end (and ever after). Raises the
        read's error."""
        if self._ended:
            return []
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
            self._ended = not item
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
        given = self._handle
        if not callable(given):
            self._read_lines(loop, given)
            return
        try:
            opened: IO[Any] = given()
        except Exception as exc:  # handed to the consumer, which raises it
            self._hand_over(loop, exc)
            return
        with opened:  # ours: closed at its end
            self._read_lines(loop, opened)

    def _read_lines(self, loop: asyncio.AbstractEventLoop, handle: IO[Any]) -> None:
        fd = _descriptor(handle)
        lines_of = _FdLines(fd) if fd is not None else None
        if lines_of is None:
            _end_lines_at_newline(handle)
        while True:
            try:
                if lines_of is not None:
                    lines: list[Any] = lines_of.available(self._chunk)
                else:
                    lines = _available(handle, self._chunk)
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


class _FdLines:
    """The lines of a descriptor, read with `os.read` (no Python lock held while it waits)."""

    READ: Final = 65536

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._ended = False
        self._first = True

    def available(self, most: int) -> list[str]:
        """One line (waiting for it), then the lines there without waiting, up to `most`."""
        while b"\n" not in self._buffer and not self._ended:
            self._fill()
        lines = self._complete(most)
        while len(lines) < most and not self._ended and _fd_readable_now(self._fd):
            self._fill()
            lines.extend(self._complete(most - len(lines)))
        if not lines and self._ended and self._buffer:
            lines, self._buffer = [self._decode(self._buffer)], b""  # a last line without \n
        return lines

    def _fill(self) -> None:
        data = os.read(self._fd, self.READ)
        if data:
            self._buffer += data
        else:
            self._ended = True

    def _complete(self, most: int) -> list[str]:
        out: list[str] = []
        while len(out) < most:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            out.append(self._decode(self._buffer[: cut + 1]))
            self._buffer = self._buffer[cut + 1 :]
        return out

    def _decode(self, raw: bytes) -> str:
        if self._first:
            self._first = False
            raw = raw.removeprefix(codecs.BOM_UTF8)
        return raw.decode("utf-8", "surrogateescape")


def _descriptor(handle: IO[Any]) -> int | None:
    """The handle's descriptor, when it has one (nothing reads through the handle itself)."""
    try:
        fd = handle.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return fd


def _end_lines_at_newline(handle: IO[Any]) -> None:
    """Have a text handle's `readline` end a line at `\n` only, untranslated (a
    TextIOWrapper reads universal newlines by default: a lone `\r` would end one too).

    Possible only before its first read; a handle that cannot (an `io.StringIO`, which
    ends lines at `\n` unless made otherwise) is read as it is.
    """
    reconfigure = getattr(handle, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(io.UnsupportedOperation, ValueError, TypeError):
            reconfigure(newline="\n")


def _fd_readable_now(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _available(handle: IO[Any], most: int) -> list[Any]:
    """Up to `most` lines of a handle with no descriptor (in memory: a read never waits)."""
    lines: list[Any] = []
    while len(lines) < most and (line := handle.readline()):
        lines.append(line)
    return lines
