"""Where an ndjson line ends: at `\\n` only, from a file and from standard input alike.

A `\\r` right before the `\\n` is part of the line ending (`\\r\\n` files); a `\\r`
anywhere else is one of the line's bytes, as `sed`, `wc -l` and editors count lines,
so `line N` is what `sed -n Np` prints and a rejected line's hash is that of its
bytes without the ending.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

import pytest

from eventstore.model import Origin
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.unit.test_ndjson_source import change, fragments, keys, lines

NOT_A_CHANGE = b'{"not": "a change"}'


def line(n: int) -> bytes:
    return lines(change(n)).rstrip("\n").encode()


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


async def read_all(source: NdjsonChangeSource) -> list[tuple[dict[str, Any], Origin]]:
    got: list[tuple[dict[str, Any], Origin]] = []
    async with source.watch(None) as stream:
        while (batch := await asyncio.wait_for(stream.next_batch(), 10)) is not None:
            assert batch.origins is not None
            got.extend(zip(batch.changes, batch.origins, strict=True))
    return got


def from_file(tmp_path: Path, data: bytes) -> NdjsonChangeSource:
    path = tmp_path / "changes.ndjson"
    path.write_bytes(data)
    return NdjsonChangeSource(path, collections=["orders"])


async def from_pipe(data: bytes) -> list[tuple[dict[str, Any], Origin]]:
    """The lines of `data` written to a pipe read as standard input (by its descriptor)."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as reader:
        return await read_all(NdjsonChangeSource("-", collections=["orders"], stdin=reader))


def without_descriptor(data: bytes) -> IO[Any]:
    """Standard input as a text handle with no descriptor (universal newlines, its default)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


# A change, then a line holding a `\r` between a change and what is not one, then a change.
LONE_CR = line(1) + b"\r" + NOT_A_CHANGE + b"\n" + line(3) + b"\n"


def assert_lone_cr_is_inside_line_1(got: list[tuple[dict[str, Any], Origin]]) -> None:
    assert [o.position for _, o in got] == ["line 1", "line 2"]
    bad = got[0][1]
    assert bad.unreadable is not None and bad.unreadable.startswith("not valid JSON (Extra data")
    assert bad.sha256 == sha(line(1) + b"\r" + NOT_A_CHANGE)
    assert got[0][0] == {} and keys([got[1][0]]) == [3]


async def test_a_lone_cr_in_a_file_does_not_end_the_line(tmp_path: Path) -> None:
    assert_lone_cr_is_inside_line_1(await read_all(from_file(tmp_path, LONE_CR)))


async def test_a_lone_cr_on_standard_input_does_not_end_the_line() -> None:
    assert_lone_cr_is_inside_line_1(await from_pipe(LONE_CR))


async def test_a_lone_cr_on_a_standard_input_without_descriptor_does_not_end_the_line() -> None:
    stdin = without_descriptor(LONE_CR)
    source = NdjsonChangeSource("-", collections=["orders"], stdin=stdin)
    assert_lone_cr_is_inside_line_1(await read_all(source))


# Line 2 ends `\r\r\n`: one `\r` is its ending's, the other its own (a bad line's byte).
ENDINGS = (
    line(1)
    + b"\r\n"
    + NOT_A_CHANGE
    + b"\r\r\n"
    + b"[]\r\n"  # line 3, ended by \r\n
    + b"\r\n"  # line 4: blank
    + b"{oops\r"  # line 5, last, its ending cut short: no \n after the \r
)


def assert_endings(got: list[tuple[dict[str, Any], Origin]]) -> None:
    assert [o.position for _, o in got] == ["line 1", "line 2", "line 3", "line 5"]
    assert [o.sha256 for _, o in got[1:]] == [sha(NOT_A_CHANGE + b"\r"), sha(b"[]"), sha(b"{oops")]
    assert keys([got[0][0]]) == [1] and got[0][1].unreadable is None
    assert got[2][1].unreadable == "not a JSON object"


async def test_only_cr_lf_is_a_line_ending_in_a_file(tmp_path: Path) -> None:
    assert_endings(await read_all(from_file(tmp_path, ENDINGS)))


async def test_only_cr_lf_is_a_line_ending_on_standard_input() -> None:
    assert_endings(await from_pipe(ENDINGS))


def fragments_crlf() -> bytes:
    """Change 1, change 2 split in two fragments (lines 2 and 3), change 4: `\\r\\n` endings."""
    return lines(change(1), *fragments(2), change(4)).replace("\n", "\r\n").encode()


async def test_a_split_event_of_a_crlf_file_is_hashed_as_its_lines_stand(tmp_path: Path) -> None:
    data = fragments_crlf()
    got = await read_all(from_file(tmp_path, data))
    assert [o.position for _, o in got] == ["line 1", "lines 2-3", "line 4"]
    file_lines = data.split(b"\r\n")
    # as the lines stand in the file without the last line ending (`sed -n 2,3p | head -c -2`)
    assert got[1][1].sha256 == sha(file_lines[1] + b"\r\n" + file_lines[2])


GNU_SED = (
    shutil.which("sed") is not None
    and b"GNU" in subprocess.run(["sed", "--version"], capture_output=True, check=False).stdout
)


@pytest.mark.skipif(not GNU_SED, reason="the README's recipe is GNU sed's")
def test_the_readmes_recipe_gives_a_lines_hash(tmp_path: Path) -> None:
    data = LONE_CR + ENDINGS.replace(line(1), line(7))
    path = tmp_path / "changes.ndjson"
    path.write_bytes(data)
    got = asyncio.run(read_all(NdjsonChangeSource(path, collections=["orders"])))
    assert len(got) == 6
    for _, origin in got:
        n = origin.position.removeprefix("line ")
        recipe = f"sed -n '{n}{{s/\\r$//;p;}}' {path} | tr -d '\\n' | sha256sum"
        out = subprocess.run(["sh", "-c", recipe], capture_output=True, check=True).stdout
        assert out.split()[0].decode() == origin.sha256, origin.position


@pytest.mark.parametrize("space", ["\u00a0", "\u2028", "\u3000", "\x0b", "\x0c"])
async def test_a_line_of_whitespace_json_does_not_know_is_bad_not_blank(
    tmp_path: Path, space: str
) -> None:
    # Only JSON's own whitespace (space, tab, CR, LF) makes a line blank: the rest is a
    # line that is no JSON, said so in its place, never skipped without a word.
    data = line(1) + b"\n" + f" {space} ".encode() + b"\n" + line(3) + b"\n"
    got = await read_all(from_file(tmp_path, data))
    assert [(o.position, o.unreadable is not None) for _, o in got] == [
        ("line 1", False),
        ("line 2", True),
        ("line 3", False),
    ]
    assert got[1][1].unreadable is not None and got[1][1].unreadable.startswith("not valid JSON")
