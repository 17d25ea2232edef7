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
from eventstore.ports import LogConflict, Store
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


def ddl(n: int, op: str) -> str:
    """Change n as a drop of `orders`, or its rename to `orders_old`."""
    doc: dict[str, Any] = {
        "_id": token(n),
        "operationType": op,
        "clusterTime": Timestamp(1_770_000_000, n),
        "ns": {"db": "shop", "coll": "orders"},
    }
    if op == "rename":
        doc["to"] = {"db": "shop", "coll": "orders_old"}
    return json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS)


@pytest.mark.parametrize("op", ["drop", "rename"])
@pytest.mark.parametrize("batch_size", [1, 10], ids=["other-batches", "one-batch"])
async def test_a_drop_or_rename_given_twice_is_recorded_once_and_the_log_verifies(
    store: Store, tmp_path: Path, op: str, batch_size: int
) -> None:
    # An outside tester found the repeat in one batch built its events again: the summary
    # counted 6 of 5 stored, the checkpoint's head ran one ahead and verify said truncated.
    path = write(tmp_path / "changes.ndjson", [*LINES_BEFORE, ddl(5, op), ddl(5, op)])

    stats = await ndjson_ingester(store, path, policy="stop", batch_size=batch_size).run(
        until_idle=True
    )

    events = await assert_log_intact(store)  # the head recorded is the log's
    # orders 1 and 3, each created and updated, ended by two inferred deletions and the drop
    assert len(events) == 4 + 2 + 1 and stats.recorded == len(events)
    assert stats.duplicates_skipped == 1
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.head == await store.events.head()


async def test_a_change_given_once_with_its_cluster_time_and_once_without_is_two_changes(
    store: Store, tmp_path: Path
) -> None:
    untimed = json_util.dumps(
        {k: v for k, v in change(1).items() if k != "clusterTime"},
        json_options=json_util.RELAXED_JSON_OPTIONS,
    )
    path = write(tmp_path / "changes.ndjson", [line(1), untimed])

    with pytest.raises(BadChange, match=r"^ndjson: line 2: its resume token is the id of"):
        await ndjson_ingester(store, path, policy="stop", batch_size=1).run(until_idle=True)


async def test_a_batch_the_store_takes_only_in_part_is_never_checkpointed(
    store: Store, tmp_path: Path
) -> None:
    # Whatever made it (a repeat not caught before the write): a checkpoint whose head
    # runs ahead of the log would make the log verify as truncated. It is refused instead.
    path = write(tmp_path / "changes.ndjson", LINES_BEFORE)
    real = store.events.append

    async def holding_one(events: Any, *, session: Any = None) -> int:
        return await real(events[:-1], session=session)  # as if the last were stored

    store.events.append = holding_one  # type: ignore[method-assign]
    with pytest.raises(LogConflict, match=r"^the log already held 1 of the 4 events built"):
        await ndjson_ingester(store, path, policy="stop", batch_size=10).run(until_idle=True)
    cp = await store.checkpoints.get(ROLE)
    assert cp is None or cp.head.seq <= (await store.events.head()).seq
