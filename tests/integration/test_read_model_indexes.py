"""Read-model look-ups by field are served by indexes: `ReadModels.ensure_indexes`, the
fields each built-in model declares (`Projection.indexes`), made by the runner on the live
collection and on a rebuild's fresh one (so a swap keeps them), and a plugin's refused
when they are not field paths.

The indexes themselves are checked on the `mongo` adapter (over mongomock-motor, which
keeps `createIndexes` as MongoDB does); the memory adapter indexes a field at its first
filter, and both answer the same pages.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from projections import Projection, Write
from projections.orders import ORDER_PROJECTIONS
from projections.plugins import MAX_INDEXES, PluginError, indexes_problem, load_plugins
from projections.runner import ProjectionRunner
from tests.integration.conftest import open_test_store
from tests.integration.test_projector import rows, workload

C = "rm_indexed"
BY_NAME = {p.name: p for p in ORDER_PROJECTIONS}


async def _indexed(store: MongoStore, collection: str) -> set[tuple[tuple[str, int], ...]]:
    """The key patterns of a collection's indexes, `_id`'s own left out."""
    found = await store.db[collection].index_information()
    return {tuple(spec["key"]) for name, spec in found.items() if name != "_id_"}


def _patterns(fields: tuple[str, ...]) -> set[tuple[tuple[str, int], ...]]:
    return {((f, 1), ("_id", 1)) for f in fields}


async def test_indexed_fields_answer_the_same_pages(store: Store) -> None:
    rm = store.read_models
    await rm.ensure_indexes(C, ["number", "status"])
    await rm.ensure_indexes(C, ["number", "status"])  # again: nothing changes
    await rm.write(
        C,
        [
            (f"k{n:02d}", {"number": f"N-{n}", "status": "paid" if n % 3 else "new"})
            for n in range(30)
        ],
    )
    assert [r["_id"] for r in await rm.query(C, filters={"number": "N-17"}, limit=5)] == ["k17"]
    new = await rm.query(C, filters={"status": "new"}, limit=4)
    assert [r["_id"] for r in new] == ["k00", "k03", "k06", "k09"]
    rest = await rm.query(C, filters={"status": "new"}, limit=100, after="k09")
    assert [r["_id"] for r in rest] == ["k12", "k15", "k18", "k21", "k24", "k27"]
    await rm.write(C, [("k17", {"number": "N-170", "status": "new"}), ("k03", None)])
    assert await rm.query(C, filters={"number": "N-17"}, limit=5) == []
    found = await rm.query(C, filters={"number": "N-170", "status": "new"}, limit=5)
    assert found == [{"_id": "k17", "number": "N-170", "status": "new"}]


async def test_a_fresh_collection_indexed_and_swapped_in_empty_empties_the_live_one(
    store: Store,
) -> None:
    """A rebuild makes its indexes before any row: a rebuild of no rows still replaces the
    live rows (with none), as when the fresh collection was never made."""
    rm = store.read_models
    await rm.write(C, [("old", {"status": "paid"})])
    await rm.ensure_indexes(C + "__rebuild", ["status"])
    await rm.swap(C + "__rebuild", C)
    assert await rm.query(C, filters={}, limit=10) == []
    assert await rm.query(C, filters={"status": "paid"}, limit=10) == []


async def test_mongodb_keeps_an_index_of_each_field_in_key_order_and_swaps_it_in() -> None:
    store = await open_test_store("mongo")
    assert isinstance(store, MongoStore)
    try:
        rm = store.read_models
        await rm.ensure_indexes(C, ["number", "customer.id"])
        assert await _indexed(store, C) == _patterns(("number", "customer.id"))
        await rm.ensure_indexes(C, ["number"])
        assert await _indexed(store, C) == _patterns(("number", "customer.id"))
        await rm.write(C + "__rebuild", [("a", {"number": "N-1"})])
        await rm.ensure_indexes(C + "__rebuild", ["status"])
        await rm.swap(C + "__rebuild", C)
        assert await _indexed(store, C) == _patterns(("status",))
        assert await rm.get_many(C, ["a"]) == {"a": {"_id": "a", "number": "N-1"}}
    finally:
        await store.close()


def test_the_order_models_index_what_their_rows_are_found_by() -> None:
    assert BY_NAME["order_summary"].indexes == (
        "number",
        "entity_key",
        "status",
        "currency",
        "deleted",
    )
    assert BY_NAME["orders_by_status"].indexes == ()  # one row per status: nothing to find
    # an erased order's aggregate rows are found by `held_from` (`order_forget`)
    assert BY_NAME["revenue_by_day"].indexes == ("day", "currency", "held_from")
    assert BY_NAME["customer_totals"].indexes == ("customer", "name", "name_from", "held_from")
    for name in ("revenue_by_day", "customer_totals"):
        model = BY_NAME[name]
        assert model.forget is not None and model.forget_typed
        found = model.forget("orders", "str:o1")  # forget_typed: a typed key
        assert found is not None
        filters = [found[0]] if isinstance(found[0], dict) else list(found[0])
        assert filters and all(set(f) <= set(model.indexes) for f in filters)


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_runner_indexes_the_live_rows_and_a_rebuild_keeps_them(workers: int) -> None:
    store = await open_test_store("mongo")
    assert isinstance(store, MongoStore)
    clock = FakeClock()
    try:
        await workload(store, clock, changes=40)
        for projection in ORDER_PROJECTIONS:
            runner = ProjectionRunner(store, projection, clock=clock)
            await runner.catch_up()
            followed = await rows(store, projection)
            assert await _indexed(store, projection.collection) == _patterns(projection.indexes)
            # a rebuild swaps in a fresh collection: the indexes were made on it first
            await store.db[projection.collection].drop_indexes()
            runner.processes = False
            assert await runner.lease.try_acquire()
            await runner.rebuild(workers=workers)
            await runner.hand_back()
            assert await _indexed(store, projection.collection) == _patterns(projection.indexes)
            assert await rows(store, projection) == followed
    finally:
        await store.close()


async def test_the_runner_makes_the_indexes_once() -> None:
    store = await open_test_store("mongo")
    assert isinstance(store, MongoStore)
    clock = FakeClock()
    made: list[tuple[str, tuple[str, ...]]] = []
    ensure = store.read_models.ensure_indexes

    async def counted(collection: str, fields: Any) -> None:
        made.append((collection, tuple(fields)))
        await ensure(collection, fields)

    store.read_models.ensure_indexes = counted  # type: ignore[method-assign]
    try:
        await workload(store, clock, changes=10)
        runner = ProjectionRunner(store, BY_NAME["order_summary"], clock=clock, batch_size=5)
        await runner.catch_up()
        await runner.catch_up()
        assert made == [("rm_order_summary", BY_NAME["order_summary"].indexes)]
    finally:
        await store.close()


def _plugin(**fields: Any) -> Projection:
    return Projection(
        name="per_actor",
        collection="rm_per_actor",
        keys=lambda change: [str(change.event.actor)],
        apply=lambda rows, change: [Write(key=str(change.event.actor), row={"n": 1})],
        **fields,
    )


@pytest.mark.parametrize(
    ("indexes", "message"),
    [
        ("actor", "indexes must be a tuple of field names, not str"),
        (("actor", ""), "indexes: '' is not a field path"),
        (("$actor",), "indexes: '$actor' is not a field path"),
        (("a..b",), "indexes: 'a..b' is not a field path"),
        (("a.$b",), "indexes: 'a.$b' is not a field path"),
        (("a\x00",), "indexes: 'a\\x00' is not a field path"),
        (("a.",), "indexes: 'a.' is not a field path"),
        ((1,), "indexes: 1 is not a field path"),
        (("_id",), "indexes: _id is the rows' key, indexed already"),
        (("actor", "actor"), "indexes names a field twice"),
        (tuple(f"f{n}" for n in range(MAX_INDEXES + 1)), "indexes names 17 fields; at most 16"),
    ],
)
def test_a_plugins_indexes_that_are_not_field_paths_are_refused(
    indexes: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(monkeypatch, _plugin(indexes=indexes))
    with pytest.raises(PluginError) as raised:
        load_plugins(["shop_indexes:PER_ACTOR"], entry_points=[])
    assert message in str(raised.value)
    assert str(raised.value).startswith("projection plugin 'shop_indexes:PER_ACTOR' (per_actor): ")


def test_a_plugins_field_paths_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for fine in [(), ("actor",), ["actor", "day"], ("customer.id", "a b", "é")]:
        assert indexes_problem(fine) is None
    _module(monkeypatch, _plugin(indexes=("actor", "customer.id")))
    loaded = load_plugins(["shop_indexes:PER_ACTOR"], entry_points=[])
    assert [p.indexes for p in loaded] == [("actor", "customer.id")]


def _module(monkeypatch: pytest.MonkeyPatch, projection: Projection) -> None:
    """A module `shop_indexes` whose PER_ACTOR is this projection (imported as any other)."""
    module = types.ModuleType("shop_indexes")
    module.PER_ACTOR = projection  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shop_indexes", module)
