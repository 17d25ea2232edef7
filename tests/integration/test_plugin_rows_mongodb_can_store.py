"""A plugin's rows are refused where MongoDB would refuse them, with the reason: a row over
16 MiB as stored (its `_id` and `_seq` included) fails the projection at that seq, naming the
key and the size; a `merge` that raises or returns what is no storable row fails the
partitioned rebuild naming merge and the key, the live model untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import bson
import pytest

from eventstore.clock import FakeClock
from eventstore.ports import Store
from eventstore.worker_state import FAILED
from projections import Change, Projection, Write
from projections.partitioned import merge_partitions
from projections.runner import ProjectionFailed, ProjectionRunner, request_rebuild
from tests.integration.test_partitioned_rebuild import numbered_orders, rows
from tests.integration.test_projector import workload

# MongoDB's largest document (maxBsonObjectSize), 16 MiB
MAX_ROW_BYTES = 16_777_216
KEY = "big"
SEQ = 3


def _blob_size(extra: int) -> int:
    """The length of a `blob` making the stored row `{_id, n, blob, _seq}` MAX + extra bytes."""
    bare = len(bson.encode({"_id": KEY, "n": SEQ, "blob": "", "_seq": SEQ}))
    return MAX_ROW_BYTES - bare + extra


def _writing_blob(length: int) -> Projection:
    """Counts changes in one row; at SEQ it also writes a `blob` of `length` characters."""

    def keys(change: Change) -> list[str]:
        return [KEY]

    def apply(rows: Any, change: Change) -> list[Write]:
        old = rows.get(KEY) or {}
        row = {**old, "n": old.get("n", 0) + 1}
        if change.event.seq == SEQ:
            row["blob"] = "x" * length
        else:
            row.pop("blob", None)
        return [Write(key=KEY, row=row)]

    return Projection(name="blobs", collection="rm_blobs", keys=keys, apply=apply)


async def test_a_row_over_16_mib_as_stored_fails_the_projection_at_its_seq(
    store: Store, clock: FakeClock
) -> None:
    await workload(store, clock, changes=4)
    runner = ProjectionRunner(store, _writing_blob(_blob_size(1)), clock=clock)
    [result] = await asyncio.gather(runner.run(until_caught_up=True), return_exceptions=True)
    assert isinstance(result, ProjectionFailed) and result.seq == SEQ
    assert (runner.status.state, runner.status.failed_seq) == (FAILED, SEQ)
    assert runner.status.error == (
        f"PluginOutputError: apply returned for 'big' a row of {MAX_ROW_BYTES + 1} bytes as"
        f" stored (with _id and _seq): MongoDB stores documents of at most {MAX_ROW_BYTES}"
        " bytes (16 MiB)"
    )
    assert await runner.position() < SEQ
    # a one-worker rebuild fails at the same seq, with the same error
    rebuilt = ProjectionRunner(store, _writing_blob(_blob_size(1)), clock=clock)
    with pytest.raises(ProjectionFailed) as raised:
        await rebuilt.rebuild_now()
    assert raised.value.seq == SEQ and rebuilt.status.error == runner.status.error


async def test_a_row_of_exactly_16_mib_as_stored_is_written(store: Store, clock: FakeClock) -> None:
    await workload(store, clock, changes=0)
    assert (await store.events.head()).seq >= SEQ
    runner = ProjectionRunner(store, _writing_blob(_blob_size(0)), clock=clock, batch_size=SEQ)
    await runner.step()  # seqs 1..3: the row as seq 3 left it
    stored = (await store.read_models.get_many("rm_blobs", [KEY]))[KEY]
    assert (stored["_id"], stored["n"], stored["_seq"]) == (KEY, SEQ, SEQ)
    assert len(bson.encode({"_id": KEY, **stored})) == MAX_ROW_BYTES


# -- merge -------------------------------------------------------------------------------------
def _merging(merge: Any) -> Projection:
    """One row counting every change (every partition has it): rebuilt by partitions, merged."""

    def keys(change: Change) -> list[str]:
        return ["all"]

    def apply(rows: Any, change: Change) -> list[Write]:
        old = rows.get("all") or {"n": 0}
        return [Write(key="all", row={**old, "n": old["n"] + 1})]

    return Projection(name="merged", collection="rm_merged", keys=keys, apply=apply, merge=merge)


def _missing(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {"n": a["missing"]}


def _sums(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {"n": a["n"] + b["n"]}


@pytest.mark.parametrize(
    ("merge", "error"),
    [
        (_missing, "MergeFailed: merge raised for 'all': KeyError: 'missing'"),
        (
            lambda k, a, b: [a, b],
            "PluginOutputError: merge returned for 'all' the row [{'n': 1, '_seq': 2}, {'n': 1,"
            " '_seq': 4}] (list): a merged row is a dict",
        ),
        (
            lambda k, a, b: None,
            "PluginOutputError: merge returned for 'all' the row None (NoneType): a merged row"
            " is a dict",
        ),
        (
            lambda k, a, b: {"$inc": 1},
            "PluginOutputError: merge returned for 'all' a row with the field '$inc': MongoDB"
            " stores no top-level field starting with `$`",
        ),
        (
            lambda k, a, b: {"_id": "other"},
            "PluginOutputError: merge returned for 'all' a row whose _id is 'other': a row's _id"
            " is its key",
        ),
        (
            lambda k, a, b: {"n": 2**64},
            "PluginOutputError: merge returned for 'all' a row MongoDB cannot store:"
            " OverflowError: MongoDB can only handle up to 8-byte ints",
        ),
        (
            # 4 (length) + 13 (_id "all") + 11 + MAX (blob) + 10 (_seq, int32) + 1 (end)
            lambda k, a, b: {"blob": "x" * MAX_ROW_BYTES},
            "PluginOutputError: merge returned for 'all' a row of 16777255 bytes as stored"
            " (with _id and _seq): MongoDB stores documents of at most 16777216 bytes (16 MiB)",
        ),
    ],
)
def test_a_merge_that_raises_or_returns_no_storable_row_is_named(merge: Any, error: str) -> None:
    projection = _merging(merge)
    parts: list[dict[str, dict[str, Any] | None]] = [
        {"all": {"n": 1, "_seq": 2}},
        {"all": {"n": 1, "_seq": 4}},
    ]
    with pytest.raises(Exception) as raised:
        merge_partitions(projection, parts)
    assert f"{type(raised.value).__name__}: {raised.value}" == error


def test_a_merged_row_keeps_the_newest_seq_of_the_two() -> None:
    parts: list[dict[str, dict[str, Any] | None]] = [
        {"all": {"n": 2, "_seq": 7}, "a": {"n": 1, "_seq": 1}},
        {"all": {"n": 3, "_seq": 5}},
    ]
    assert merge_partitions(_merging(_sums), parts) == {
        "all": {"n": 5, "_seq": 7},
        "a": {"n": 1, "_seq": 1},
    }


async def test_a_failing_merge_fails_the_job_naming_merge_and_leaves_the_live_model() -> None:
    store = await numbered_orders(6)
    clock = FakeClock()
    await store.read_models.write("rm_merged", [("live", {"n": 1})])
    runner = ProjectionRunner(store, _merging(_missing), clock=clock)
    runner.processes = False
    with pytest.raises(Exception, match="merge raised for 'all'"):
        await request_rebuild(runner, workers=2)
    [job] = store.jobs._jobs.values()  # type: ignore[attr-defined]
    assert (job.state, job.error) == (
        "failed",
        "MergeFailed: merge raised for 'all': KeyError: 'missing'",
    )
    assert [p.state for p in job.partitions] == ["succeeded", "succeeded"]  # the folds were fine
    assert await rows(store, "rm_merged") == {"live": {"n": 1}}
    assert "rm_merged__rebuild" not in await store.read_models.collections()
    # the same projection with a merge that works: the rows one worker computes
    good = ProjectionRunner(store, _merging(_sums), clock=clock)
    good.processes = False
    await request_rebuild(good, workers=2)
    assert (await rows(store, "rm_merged"))["all"]["n"] == 12
