"""Waking live tails on appends: one change stream on `events` per event log, shared.

However many clients tail the log, one watcher task holds one change stream on
`events` (started on the first wait, stopped when the store closes) and keeps the
newest `seq` it has seen; waiters sleep on an asyncio condition it notifies. The
stream is opened before the head is read, so an insert in between is not missed:
from then on `known` is never behind what is committed, only late by the stream's
delivery. Where the server has no change streams the waiters poll (the caller's
`wait_for_append` does), remembered for later waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pymongo.errors import OperationFailure

from eventstore.awaiting import cancel_within
from eventstore.driver_text import without_topology
from eventstore.mongo import compat
from eventstore.uri_secrets import scrub

log = logging.getLogger(__name__)

# How long one getMore of the shared stream waits on the server for a new insert.
WATCH_AWAIT_MS: Final = 1000
# How long `close` waits for the stream's own close (a killCursors the server answers).
CLOSE_SECONDS: Final = 1.0
# Change-stream `aggregate` errors meaning "not here": a standalone server (40573),
# a server that does not know the stage (40324), a user without the changeStream action (13).
NO_CHANGE_STREAM: Final = frozenset({13, 40324, 40573})
# Every insert, reduced to its seq: one stream serves waiters at any position.
PIPELINE: Final[tuple[dict[str, Any], ...]] = (
    {"$match": {"operationType": "insert"}},
    {"$project": {"fullDocument.seq": 1}},
)


class _Run:
    """One life of the watcher: its stream's task, what it has seen, and how it ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.changed = asyncio.Condition()
        # The newest seq known to exist; -1 until the head has been read after opening.
        self.known = -1
        self.over = False
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None


class AppendWatcher:
    """The shared change stream of one event log; `wait` answers one waiter."""

    def __init__(
        self,
        collection: Any,
        head_seq: Callable[[], Awaitable[int]],
        *,
        await_ms: int = WATCH_AWAIT_MS,
    ) -> None:
        self._coll = collection
        self._head_seq = head_seq
        self._await_ms = await_ms
        self._run: _Run | None = None
        self._closed = False
        # Whether `events` can be watched: None until tried, False once refused.
        self.supported: bool | None = None

    async def wait(self, after_seq: int, deadline: float) -> bool | None:
        """True once a seq past `after_seq` exists, False at the deadline (loop time).

        None when the stream cannot serve this wait (no change streams here, the
        stream ended, the log closed): the caller polls instead. An unexpected
        error of the stream is raised to every waiter; the next wait starts anew.
        """
        run = self._running()
        if run is None:
            return None
        async with run.changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await run.changed.wait_for(lambda: run.known > after_seq or run.over)
        if run.known > after_seq:
            return True
        if not run.over:
            return False
        if run.error is not None:
            raise run.error
        return None

    def _running(self) -> _Run | None:
        """The watcher's current life on this loop, started if none is (None: do not watch)."""
        if self._closed or self.supported is False:
            return None
        loop = asyncio.get_running_loop()
        run = self._run
        if run is None or run.over or run.loop is not loop:
            run = _Run(loop)
            run.task = loop.create_task(self._watch(run), name="events-append-watcher")
            self._run = run
        return run

    async def _watch(self, run: _Run) -> None:
        try:
            error = await self._follow(run)
        except asyncio.CancelledError:  # closed: waiters stop waiting on this run
            await self._end(run, None)
            raise
        if error is not None:
            said = without_topology(f"{type(error).__name__}: {error}")
            log.warning("the change stream waking live tails stopped: %s", scrub(said))
        await self._end(run, error)

    async def _follow(self, run: _Run) -> BaseException | None:
        """Open the stream, read the head, then note every insert; the error that ended it."""
        try:
            stream = await compat.watch(
                self._coll, list(PIPELINE), max_await_time_ms=self._await_ms
            )
        except NotImplementedError as exc:
            self._unsupported(str(exc))
            return None
        except OperationFailure as exc:
            if exc.code not in NO_CHANGE_STREAM:
                return exc
            self._unsupported(f"the server refused one (code {exc.code})")
            return None
        except Exception as exc:
            return exc
        self.supported = True
        try:
            async with stream:
                await self._seen(run, await self._head_seq())
                while stream.alive:
                    change = await stream.try_next()
                    if change is not None:
                        await self._seen(run, int(change["fullDocument"]["seq"]))
        except Exception as exc:
            return exc
        return None  # the stream ended (the collection was dropped or renamed): waiters poll

    def _unsupported(self, reason: str) -> None:
        self.supported = False
        log.info("waiting for appends by polling the head: no change stream on events (%s)", reason)

    @staticmethod
    async def _seen(run: _Run, seq: int) -> None:
        async with run.changed:
            if seq > run.known:
                run.known = seq
                run.changed.notify_all()

    @staticmethod
    async def _end(run: _Run, error: BaseException | None) -> None:
        async with run.changed:
            run.over = True
            run.error = error
            run.changed.notify_all()

    @property
    def watching(self) -> bool:
        """True while a watcher task is running."""
        run = self._run
        return run is not None and run.task is not None and not run.task.done()

    async def close(self) -> None:
        """Stop the watcher (its stream is closed); later waits poll.

        Bounded: the stream's close sends a killCursors, and a server that stopped
        answering would hold it for the whole reply timeout. After CLOSE_SECONDS the task
        is left cancelled (again), to end when its connection does.
        """
        self._closed = True
        run, self._run = self._run, None
        if run is None or run.task is None or run.task.done():
            return
        if run.loop is not asyncio.get_running_loop():
            run.loop.call_soon_threadsafe(run.task.cancel)
            return
        if await cancel_within([run.task], CLOSE_SECONDS):
            log.warning("closed the change stream waking live tails without the server's answer")
