"""States read from history because the state cache did not hold them: counted per runner,
recorded with its status, shown by `/v1/projections`, `/metrics` and `projections status`."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from litestar.testing import AsyncTestClient

from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.sources.memory import MemoryChangeFeed
from projections.orders import ORDER_SUMMARY, ORDERS_BY_STATUS
from projections.runner import STATE_COLLECTION, ProjectionRunner
from projections.states import SharedStates
from projections.status import projection_statuses
from tests.api.conftest import AppFactory
from tests.integration.ingest_helpers import ingester, start_from_the_beginning
from tests.subscribing import until

ORDERS = 6
ROUNDS = 3


async def round_robin() -> MemoryStore:
    """6 orders created, then updated in turn 3 times: each update's entity is the one
    changed longest ago, so a cache of 2 states never holds it (18 misses)."""
    clock = FakeClock()
    store = MemoryStore()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for n in range(ORDERS):
        await orders.insert_one({"_id": n, "status": "pending", "total": 1})
    for r in range(ROUNDS):
        for n in range(ORDERS):
            await orders.update_one({"_id": n}, {"$set": {"note": r}})
    await ingester(store, feed, clock).run(until_idle=True)
    return store


async def test_a_cache_too_small_reads_each_state_from_history_and_says_so() -> None:
    store = await round_robin()
    small = ProjectionRunner(store, ORDER_SUMMARY, clock=FakeClock(), state_cache=2)
    await small.run(until_caught_up=True)
    assert small.status.state_reads == ORDERS * ROUNDS
    (status,) = await projection_statuses(store, [ORDER_SUMMARY])
    assert status.state_reads == ORDERS * ROUNDS  # recorded once caught up
    large = ProjectionRunner(store, ORDERS_BY_STATUS, clock=FakeClock(), state_cache=ORDERS)
    await large.run(until_caught_up=True)  # a state per order: every one stays cached
    assert large.status.state_reads == 0


async def test_runners_sharing_states_read_each_missing_state_once() -> None:
    store = await round_robin()
    shared = SharedStates(entities=2)  # too few for the 6 orders: every update misses
    first, second = (
        ProjectionRunner(store, p, clock=FakeClock(), states=shared, batch_size=1)
        for p in (ORDER_SUMMARY, ORDERS_BY_STATUS)
    )
    while await first.step() + await second.step():
        pass
    assert first.status.state_reads == ORDERS * ROUNDS
    assert second.status.state_reads == 0  # the first had just read and shared each one


async def test_state_reads_show_in_the_api_and_metrics(make_app: AppFactory) -> None:
    store = await round_robin()
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=FakeClock(), state_cache=2)
    await runner.run(until_caught_up=True)
    async with AsyncTestClient(make_app(store)) as client:
        listed: list[dict[str, Any]] = (await client.get("/v1/projections")).json()
        text = (await client.get("/metrics")).text
    (summary,) = [p for p in listed if p["name"] == "order_summary"]
    assert summary["state_reads"] == ORDERS * ROUNDS
    assert {p["state_reads"] for p in listed if p["name"] != "order_summary"} == {0}
    assert (
        f'eventstore_projection_state_reads{{projection="order_summary"}} {ORDERS * ROUNDS}.0'
        in text
    )
    assert 'eventstore_projection_state_reads{projection="orders_by_status"} 0.0' in text


async def _recorded_reads(monotonic: Any) -> list[int]:
    """The state_reads a following runner records, with `monotonic` as its clock for pacing."""
    store = await round_robin()
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=FakeClock(), state_cache=2, batch_size=1)
    runner.monotonic = monotonic
    recorded: list[int] = []
    write = store.read_models.write

    async def spy(collection: str, writes: Any, **kw: Any) -> None:
        if collection == STATE_COLLECTION:
            recorded.extend(row["state_reads"] for _, row in writes)
        await write(collection, writes, **kw)

    store.read_models.write = spy  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    head = (await store.events.head()).seq
    await until(
        lambda: runner.status.position == head and recorded and recorded[-1] == ORDERS * ROUNDS
    )
    (status,) = await projection_statuses(store, [ORDER_SUMMARY])
    assert status.state == "running" and status.state_reads == ORDERS * ROUNDS
    stop.set()
    await task
    return recorded


async def test_a_following_runner_records_its_reads_once_caught_up_and_every_5_s_while_busy() -> (
    None
):
    # its clock never moves: recorded when it starts, once caught up, when it stops
    assert await _recorded_reads(lambda: 0.0) == [0, ORDERS * ROUNDS, ORDERS * ROUNDS]
    # 10 s between two looks at its clock: each batch that read a state records it
    ticks = iter(range(0, 1_000_000, 10))
    recorded = await _recorded_reads(lambda: float(next(ticks)))
    assert recorded[0] == 0 and recorded[-1] == ORDERS * ROUNDS
    assert sorted(set(recorded)) == list(range(ORDERS * ROUNDS + 1))
    # exactly 5 s between two looks: still due each time
    ticks = iter(range(0, 1_000_000, 5))
    recorded = await _recorded_reads(lambda: float(next(ticks)))
    assert sorted(set(recorded)) == list(range(ORDERS * ROUNDS + 1))
    # 1 s between two looks: about every fifth batch's count is recorded, and the last one
    ticks = iter(range(0, 1_000_000, 1))
    recorded = await _recorded_reads(lambda: float(next(ticks)))
    assert 2 < len(set(recorded)) <= ORDERS * ROUNDS // 3 and recorded[-1] == ORDERS * ROUNDS


def test_projections_status_says_how_many_states_were_read_from_history() -> None:
    async def follow() -> MemoryStore:
        store = await round_robin()
        runner = ProjectionRunner(store, ORDER_SUMMARY, clock=FakeClock(), state_cache=2)
        await runner.run(until_caught_up=True)
        return store

    store = asyncio.run(follow())
    out = io.StringIO()
    argv = ["projections", "status", "order_summary", "orders_by_status", "--uri", "memory://"]
    assert main(argv, out=out, store=store) == 0
    summary, by_status = out.getvalue().splitlines()
    assert summary.endswith(f"  {ORDERS * ROUNDS} states read from history (see STATE_CACHE)")
    assert "read from history" not in by_status
    out = io.StringIO()
    assert main([*argv, "--json"], out=out, store=store) == 0
    assert [r["state_reads"] for r in json.loads(out.getvalue())] == [ORDERS * ROUNDS, 0]


def test_projections_status_json_is_the_json_of_the_api(make_app: AppFactory) -> None:
    # README: `--json` prints the JSON the API returns. The CLI's had `held_by` (who holds
    # the projection's lease), which the API left out.
    async def held() -> MemoryStore:
        store = await round_robin()
        runner = ProjectionRunner(store, ORDER_SUMMARY, clock=FakeClock())
        await runner.run(until_caught_up=True)
        assert await runner.lease.try_acquire()  # held, as by a runner following the log
        return store

    store = asyncio.run(held())
    out = io.StringIO()
    assert (
        main(["projections", "status", "--json", "--uri", "memory://"], out=out, store=store) == 0
    )

    async def listed() -> Any:
        async with AsyncTestClient(make_app(store)) as client:
            return (await client.get("/v1/projections")).json()

    api = asyncio.run(listed())
    assert json.loads(out.getvalue()) == api
    (summary,) = [p for p in api if p["name"] == "order_summary"]
    assert summary["held_by"] is not None and summary["position"] > 0
    assert {p["held_by"] for p in api if p["name"] != "order_summary"} == {None}
