"""The ReadModels port, over both adapters."""

from __future__ import annotations

from bson import Decimal128

from eventstore.ports import Store

C = "rm_test"


async def test_bulk_upsert_get_delete(store: Store) -> None:
    rm = store.read_models
    await rm.write(
        C, [("a", {"n": 1, "total": Decimal128("1.50")}), ("b", {"n": 2}), ("c", {"n": 3})]
    )
    await rm.write(C, [("a", {"n": 10, "total": Decimal128("2.00")}), ("b", None)])
    rows = await rm.get_many(C, ["a", "b", "c", "zz"])
    assert rows == {
        "a": {"_id": "a", "n": 10, "total": Decimal128("2.00")},
        "c": {"_id": "c", "n": 3},
    }
    assert await rm.get_many(C, []) == {}


async def test_query_filters_pages_in_key_order(store: Store) -> None:
    rm = store.read_models
    await rm.write(
        C, [(f"k{n}", {"status": "paid" if n % 2 else "pending", "n": n}) for n in range(7)]
    )
    paid = await rm.query(C, filters={"status": "paid"}, limit=2)
    assert [r["_id"] for r in paid] == ["k1", "k3"]
    rest = await rm.query(C, filters={"status": "paid"}, limit=10, after="k3")
    assert [r["_id"] for r in rest] == ["k5"]
    assert len(await rm.query(C, filters={}, limit=100)) == 7
    assert await rm.query(C, filters={"_id": "k3"}, limit=10) == [
        {"_id": "k3", "status": "paid", "n": 3}
    ]


async def test_swap_replaces_the_live_model_whole(store: Store) -> None:
    rm = store.read_models
    await rm.write(C, [("old", {"v": 1})])
    await rm.write(C + "__building", [("new", {"v": 2})])
    await rm.swap(C + "__building", C)
    assert await rm.get_many(C, ["old", "new"]) == {"new": {"_id": "new", "v": 2}}
    assert C + "__building" not in await rm.collections()
    await rm.drop(C)
    assert await rm.get_many(C, ["new"]) == {}
