"""A rebuild job run by the instance following the projection, failing in the projection's own
code (its apply raising), leaves the projection `failed` at that seq with the error, one worker
or several, as a failing apply does while following; the live model and checkpoint untouched."""

from __future__ import annotations

from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.model import STREAM_TYPES, Job
from projections import Change, Projection, Write
from projections.partitioned import partition_of
from projections.runner import (
    STATE_COLLECTION,
    ProjectionFailed,
    ProjectionRunner,
    request_rebuild,
)
from tests.integration.test_partitioned_rebuild import numbered_orders, rows

BAD_SEQ = 10


def _flaky(broken: list[bool], bad: int = BAD_SEQ) -> Projection:
    """Versions per order; its apply raises at seq `bad` once `broken[0]` is set."""

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if broken[0] and change.event.seq == bad:
            raise RuntimeError(f"boom at {bad}")
        return [Write(key=change.event.entity_key, row={"v": change.event.version})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return a

    return Projection(name="flaky", collection="rm_flaky", keys=keys, apply=apply, merge=merge)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_rebuild_job_failing_in_the_projections_code_leaves_it_failed_at_that_seq(
    workers: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = await numbered_orders(10)  # 20 changes of orders 1..10, integer ids
    clock = FakeClock()
    broken = [False]
    runner = ProjectionRunner(store, _flaky(broken), clock=clock)
    runner.processes = False
    await runner.run(until_caught_up=True)  # the live model, followed
    live = await rows(store, "rm_flaky")
    position = await runner.position()
    assert len(live) == 10 and position == (await store.events.head()).seq
    broken[0] = True
    await store.jobs.create(
        Job(job="j", projection="flaky", requested_at=clock.now(), workers=workers)
    )
    with pytest.raises(ProjectionFailed) as raised:
        await runner.run(until_caught_up=True)  # runs the job between batches; it fails
    assert (
        str(raised.value) == f"projection flaky failed at seq {BAD_SEQ}: RuntimeError: boom at 10"
    )
    job = await store.jobs.get("j")
    assert job is not None
    assert (job.state, job.error) == ("failed", f"ProjectionFailed: {raised.value}")
    said = [r.getMessage() for r in caplog.records if "rebuild job j failed" in r.getMessage()]
    assert said == [
        f"projection flaky: rebuild job j failed (ProjectionFailed: {raised.value}); "
        f"the projection is failed at seq {BAD_SEQ}, its live model as it was"
    ]
    expected = ("failed", BAD_SEQ, "RuntimeError: boom at 10")
    assert (runner.status.state, runner.status.failed_seq, runner.status.error) == expected
    recorded = (await store.read_models.get_many(STATE_COLLECTION, ["flaky"]))["flaky"]
    assert (recorded["state"], recorded["failed_seq"], recorded["error"]) == expected
    assert (recorded["position"], recorded["problems"]) == (position, 0)
    # the live model and the checkpoint as they were; the fresh collection gone
    assert await rows(store, "rm_flaky") == live
    assert await runner.position() == position
    assert "rm_flaky__rebuild" not in await store.read_models.collections()
    assert not runner.lease.held
    # the cause fixed, started again: it follows on from its checkpoint, the failure cleared
    broken[0] = False
    await runner.run(until_caught_up=True)
    assert (runner.status.state, runner.status.failed_seq, runner.status.error) == (
        "stopped",
        None,
        None,
    )
    assert await rows(store, "rm_flaky") == live


async def test_a_failed_partitioned_job_counts_what_its_partitions_processed() -> None:
    """Partitions 0 and 1 folded at once: 0 succeeded and 1 failed, seen in the same pass. The
    job's `processed` is the sum of its partitions' (partition 0's events), not 0 beside a
    partition at 100%."""
    store = await numbered_orders(10)
    events = await store.events.read(after_seq=0, limit=100)
    bad = next(e.seq for e in events if e.type not in STREAM_TYPES and partition_of(e, 2) == 1)
    runner = ProjectionRunner(store, _flaky([True], bad), clock=FakeClock())
    runner.processes = False  # both folded at once, in-process; seen in partition order
    with pytest.raises(ProjectionFailed):
        await request_rebuild(runner, workers=2)
    [job] = store.jobs._jobs.values()  # type: ignore[attr-defined]
    done, failed = job.partitions
    assert (done.state, failed.state, failed.processed, failed.failed_seq) == (
        "succeeded",
        "failed",
        0,
        bad,
    )
    assert done.processed == done.total > 0
    assert done.total + failed.total == 20  # every entity event, split between the two
    assert (job.state, job.processed, job.total) == ("failed", done.processed, 20)
