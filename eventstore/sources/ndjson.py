"""Change events from a file: MongoDB Extended JSON (canonical or relaxed), one change per line.

`-` reads standard input. Only `\n` ends a line, as for `sed`, `wc -l` and editors (a
`\r` right before it is part of the ending; a `\r` elsewhere is part of the line), so
`line N` is what `sed -n Np` prints. Blank lines are ignored. Every change comes with
its origin (`line N` and the SHA-256 of the line's bytes without its line ending); a
line that is not a JSON object (or not UTF-8), or holds what no BSON document holds,
is passed on as unreadable, in its place, and the ingester applies
EVENTSTORE_BAD_INPUT to it as to any change it cannot interpret. Lines of a
collection not captured, or of another database than the one captured, are left
out, as a change stream's `$match` leaves them out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec
from bson import Timestamp, json_util

from eventstore.badinput import (
    DATA_OPS,
    DEEPER_THAN_MONGODB,
    MAX_CHANGE_DEPTH,
    collection_of,
    deeper_than,
    rename_target,
    sha256_hex,
    token_of,
)
from eventstore.codec import EXTJSON_OPTIONS, unheld_wall_time
from eventstore.json_input import DuplicateKey, unique_object
from eventstore.model import ChangeBatch, Origin, ResumePoint
from eventstore.ports import ChangeSource, ChangeStream, HistoryLost, SourceError
from eventstore.sources.piped_lines import PipedLines
from eventstore.split_events import Fragments, fragment_of

log = logging.getLogger(__name__)

DATABASE_OPS: Final = frozenset({"dropDatabase", "invalidate"})


class _NotYet:
    """What `_next_line` answers, not waiting, when a pipe has no line there yet."""


_NOT_YET: Final = _NotYet()
DUPLICATE_KEY: Final = "not valid JSON for a change (an object names one key twice)"
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
        source_db: str | None = None,
    ) -> None:
        """`source_db`: the database captured (SOURCE_DB); a line of another is left out, as
        a change stream on one database never delivers another's changes (None: any)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = str(path_or_dash)
        self.collections = frozenset(collections)
        self.source_db = source_db
        self.batch_size = batch_size
        self._stdin = stdin
        self._piped: PipedLines | None = None
        # Whether `path` is a named pipe (known once it is first watched).
        self._fifo = False

    @property
    def name(self) -> str:
        """`ndjson`: a file of change events."""
        return "ndjson"

    def piped(self, handle: IO[Any] | Callable[[], IO[Any]]) -> PipedLines:
        """Standard input's reader: one for the source, whatever stream reads it (a second
        thread reading the same pipe would take lines from the first)."""
        if self._piped is None:
            self._piped = PipedLines(handle, READ_CHUNK)
        return self._piped

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

    @property
    def is_pipe(self) -> bool:
        """True for standard input and a named pipe: read once, as its lines arrive."""
        return self.path == "-" or self._fifo

    @asynccontextmanager
    async def _open(self, resume: ResumePoint | None) -> AsyncIterator[ChangeStream]:
        if self.path == "-":
            yield NdjsonChangeStream(self, self._stdin or sys.stdin, resume)
            return
        if not self._fifo:
            try:
                mode = (await asyncio.to_thread(os.stat, self.path)).st_mode
            except OSError:
                mode = 0  # said by the open below
            self._fifo = stat.S_ISFIFO(mode)
        if self._fifo:
            # A named pipe is read as standard input is: once, by one daemon thread that
            # opens it (an open waits for a writer). Opened again, it blocked an executor
            # thread for good (no exit), and a second reader took lines from the first.
            yield NdjsonChangeStream(self, _FifoOpener(self.path), resume)
            return
        try:
            # surrogateescape: a line that is not UTF-8 is one bad line, not an unreadable file;
            # newline="\n": only `\n` ends a line (universal newlines end one at a lone `\r`
            # too, and `line N` would not be what `sed -n Np` prints), kept untranslated.
            handle = await asyncio.to_thread(
                open, self.path, encoding="utf-8-sig", errors="surrogateescape", newline="\n"
            )
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
        self,
        source: NdjsonChangeSource,
        handle: IO[Any] | Callable[[], IO[Any]],
        resume: ResumePoint | None,
    ) -> None:
        self._source = source
        self._handle = handle
        self._line_no = 0
        self._eof = False
        self._error: Exception | None = None
        self._token: dict[str, Any] | None = None
        self._cluster_time: Timestamp | None = None
        self._pending: deque[tuple[int, str]] = deque()
        # Standard input or a named pipe: its lines as they arrive, read by the source's thread.
        self._piped = source.piped(handle) if source.is_pipe else None
        # Fragments of a split event, each with its origin and line, until its last one.
        self._fragments: Fragments[tuple[Origin, str]] = Fragments()
        self._skip_to: str | None = None
        self._start_at: Timestamp | None = None
        # Other databases whose lines were left out, each said once at INFO (at most a few).
        self._other_dbs: set[str] = set()
        if resume is not None:
            token = resume.resume_after or resume.start_after
            if token is not None:
                data = token.get("_data")
                if not isinstance(data, str):
                    self._error = SourceError(f"not a resume token: {token!r}")
                self._skip_to = data if isinstance(data, str) else None
            self._start_at = resume.start_at_operation_time
        if self._piped is not None and self._piped.started:
            # The same pipe watched again (capture goes on after its end): its next line
            # follows the last one read, so there is nothing to skip to. Looking for the
            # resume token among lines read before read as history lost, and capture failed.
            self._skip_to = self._start_at = None

    async def next_batch(self) -> ChangeBatch | None:
        """Up to batch_size matching changes (unreadable lines included); None at the end."""
        if self._error is not None:
            raise self._error
        changes: list[dict[str, Any]] = []
        origins: list[Origin] = []
        examined = False
        filtered = 0
        while len(changes) < self._source.batch_size:
            # A pipe's batch is what has arrived: it waits for a line only while it has none.
            line = await self._next_line(wait=not changes)
            if isinstance(line, _NotYet):
                break
            if line is None:
                if self._skip_to is not None:
                    self._error = HistoryLost(
                        f"{self._source._name}: resume token {self._skip_to} is not in the file"
                    )
                    raise self._error
                # An event whose last fragments are not in the file: each fragment is bad input.
                complete = self._fragments.flush()
                if not complete:
                    break
            else:
                number, text = line
                change, origin = _parse(number, text)
                if self._skipping(change):
                    continue
                examined = True
                complete = self._fragments.add(change, (origin, text))
            for whole, parts in complete:
                # While an event's fragments arrive the position stays before its first one.
                token = token_of(whole)
                if token is not None:
                    self._token = token
                if isinstance(whole.get("clusterTime"), Timestamp):
                    self._cluster_time = whole["clusterTime"]
                origin = _origin_of(parts)
                if origin.unreadable is None and not self._matches(whole, origin):
                    filtered += 1
                    continue
                changes.append(whole)
                origins.append(origin)
            if line is None:
                break
        if not changes and not examined:
            return None
        return ChangeBatch(
            changes=changes,
            resume_token=self._token,
            cluster_time=self._cluster_time,
            origins=origins,
            filtered=filtered,
        )

    def _skipping(self, change: dict[str, Any]) -> bool:
        """True while the line is at or before the resume point."""
        if self._skip_to is not None:
            token = token_of(change)
            if token is not None and token["_data"] == self._skip_to:
                self._skip_to = None
                self._token = token
            return True
        if self._start_at is not None:
            at = change.get("clusterTime")
            if isinstance(at, Timestamp) and at < self._start_at:
                return True
            split = fragment_of(change)
            if split is not None and split[0] > 1:
                return True  # its event's first fragment (with the time) was before the point
            self._start_at = None
        return False

    def _matches(self, change: dict[str, Any], origin: Origin) -> bool:
        """As the change stream's $match: of the database captured (when the source names
        it), and ns.coll (or a rename's to.coll) among the collections, or a database-level
        event. A change left out is logged (DEBUG), with why.

        A change without a collection passes when the ingester must judge it: no
        resume token, no operation type, or a data change without its `ns.coll`. So
        does one without `ns.db`: it cannot be told to be another database's.
        """
        db = self._source.source_db
        if db is not None:
            other = _database_of(change)
            if other is not None and other != db:
                self._left_out(origin, "of database %r, not SOURCE_DB %r", other, db)
                if len(self._other_dbs) < _OTHER_DBS_SAID and other not in self._other_dbs:
                    self._other_dbs.add(other)
                    log.info(
                        "%s: changes of database %r are left out (filtered) from %s on:"
                        " SOURCE_DB is %r",
                        self._source._name,
                        other,
                        origin.position,
                        db,
                    )
                return False
        op = change.get("operationType")
        if op in DATABASE_OPS:
            return True
        coll = collection_of(change)
        if coll is not None:
            collections = self._source.collections
            if coll in collections or rename_target(change) in collections:
                return True
            self._left_out(origin, "of collection %r, not one of COLLECTIONS", coll)
            return False
        if token_of(change) is None or not isinstance(op, str) or op in DATA_OPS:
            return True
        self._left_out(origin, "a %r of no collection", op)
        return False

    def _left_out(self, origin: Origin, why: str, *args: object) -> None:
        """Log (DEBUG) a line left out: `why`, a format of `args` (names, quoted as repr)."""
        log.debug("%s: %s: left out (filtered): " + why, self._source._name, origin.position, *args)

    async def _next_line(self, *, wait: bool = True) -> tuple[int, str] | _NotYet | None:
        """The next non-blank line with its 1-based number, or None at the end.

        Without `wait`, `_NOT_YET` when a pipe has no line there yet.
        """
        while True:
            if not self._pending:
                if self._eof:
                    return None
                if not wait and self._piped is not None and not self._piped.ready():
                    return _NOT_YET
                await self._fill()
                continue
            number, text = self._pending.popleft()
            if text.strip(_JSON_WHITESPACE):  # a line of other whitespace (U+00A0) is no JSON
                return number, text

    async def _fill(self) -> None:
        if self._piped is not None:
            lines = await self._piped.take()
            self._eof = not lines
        else:
            handle = self._handle
            assert not callable(handle)  # a file's handle (a pipe's opener is piped)
            lines = await asyncio.to_thread(_read_lines, handle, READ_CHUNK)
            self._eof = len(lines) < READ_CHUNK
        for raw in lines:
            self._line_no += 1
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            self._pending.append((self._line_no, text))


class _FifoOpener:
    """Opens a named pipe for reading when called (by the reading thread)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> IO[Any]:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot read change file {self.path}: {exc.strerror}") from None


# Other databases named at INFO as their lines are left out (a whole-cluster dump holds a
# few; a file naming thousands is said at DEBUG only, line by line).
_OTHER_DBS_SAID: Final = 20


def _database_of(change: dict[str, Any]) -> str | None:
    """`ns.db` when it is a string."""
    ns = change.get("ns")
    db = ns.get("db") if isinstance(ns, dict) else None
    return db if isinstance(db, str) else None


def _without_ending(text: str) -> str:
    """A line without its ending: `\n` or `\r\n`, or a `\r` ending a last line that has no
    `\n` (an ending cut short, as Go's bufio.ScanLines reads it). Any other `\r` is the line's."""
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def _read_lines(handle: IO[Any], count: int) -> list[Any]:
    lines = []
    for _ in range(count):
        line = handle.readline()
        if not line:
            break
        lines.append(line)
    return lines


def _origin_of(parts: list[tuple[Origin, str]]) -> Origin:
    """A change's origin: its line's, or for a split event put together, its lines'.

    `lines 10-12`, hashed as the lines stand in the file without the last line ending
    (`sed -n 10,12p | head -c -1 | sha256sum` for `\n` line endings, `head -c -2` for `\r\n`).
    """
    if len(parts) == 1:
        return parts[0][0]
    first, last = parts[0][0].position, parts[-1][0].position
    lines = [text for _, text in parts]
    lines[-1] = _without_ending(lines[-1])
    raw = "".join(lines).encode("utf-8", "surrogateescape")
    span = f"lines {first.removeprefix('line ')}-{last.removeprefix('line ')}"
    return Origin(position=span, sha256=sha256_hex(raw))


class NotBson(ValueError):
    """A value of a line that no BSON document holds, so no change MongoDB sent (the reason)."""


_INT64_DIGITS: Final = 19  # no int64 has more digits (and `int` need not read a longer one)


def _int64(text: str) -> int:
    """A JSON integer, within the 64 bits BSON's largest integer holds (`parse_int`)."""
    if len(text.lstrip("-")) <= _INT64_DIGITS:
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    raise NotBson("an integer beyond 64 bits, which MongoDB does not hold")


_INF: Final = float("inf")
BEYOND_DOUBLE: Final = "a number beyond a double's range (it would read as Infinity)"
BELOW_DOUBLE: Final = "a number not zero but too small for a double (it would read as 0)"


def _double(text: str) -> float:
    """A JSON number with a fraction or exponent as a double (`parse_float`), NotBson when
    the double is not that number: beyond its range (`1e400`, not Infinity) or too small
    for it (`1e-400`, not 0). Only an infinite or zero result is looked at again."""
    value = float(text)
    if value == 0.0 or value == _INF or value == -_INF:
        _check_double(text, value)
    return value


def _check_double(text: str, value: float) -> None:
    """NotBson when `value`, infinite or zero, is not the number `text` writes."""
    if value != 0.0:
        raise NotBson(BEYOND_DOUBLE)
    # A zero written so has only zeros in its digits before the exponent (`-0.00e5`).
    mantissa = text.lower().partition("e")[0]
    if mantissa.strip("+-.0 _\t\n\r"):
        raise NotBson(BELOW_DOUBLE)


def _no_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON (`parse_constant`); Extended JSON
    writes them `{"$numberDouble": "NaN"}`."""
    raise NotBson(f'{name} is not JSON (Extended JSON writes {{"$numberDouble": "{name}"}})')


def _change_object(pairs: list[tuple[str, Any]]) -> Any:
    """One object of a line, as `json_util.loads` reads it; DuplicateKey for a key given twice
    (which of the two a change meant cannot be told); a key with a NUL byte, which BSON
    cannot hold, is NotBson."""
    obj = unique_object(pairs)
    for key in obj:
        if "\x00" in key:
            raise NotBson("a key with a NUL character, which BSON does not hold")
    value = json_util.object_hook(obj, EXTJSON_OPTIONS)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # {"$numberLong": "1e20"}
        raise NotBson("an integer beyond 64 bits, which MongoDB does not hold")
    if isinstance(value, float) and (value == 0.0 or value == _INF or value == -_INF):
        # {"$numberDouble": "1e400"}, where an infinity is written `Infinity`
        written = obj.get("$numberDouble")
        if isinstance(written, str) and written.strip().lstrip("+-").lower() not in _INFINITY:
            _check_double(written, value)
    return value


# What JSON counts as whitespace (RFC 8259): a line of only these is blank.
_JSON_WHITESPACE: Final = " \t\r\n"
_INFINITY: Final = ("inf", "infinity")  # as `float` reads them, whatever their case


def _parse(number: int, text: str) -> tuple[dict[str, Any], Origin]:
    """One line as a change and its origin; an unreadable line is `{}` with the reason."""
    line = _without_ending(text)
    raw = line.encode("utf-8", "surrogateescape")
    origin = Origin(position=f"line {number}", sha256=sha256_hex(raw))
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return {}, msgspec.structs.replace(origin, unreadable="not valid UTF-8")
    try:
        change = json.loads(
            line,
            object_pairs_hook=_change_object,
            parse_float=_double,
            parse_int=_int64,
            parse_constant=_no_constant,
        )
    except DuplicateKey:  # which one is not said: key names are input too
        return {}, msgspec.structs.replace(origin, unreadable=DUPLICATE_KEY)
    except NotBson as exc:  # it would fail the event's hash (BSON) after the lines before it
        return {}, msgspec.structs.replace(origin, unreadable=f"not a change: {exc}")
    except json.JSONDecodeError as exc:  # where, never what: the input is not repeated
        where = f"line 1 column {exc.colno}" if exc.lineno == 1 else f"at char {exc.pos}"
        reason = f"not valid JSON ({exc.msg}, {where})"
        return {}, msgspec.structs.replace(origin, unreadable=reason)
    except RecursionError:  # the decoder's own limit, far past MongoDB's
        return {}, msgspec.structs.replace(origin, unreadable=DEEPER_THAN_MONGODB)
    except Exception:  # bson raises several types for malformed Extended JSON values
        return {}, msgspec.structs.replace(origin, unreadable="not valid Extended JSON")
    if not isinstance(change, dict):
        return {}, msgspec.structs.replace(origin, unreadable="not a JSON object")
    # A line with no more brackets than the limit cannot nest deeper (most lines: no walk).
    if line.count("{") + line.count("[") > MAX_CHANGE_DEPTH and deeper_than(
        change, MAX_CHANGE_DEPTH
    ):
        return {}, msgspec.structs.replace(origin, unreadable=DEEPER_THAN_MONGODB)
    # A date beyond years 1-9999 is a DatetimeMS (EXTJSON_OPTIONS), kept exactly; as the
    # wallTime, which becomes the event's occurred_at, it gives way to the clusterTime.
    unheld_wall_time(change, f"ndjson: {origin.position}")
    return change, origin


if TYPE_CHECKING:  # the type checker proves the port is implemented

    def _implements_port(source: NdjsonChangeSource) -> ChangeSource:
        return source


__all__ = ["NdjsonChangeSource", "NdjsonChangeStream"]
