"""Change events from a file: MongoDB Extended JSON (canonical or relaxed), one change per line.

`-` reads standard input. Blank lines are ignored. A malformed line stops the
stream with `SourceError("line N: ...")`, but only after every valid line
before it has been returned: nothing before it is lost, nothing after it is read.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from bson import Timestamp, json_util

from eventstore.codec import EXTJSON_OPTIONS
from eventstore.model import ChangeBatch, ResumePoint
from eventstore.ports import ChangeSource, ChangeStream, HistoryLost, SourceError

DATABASE_OPS: Final = frozenset({"dropDatabase", "invalidate"})
# Lines read per trip to the worker thread (a file is read off the event loop).
READ_CHUNK: Final = 512


class NdjsonChangeSource:
    """A finite change source reading newline-delimited Extended JSON change events."""

    def __init__(
        self,
        path_or_dash: str | Path,
        *,
        collections: Iterable[str],
        batch_size: int = 1000,
        stdin: IO[Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = str(path_or_dash)
        self.collections = frozenset(collections)
        self.batch_size = batch_size
        self._stdin = stdin

    @property
    def can_snapshot(self) -> bool:
        """False: a file holds changes, not the current documents."""
        return False

    @property
    def finite(self) -> bool:
        """True: the stream ends at the end of the file."""
        return True

    async def cluster_time(self) -> Timestamp:
        """Not available: raises SourceError."""
        raise SourceError(f"{self._name}: a file of change events cannot be snapshotted")

    async def scan(
        self, collection: str, batch_size: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Not available: raises SourceError."""
        raise SourceError(f"{self._name}: a file of change events cannot be snapshotted")
        yield []  # pragma: no cover  (makes this an async generator, as the port expects)

    @property
    def _name(self) -> str:
        return "standard input" if self.path == "-" else self.path

    def watch(self, resume: ResumePoint | None) -> AbstractAsyncContextManager[ChangeStream]:
        """Read the changes after the resume point (None: from the first line)."""
        return self._open(resume)

    @asynccontextmanager
    async def _open(self, resume: ResumePoint | None) -> AsyncIterator[ChangeStream]:
        if self.path == "-":
            yield NdjsonChangeStream(self, self._stdin or sys.stdin, resume)
            return
        try:
            handle = await asyncio.to_thread(open, self.path, encoding="utf-8-sig")
        except FileNotFoundError:
            raise SourceError(f"change file not found: {self.path}") from None
        except OSError as exc:
            raise SourceError(f"cannot read change file {self.path}: {exc.strerror}") from None
        try:
            yield NdjsonChangeStream(self, handle, resume)
        finally:
            handle.close()


class NdjsonChangeStream:
    """The changes of one file, in batches, after an optional resume point."""

    def __init__(
        self, source: NdjsonChangeSource, handle: IO[Any], resume: ResumePoint | None
    ) -> None:
        self._source = source
        self._handle = handle
        self._line_no = 0
        self._eof = False
        self._error: Exception | None = None
        self._token: dict[str, Any] | None = None
        self._cluster_time: Timestamp | None = None
        self._pending: deque[tuple[int, str]] = deque()
        self._skip_to: str | None = None
        self._start_at: Timestamp | None = None
        if resume is not None:
            token = resume.resume_after or resume.start_after
            if token is not None:
                data = token.get("_data")
                if not isinstance(data, str):
                    self._error = SourceError(f"not a resume token: {token!r}")
                self._skip_to = data if isinstance(data, str) else None
            self._start_at = resume.start_at_operation_time

    async def next_batch(self) -> ChangeBatch | None:
        """Up to batch_size matching changes; None at the end of the file."""
        if self._error is not None:
            raise self._error
        changes: list[dict[str, Any]] = []
        examined = False
        while len(changes) < self._source.batch_size:
            line = await self._next_line()
            if line is None:
                if self._skip_to is not None:
                    self._error = HistoryLost(
                        f"{self._source._name}: resume token {self._skip_to} is not in the file"
                    )
                    raise self._error
                break
            number, text = line
            try:
                change = _parse(number, text)
            except SourceError as exc:
                self._error = exc
                if changes or examined:
                    break  # deliver what came before the bad line first
                raise
            if self._skipping(change):
                continue
            examined = True
            self._token = change["_id"]
            if isinstance(change.get("clusterTime"), Timestamp):
                self._cluster_time = change["clusterTime"]
            if self._matches(change):
                changes.append(change)
        if not changes and not examined:
            return None
        return ChangeBatch(
            changes=changes, resume_token=self._token, cluster_time=self._cluster_time
        )

    def _skipping(self, change: dict[str, Any]) -> bool:
        """True while the change is at or before the resume point."""
        if self._skip_to is not None:
            if change["_id"]["_data"] == self._skip_to:
                self._skip_to = None
                self._token = change["_id"]
            return True
        if self._start_at is not None:
            at = change.get("clusterTime")
            if isinstance(at, Timestamp) and at < self._start_at:
                return True
            self._start_at = None
        return False

    def _matches(self, change: dict[str, Any]) -> bool:
        # As the change stream's $match: ns.coll among the collections, or a database-level event.
        if change["operationType"] in DATABASE_OPS:
            return True
        ns = change.get("ns")
        return isinstance(ns, dict) and ns.get("coll") in self._source.collections

    async def _next_line(self) -> tuple[int, str] | None:
        """The next non-blank line with its 1-based number, or None at the end."""
        while True:
            if not self._pending:
                if self._eof:
                    return None
                await self._fill()
                continue
            number, text = self._pending.popleft()
            if text.strip():
                return number, text

    async def _fill(self) -> None:
        lines = await asyncio.to_thread(_read_lines, self._handle, READ_CHUNK)
        if len(lines) < READ_CHUNK:
            self._eof = True
        for raw in lines:
            self._line_no += 1
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            self._pending.append((self._line_no, text))


def _read_lines(handle: IO[Any], count: int) -> list[Any]:
    lines = []
    for _ in range(count):
        line = handle.readline()
        if not line:
            break
        lines.append(line)
    return lines


def _parse(number: int, text: str) -> dict[str, Any]:
    """One change from one line; SourceError("line N: ...") when it is not one."""
    try:
        change = json_util.loads(text, json_options=EXTJSON_OPTIONS)
    except Exception as exc:  # json and bson raise several types for bad input
        raise SourceError(f"line {number}: not valid Extended JSON ({exc})") from None
    if not isinstance(change, dict):
        raise SourceError(f"line {number}: not a JSON object")
    token = change.get("_id")
    if not isinstance(token, dict) or not isinstance(token.get("_data"), str):
        raise SourceError(f"line {number}: no resume token (_id._data)")
    if not isinstance(change.get("operationType"), str):
        raise SourceError(f"line {number}: no operationType")
    return change


if TYPE_CHECKING:  # the type checker proves the port is implemented

    def _implements_port(source: NdjsonChangeSource) -> ChangeSource:
        return source


__all__ = ["NdjsonChangeSource", "NdjsonChangeStream"]
