"""Numbers a double cannot hold in an ndjson line: bad input, never a value changed silently.

`1e400` read as a double is Infinity and `1e-400` is 0: stored, the log would hold a
value the line does not say. A bare `Infinity` was already refused; these are too,
in relaxed (a JSON number) and canonical (`{"$numberDouble": "…"}`) Extended JSON.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest

from eventstore.sources.ndjson import NdjsonChangeSource
from tests.unit.test_ndjson_source import change, keys, lines, write

BEYOND = "not a change: a number beyond a double's range (it would read as Infinity)"
BELOW = "not a change: a number not zero but too small for a double (it would read as 0)"


def insert_line(total: str) -> str:
    """Change 2's line, its fullDocument's `total` written `total` (as it stands)."""
    text = lines(change(2)).rstrip("\n")
    head, _, tail = text.partition('"total": ')
    assert tail.startswith('{"$numberDecimal": "9.99"}')
    return head + '"total": ' + total + tail.removeprefix('{"$numberDecimal": "9.99"}')


async def read_all(path: Path) -> list[tuple[dict[str, Any], Any]]:
    source = NdjsonChangeSource(path, collections=["orders"])
    got: list[tuple[dict[str, Any], Any]] = []
    async with source.watch(None) as stream:
        while (batch := await stream.next_batch()) is not None:
            assert batch.origins is not None
            got.extend(zip(batch.changes, batch.origins, strict=True))
    return got


@pytest.mark.parametrize(
    ("total", "reason"),
    [
        ("1e400", BEYOND),
        ("-1e400", BEYOND),
        ("1.5E+309", BEYOND),
        ("1" + "0" * 400 + ".0", BEYOND),  # no exponent: 401 digits and a fraction
        ('{"$numberDouble": "1e400"}', BEYOND),
        ('{"$numberDouble": "-2E308"}', BEYOND),
        ("1e-400", BELOW),
        ("-2.5e-330", BELOW),
        ("0." + "0" * 400 + "1", BELOW),  # no exponent: a 1 after 400 zeros
        ('{"$numberDouble": "1e-400"}', BELOW),
    ],
)
async def test_a_number_a_double_cannot_hold_is_bad_input_naming_why_not_what(
    tmp_path: Path, total: str, reason: str
) -> None:
    bad = insert_line(total)
    path = write(tmp_path, lines(change(1)) + bad + "\n" + lines(change(3)))
    got = await read_all(path)
    assert [o.position for _, o in got] == ["line 1", "line 2", "line 3"]
    # why, never what: the reason is the same whatever the number (input is not repeated)
    assert [o.unreadable for _, o in got] == [None, reason, None]
    assert got[1][0] == {}
    assert got[1][1].sha256 == hashlib.sha256(bad.encode()).hexdigest()
    assert keys([got[0][0], got[2][0]]) == [1, 3]


@pytest.mark.parametrize(
    ("total", "value"),
    [
        ("0.0", 0.0),
        ("-0.0", -0.0),
        ("0e400", 0.0),  # a zero, whatever its exponent
        ("0.000e-400", 0.0),
        ("-0E+5", -0.0),
        ("1.7976931348623157e308", 1.7976931348623157e308),  # the largest double
        ("5e-324", 5e-324),  # the smallest (subnormal) one
        ("1e-320", 1e-320),  # subnormal: rounded as any double is, not lost
        ("129.95", 129.95),
        ('{"$numberDouble": "0.0"}', 0.0),
        ('{"$numberDouble": "-0.0"}', -0.0),
        ('{"$numberDouble": "Infinity"}', math.inf),  # how Extended JSON writes one
        ('{"$numberDouble": "-Infinity"}', -math.inf),
        ('{"$numberDouble": "1.7976931348623157E+308"}', 1.7976931348623157e308),
    ],
)
async def test_doubles_a_double_holds_are_read_as_written(
    tmp_path: Path, total: str, value: float
) -> None:
    path = write(tmp_path, insert_line(total) + "\n")
    [(got, origin)] = await read_all(path)
    assert origin.unreadable is None
    read = got["fullDocument"]["total"]
    assert isinstance(read, float) and read == value
    assert math.copysign(1.0, read) == math.copysign(1.0, value)  # -0.0 stays negative
