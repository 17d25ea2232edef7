"""Standard input read by `PipedLines`: below Python's buffered reader, so a fork is safe,
and as UTF-8 with `surrogateescape`, so a line that is not UTF-8 is one bad line."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
from typing import Any

from eventstore.model import Origin
from eventstore.sources.ndjson import NdjsonChangeSource
from eventstore.sources.piped_lines import PipedLines
from tests.unit.test_ndjson_source import change, keys, lines


async def test_a_process_forked_while_the_pipe_is_read_can_close_its_copy() -> None:
    # A partitioned rebuild forks its workers while the reader waits on an open pipe;
    # multiprocessing closes the child's sys.stdin as the child starts. A reader blocked
    # in readline() held the buffered reader's lock, inherited held: the child hung there.
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, encoding="utf-8") as reader, os.fdopen(write_fd, "w") as writer:
        piped = PipedLines(reader, 10)
        taking = asyncio.ensure_future(piped.take())
        await asyncio.sleep(0.5)  # the thread is in its read, waiting for the writer
        assert not taking.done()
        child = multiprocessing.get_context("fork").Process(target=reader.close)
        child.start()
        child.join(10)
        hung = child.is_alive()
        if hung:
            child.kill()
            child.join(10)
        assert not hung and child.exitcode == 0
        writer.write("one\ntwo\n")
        writer.flush()
        assert await asyncio.wait_for(taking, 10) in (["one\n", "two\n"], ["one\n"])
        writer.close()
        rest = await asyncio.wait_for(piped.take(), 10)
        assert rest in ([], ["two\n"])


async def test_a_line_of_a_pipe_that_is_not_utf8_is_one_bad_line_and_a_bom_is_dropped() -> None:
    raw = b'{"x": "\xff\xfe"}'
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"\xef\xbb\xbf" + lines(change(1)).encode() + b"\n" + raw + b"\n")
    os.write(write_fd, lines(change(2)).encode())  # the last line without its newline
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as reader:  # strict: readline() would raise
        source = NdjsonChangeSource("-", collections=["orders"], stdin=reader)
        async with source.watch(None) as stream:
            got: list[tuple[dict[str, Any], Origin]] = []
            while (batch := await asyncio.wait_for(stream.next_batch(), 10)) is not None:
                assert batch.origins is not None
                got.extend(zip(batch.changes, batch.origins, strict=True))
    assert [o.unreadable for _, o in got] == [None, "not valid UTF-8", None]
    assert got[1][1].sha256 == hashlib.sha256(raw).hexdigest()
    assert keys([got[0][0], got[2][0]]) == [1, 2]
