"""A named pipe as `ndjson:PATH` is read as standard input is: once, as its lines arrive.

Opened again for each watch, it blocked an executor thread in `open` (a FIFO's open
waits for a writer), so `run` never exited after SIGTERM; and reopened while a writer
was mid-stream, the new reader could start inside a line (an outside tester saw
`line 288: not valid JSON` 113 KB into a 20,000-line stream).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from eventstore.model import ResumePoint
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.unit.test_ndjson_source import batches, change, keys, lines

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")

CHANGES = 3000


def writer(path: Path, text: str, pause_at: int) -> threading.Thread:
    """Writes `text` into the pipe in two bursts, the first ending inside a line."""

    def write() -> None:
        with open(path, "w", encoding="utf-8") as pipe:  # waits for the reader
            pipe.write(text[:pause_at])
            pipe.flush()
            time.sleep(0.3)
            pipe.write(text[pause_at:])

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


async def test_every_line_of_a_named_pipe_is_read_once_in_order(tmp_path: Path) -> None:
    fifo = tmp_path / "changes.fifo"
    os.mkfifo(fifo)
    text = lines(*(change(n) for n in range(1, CHANGES + 1)))
    source = NdjsonChangeSource(fifo, collections=["orders"], batch_size=500)
    feeding = writer(fifo, text, pause_at=len(text) // 3 + 7)
    async with source.watch(None) as stream:
        read = await asyncio.wait_for(batches(stream), 20)
    feeding.join(5)
    assert [k for batch in read for k in keys(batch)] == list(range(1, CHANGES + 1))
    # Watched again (a capture that goes on after the end): nothing more, at once; the
    # pipe is not opened again, which waited for a writer for good.
    async with source.watch(None) as stream:
        assert await asyncio.wait_for(batches(stream), 5) == []
    # ... and from the last change's token, as capture watches again: not history lost.
    last = read[-1][-1]["_id"]
    async with source.watch(ResumePoint(resume_after=last)) as stream:
        assert await asyncio.wait_for(batches(stream), 5) == []


async def test_a_named_pipe_with_no_writer_holds_up_no_exit(tmp_path: Path) -> None:
    fifo = tmp_path / "idle.fifo"
    os.mkfifo(fifo)
    source = NdjsonChangeSource(fifo, collections=["orders"])
    async with source.watch(None) as stream:
        with pytest.raises(TimeoutError):  # nothing written: it waits, in its own thread
            await asyncio.wait_for(stream.next_batch(), 0.3)
    # The loop's default executor holds no thread blocked in the pipe's open: shutting
    # it down (as asyncio.run does at exit) returns at once.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 5)
