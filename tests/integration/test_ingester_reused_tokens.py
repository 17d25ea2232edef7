"""A change whose resume token is another change's is bad input, never "already recorded".

MongoDB gives each change its own token and the log keys events by it, so a token found
again is the same change delivered again (skipped). A file may reuse a token for another
change: skipping it would lose that change, and (across batches) leave the checkpoint's
head one seq ahead of the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util

from eventstore.badinput import BadChange
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.model import CREATED, REJECTED, Checkpoint
from eventstore.ports import Store
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.integration.ingest_helpers import ROLE, all_events, assert_log_intact, settings
from tests.integration.test_ingester_bad_input import (
    WHEN,
    change,
    line,
    ndjson_ingester,
    rejected_events,
    token,
    write,
)


def reusing(n: int, **changed: Any) -> str:
    """Change 99 (an insert of order 99) under change n's resume token, with `changed` set."""
    doc = change(99) | {"_id": token(n)} | changed
    return json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS)


LINES_BEFORE = [line(n) for n in range(1, 5)]  # orders 1 and 3, each inserted then updated


@pytest.mark.parametrize("batch_size", [2, 10], ids=["another-batch", "same-batch"])
async def test_stop_names_the_line_whose_token_is_another_changes(
    store: Store, tmp_path: Path, batch_size: int
) -> None:
    path = write(tmp_path / "changes.ndjson", [*LINES_BEFORE, reusing(1), line(5)])

    with pytest.raises(BadChange) as raised:
        await ndjson_ingester(store, path, policy="stop", batch_size=batch_size).run(
            until_idle=True
        )
    if batch_size == 2:  # line 1 is stored when line 5 is read: the log's event is named
        assert str(raised.value) == (
            "ndjson: line 5: its resume token is the id of another change already recorded "
            "(seq 1: created orders 1 at cluster time 1770000000.1)"
        )
    else:
        assert str(raised.value) == (
            "ndjson: line 5: its resume token is that of another change before it (line 1)"
        )
    events = await assert_log_intact(store)
    assert [e.id for e in events] == [token(n)["_data"] for n in range(1, 5)]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(4) and cp.head == await store.events.head()


async def test_record_keeps_the_reused_line_as_rejected_and_the_checkpoint_on_the_log(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "changes.ndjson", [*LINES_BEFORE, reusing(1), line(5)])

    stats = await ndjson_ingester(store, path, policy="record", batch_size=2).run(until_idle=True)

    assert (stats.recorded, stats.rejected, stats.duplicates_skipped) == (6, 1, 0)
    events = await assert_log_intact(store)
    assert [e.type for e in events][4:] == [REJECTED, CREATED]
    (rejected,) = await rejected_events(store)
    assert rejected.document is not None and rejected.document["position"] == "line 5"
    assert rejected.document["reason"].startswith("its resume token is the id of another change")
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.head == await store.events.head()

    # The same file again from the very start (a lost checkpoint): nothing is new.
    await store.checkpoints.put(Checkpoint(name=ROLE, head=await store.events.head()))
    again = await ndjson_ingester(store, path, policy="record", batch_size=2).run(until_idle=True)
    assert (again.recorded, again.duplicates_skipped) == (0, 6)
    assert await all_events(store) == events


@pytest.mark.parametrize(
    "changed",
    [
        {"ns": {"db": "shop", "coll": "customers"}},  # another collection
        {"documentKey": {"_id": 3}, "fullDocument": {"_id": 3, "updatedBy": "x"}},  # another key
        {"documentKey": {"_id": "1"}, "fullDocument": {"_id": "1"}},  # the key 1 as a string
        {"operationType": "delete", "documentKey": {"_id": 1}},  # another operation
        # change 1 itself, but at another time
        {**change(1), "_id": token(1), "clusterTime": Timestamp(1_770_000_000, 77)},
    ],
    ids=["collection", "key", "key-type", "operation", "cluster-time"],
)
async def test_each_part_of_a_changes_identity_tells_it_apart(
    store: Store, tmp_path: Path, changed: dict[str, Any]
) -> None:
    path = write(tmp_path / "changes.ndjson", [line(1), reusing(1, **changed)])
    s = settings(source=f"ndjson:{path}", batch_size=1, collections=("orders", "customers"))
    source = NdjsonChangeSource(path, collections=s.collections, batch_size=1)
    ingester = Ingester(store=store, source=source, settings=s, clock=FakeClock(WHEN))

    with pytest.raises(BadChange, match=r"^ndjson: line 2: its resume token is the id of"):
        await ingester.run(until_idle=True)
    assert len(await all_events(store)) == 1


async def test_the_same_change_twice_in_other_batches_is_skipped(
    store: Store, tmp_path: Path
) -> None:
    # An export concatenated with an overlap: changes 1-4, then 3-5 again, 2 lines a batch.
    lines = [*LINES_BEFORE, line(3), line(4), line(5)]
    path = write(tmp_path / "changes.ndjson", lines)

    stats = await ndjson_ingester(store, path, policy="stop", batch_size=2).run(until_idle=True)

    assert (stats.recorded, stats.duplicates_skipped) == (5, 2)
    events = await assert_log_intact(store)
    assert [e.id for e in events] == [token(n)["_data"] for n in range(1, 6)]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.head == await store.events.head()
