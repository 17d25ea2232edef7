"""Bad ndjson lines through the ingester: a number a double cannot hold, a lone `\\r`.

Under BAD_INPUT=stop capture stops naming the line as `sed -n Np` counts it, with
everything before it recorded; under `record` the line becomes a `rejected` event
in its place, hashed as its bytes without the line ending. Nothing holds Infinity
or 0 for a number the line does not say.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from eventstore.badinput import BadChange
from eventstore.model import REJECTED, SOURCE_STREAM
from eventstore.ports import Store
from tests.integration.ingest_helpers import all_events, assert_log_intact
from tests.integration.test_ingester_bad_input import line, ndjson_ingester, sha, token, write

BEYOND = "not a change: a number beyond a double's range (it would read as Infinity)"
BELOW = "not a change: a number not zero but too small for a double (it would read as 0)"


def with_total(n: int, total: str) -> str:
    """Line n (an insert: n is odd) with its document's `total` written `total`."""
    text = line(n)
    assert '"updatedBy": "alice"}' in text
    return text.replace('"updatedBy": "alice"}', f'"updatedBy": "alice", "total": {total}}}')


@pytest.mark.parametrize(("total", "reason"), [("1e400", BEYOND), ("-1E-400", BELOW)])
async def test_stop_names_the_line_of_a_number_a_double_cannot_hold(
    store: Store, tmp_path: Path, total: str, reason: str
) -> None:
    lines = [line(n) for n in range(1, 61)]
    lines[50] = with_total(51, total)  # line 51
    path = write(tmp_path / "changes.ndjson", lines)
    with pytest.raises(BadChange) as raised:
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert str(raised.value) == f"ndjson: line 51: {reason}"
    assert [e.id for e in await all_events(store)] == [token(n)["_data"] for n in range(1, 51)]


@pytest.mark.parametrize(("total", "reason"), [("-1e400", BEYOND), ("2.5e-999", BELOW)])
async def test_record_puts_a_rejected_event_in_the_place_of_such_a_number(
    store: Store, tmp_path: Path, total: str, reason: str
) -> None:
    bad = with_total(3, total)
    path = write(tmp_path / "changes.ndjson", [line(1), line(2), bad, line(4), line(5)])
    stats = await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    assert (stats.recorded, stats.rejected) == (5, 1)
    events = await assert_log_intact(store)
    assert [e.type for e in events][2] == REJECTED
    rejected = events[2]
    assert rejected.stream == SOURCE_STREAM
    assert rejected.document == {
        "source": "ndjson",
        "position": "line 3",
        "reason": reason,
        "sha256": sha(bad),
    }
    for event in events:  # no value the line did not say, anywhere in the log
        for value in (event.document or {}).values():
            assert not (isinstance(value, float) and (math.isinf(value) or value == 0.0))


async def test_a_lone_cr_is_inside_its_line_for_stop_and_record(
    store: Store, tmp_path: Path
) -> None:
    # Line 3 holds change 3, a `\r` and then what is not a change: one line, as sed counts.
    bad = line(3) + '\r{"not": "a change"}'
    path = write(tmp_path / "changes.ndjson", [line(1), line(2), bad, line(5)])
    with pytest.raises(BadChange, match=r"^ndjson: line 3: not valid JSON \(Extra data, "):
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert [e.id for e in await all_events(store)] == [token(n)["_data"] for n in (1, 2)]

    await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.id for e in events if e.type != REJECTED] == [token(n)["_data"] for n in (1, 2, 5)]
    [rejected] = [e for e in events if e.type == REJECTED]
    assert rejected.document is not None
    assert (rejected.document["position"], rejected.document["sha256"]) == ("line 3", sha(bad))
    assert rejected.id == f"rejected:{sha(bad)}:line 3"
