"""Over a quiet pipe, and over a file that has ended, capture still does its idle work.

An outside tester found two gaps between README and `eventstore run` over ndjson. Over
standard input (or a named pipe) whose writer keeps it open but sends nothing more, the
capture loop waited in the pipe's read: the newest events stayed out of every checkpoint,
and erasure requests stayed `queued`, until another line came. Over a file that had
ended, capture carried out erasure requests but never made the idle checkpoint, so
`erased` records made back to back stayed out of every checkpoint until a later erasure.

Now, while no batch comes, capture takes an idle turn every `_turn_wait()` seconds (as a
live source's empty batches give it): erasure requests are done, the tree is checkpointed
once the interval since the last checkpoint has passed, and the pending read goes on
(no line lost or read twice). A stopped linger checkpoints what it stored at once.

Time: the checkpointer's clock is fake and moves only when a test says; the idle turns
wait for real, MIN_IDLE_POLL apart, and every wait here is bounded by a ratio of it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.erasure import request_erasure
from eventstore.history import History
from eventstore.ingester import MIN_IDLE_POLL, Ingester
from eventstore.memory.store import MemoryStore
from eventstore.model import ERASED, Event
from eventstore.settings import Settings
from eventstore.sources.ndjson import NdjsonChangeSource
from eventstore.tree import LogTree
from tests.helpers import fixed_salt
from tests.integration.ingest_helpers import all_events, assert_log_intact, settings
from tests.integration.test_ingester_bad_input import WHEN, line

INTERVAL = 10.0  # CHECKPOINT_INTERVAL: far beyond any real wait here, moved by the fake clock
# Long enough for dozens of idle turns: what they do is done well within it.
BOUND = 60 * MIN_IDLE_POLL


async def eventually(check: Callable[[], Any], what: str) -> None:
    """Poll `check` (sync or async) until true, for at most BOUND seconds."""
    for _ in range(int(BOUND / 0.005)):
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not within {BOUND:g} s: {what}")


async def checkpointed(store: MemoryStore) -> list[int]:
    """The sizes of every stored checkpoint, smallest first."""
    return [
        size
        for size in range(1, await store.merkle.size() + 1)
        if await store.merkle.checkpoint(size) is not None
    ]


def capture(store: MemoryStore, source: NdjsonChangeSource, clock: FakeClock) -> Ingester:
    s = settings(source=f"ndjson:{source.path}", lease_seconds=600.0)
    ing = Ingester(store=store, source=source, settings=s, clock=clock, salts=fixed_salt)
    ing.checkpointer = Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        interval=INTERVAL,
    )
    ing.idle_poll = MIN_IDLE_POLL
    return ing


async def erase(store: MemoryStore, key: str, clock: FakeClock) -> str:
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    outcome = await request_erasure(
        store, history, stream="orders", key=key, reason="art. 17", actor="dpo", now=clock.now()
    )
    return outcome.request.id


def done(store: MemoryStore, request: str) -> Callable[[], Any]:
    async def check() -> bool:
        got = await store.erasures.get(request)
        return got is not None and got.state == "done"

    return check


def changes_of(events: list[Event]) -> list[int]:
    """The change (its line's n) each captured event records, in log order (an event's id
    is its change's resume token, `token(n)`'s `_data`)."""
    return [int(e.id[2:], 16) for e in events if e.type != ERASED]


@contextmanager
def stdin_pipe() -> Iterator[tuple[NdjsonChangeSource, Callable[[], int]]]:
    """Standard input: its reader, and its write end (open from the start)."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, encoding="utf-8") as reader:
        yield NdjsonChangeSource("-", collections=["orders"], stdin=reader), lambda: write_fd


@contextmanager
def named_pipe(tmp_path: Path) -> Iterator[tuple[NdjsonChangeSource, Callable[[], int]]]:
    """A named pipe, and how its write end is opened: that waits until the capture's reader
    thread opens it for reading (as a writer of a FIFO does)."""
    fifo = tmp_path / "changes.fifo"
    os.mkfifo(fifo)
    try:
        yield NdjsonChangeSource(fifo, collections=["orders"]), lambda: os.open(fifo, os.O_WRONLY)
    finally:  # a writer still waiting (the capture never read) meets this reader and ends
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))


@asynccontextmanager
async def quiet_pipe(
    kind: str, tmp_path: Path, *, until_idle: bool
) -> AsyncIterator[tuple[MemoryStore, Ingester, FakeClock, Callable[[int], None]]]:
    """A capture running over a pipe that stays open; `send(n)` writes change n's line."""
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    clock = FakeClock(WHEN, advance_on_sleep=False)
    store = MemoryStore()
    with stdin_pipe() if kind == "stdin" else named_pipe(tmp_path) as (source, open_writer):
        ing = capture(store, source, clock)
        stop = asyncio.Event()
        # `until_idle`: the service's first (catching up) run, which a pipe kept open never
        # ends; without: the following run.
        running = asyncio.ensure_future(ing.run(until_idle=until_idle, stop=stop))
        try:
            write_fd = await asyncio.wait_for(asyncio.to_thread(open_writer), BOUND)
            with os.fdopen(write_fd, "w", encoding="utf-8") as writer:

                def send(n: int) -> None:
                    writer.write(line(n) + "\n")
                    writer.flush()

                yield store, ing, clock, send
                # The run stops with the pipe still open: its reader is blocked on it.
                stop.set()
                await asyncio.wait_for(running, BOUND)
        finally:
            stop.set()
            await asyncio.wait_for(running, BOUND)
    assert running.result().recorded == len(await all_events(store))


PIPES = pytest.mark.parametrize(
    ("kind", "until_idle"),
    [("stdin", True), ("stdin", False), ("fifo", True)],
    ids=["stdin-catching-up", "stdin-following", "fifo-catching-up"],
)


@PIPES
async def test_a_quiet_pipe_s_newest_events_are_checkpointed_once_the_interval_passes(
    tmp_path: Path, kind: str, until_idle: bool
) -> None:
    async with quiet_pipe(kind, tmp_path, until_idle=until_idle) as (store, ing, clock, send):
        send(1)
        await eventually(lambda: ing.stats.recorded == 1, "line 1 recorded")
        for n in (2, 3):
            send(n)
        await eventually(lambda: ing.stats.recorded == 3, "lines 2 and 3 recorded")
        # The first batch was checkpointed; 2 and 3 came within the interval: not yet.
        assert await checkpointed(store) == [1]
        clock.advance(INTERVAL)  # the writer stays quiet, the pipe open
        sizes = lambda: _equal(checkpointed(store), [1, 3])  # noqa: E731
        await eventually(sizes, "events 2 and 3 in a checkpoint")
        # Lines after idle turns come whole, once each, in order.
        for n in (4, 5):
            send(n)
        await eventually(lambda: ing.stats.recorded == 5, "lines 4 and 5 recorded")
    events = await assert_log_intact(store)
    assert changes_of(events) == [1, 2, 3, 4, 5]
    assert [e.entity_id for e in events] == [1, 1, 3, 3, 5]


@PIPES
async def test_an_erasure_asked_while_a_pipe_is_quiet_is_carried_out_and_checkpointed(
    tmp_path: Path, kind: str, until_idle: bool
) -> None:
    async with quiet_pipe(kind, tmp_path, until_idle=until_idle) as (store, ing, clock, send):
        for n in (1, 2, 3):
            send(n)
        await eventually(lambda: ing.stats.recorded == 3, "lines 1-3 recorded")
        request = await erase(store, "1", clock)
        await eventually(done(store, request), "the request done while the pipe is quiet")
        clock.advance(INTERVAL)
        await eventually(
            lambda: _ends_with(checkpointed(store), 4), "the `erased` record in a checkpoint"
        )
        send(5)  # the read went on meanwhile: the next line is line 5, recorded after it
        await eventually(lambda: ing.stats.recorded == 5, "line 5 recorded")
    events = await assert_log_intact(store)
    assert [(e.seq, e.type) for e in events if e.type == ERASED] == [(4, ERASED)]
    assert changes_of(events) == [1, 2, 3, 5]
    erased = [e for e in events if e.entity_id == 1]
    assert [e.erased_by for e in erased] == [4, 4]


async def test_erasures_back_to_back_after_a_file_ended_are_checkpointed_and_so_at_a_stop(
    tmp_path: Path,
) -> None:
    changes = tmp_path / "changes.ndjson"
    changes.write_text("".join(line(n) + "\n" for n in range(1, 7)), encoding="utf-8")
    clock = FakeClock(WHEN, advance_on_sleep=False)
    store = MemoryStore()
    ing = capture(store, NdjsonChangeSource(changes, collections=["orders"]), clock)
    stop = asyncio.Event()
    running = asyncio.ensure_future(ing.run(stop=stop, linger=True))
    try:
        await eventually(lambda: ing.stats.caught_up, "the file read to its end")
        assert await checkpointed(store) == [6]
        clock.advance(INTERVAL)
        # Two requests back to back: the first `erased` record is checkpointed with its
        # batch (the interval had passed), the second within the interval is not, yet.
        first, second = await erase(store, "1", clock), await erase(store, "3", clock)
        await eventually(done(store, first), "the first request done")
        await eventually(done(store, second), "the second request done")
        assert await checkpointed(store) == [6, 7]
        clock.advance(INTERVAL)  # nothing more arrives: the idle checkpoint covers it
        sizes = lambda: _equal(checkpointed(store), [6, 7, 8])  # noqa: E731
        await eventually(sizes, "the second `erased` record in a checkpoint")
        # One more, then a stop within the interval: checkpointed as the run ends.
        third = await erase(store, "5", clock)
        await eventually(done(store, third), "the third request done")
        assert await checkpointed(store) == [6, 7, 8]
    finally:
        stop.set()
        await asyncio.wait_for(running, BOUND)
    assert await checkpointed(store) == [6, 7, 8, 9]
    events = await assert_log_intact(store)
    assert [e.seq for e in events if e.type == ERASED] == [7, 8, 9]
    assert changes_of(events) == [1, 2, 3, 4, 5, 6]


async def _equal(got: Any, want: list[int]) -> bool:
    return bool(await got == want)


async def _ends_with(got: Any, size: int) -> bool:
    sizes = await got
    return bool(sizes and sizes[-1] == size)
