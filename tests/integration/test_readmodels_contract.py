"""The ReadModels port, over both adapters."""

from __future__ import annotations

import itertools
from typing import Any

from bson import Decimal128
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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
    # A key filter holds with a page's start too (the start does not replace it).
    assert await rm.query(C, filters={"_id": "k3"}, limit=10, after="k1") == [
        {"_id": "k3", "status": "paid", "n": 3}
    ]
    assert await rm.query(C, filters={"_id": "k3"}, limit=10, after="k3") == []
    assert await rm.query(C, filters={"_id": "k3", "status": "pending"}, limit=10) == []
    assert await rm.query(C, filters={"_id": "nope"}, limit=10) == []
    # A row without the filtered field does not match, whatever its key.
    await rm.write(C, [("paid", {"n": 8})])
    assert [r["_id"] for r in await rm.query(C, filters={"status": "paid"}, limit=10)] == [
        "k1",
        "k3",
        "k5",
    ]


async def test_a_rare_value_is_found_as_rows_change_around_it(store: Store) -> None:
    """Lookups by a value few rows hold (an order number): the memory adapter answers them
    from an index of the field, kept up to date by every write after its first filter."""
    rm = store.read_models
    table = "rm_lookup"
    rows: dict[str, dict[str, Any]] = {
        f"k{n:03d}": {"number": f"N-{n}", "status": "paid"} for n in range(200)
    }
    rows["k900"] = {"number": {"odd": "shape"}, "status": "paid"}  # a value no hash holds
    rows["k901"] = {"status": "paid"}  # no number at all
    await rm.write(table, list(rows.items()))

    async def found(value: Any, **more: Any) -> list[str]:
        page = await rm.query(table, filters={"number": value, **more}, limit=10)
        assert all(r == {"_id": r["_id"], **rows[r["_id"]]} for r in page)
        return [r["_id"] for r in page]

    assert await found("N-7") == ["k007"]
    assert await found("N-7", status="paid") == ["k007"]
    assert await found("N-7", status="new") == []
    assert await found({"odd": "shape"}) == ["k900"]
    assert await found("N-999") == []
    # A row changes its number, another takes the old one, one is deleted, one re-added.
    rows["k007"] = {"number": "N-1007", "status": "paid"}
    rows["k150"] = {"number": "N-7", "status": "new"}
    await rm.write(table, [("k007", rows["k007"]), ("k150", rows["k150"])])
    await rm.write(table, [("k008", None)])
    del rows["k008"]
    rows["k999"] = {"number": "N-7", "status": "paid"}
    await rm.write(table, [("k999", rows["k999"])])
    assert await found("N-7") == ["k150", "k999"]
    assert await found("N-1007") == ["k007"]
    assert await found("N-8") == []
    page = await rm.query(table, filters={"number": "N-7"}, limit=1, after="k150")
    assert [r["_id"] for r in page] == ["k999"]
    # A dense value still pages in key order.
    paid = await rm.query(table, filters={"status": "paid"}, limit=3, after="k005")
    assert [r["_id"] for r in paid] == ["k006", "k007", "k009"]


async def test_a_filter_matches_an_array_field_by_an_element_as_mongodb_does(
    store: Store,
) -> None:
    """`{field: v}` finds the rows whose field is `v` or an array holding `v` (MongoDB's
    match of an array; an erasure finds the aggregate rows holding an order's data by
    their `held_from` array), and a whole array matches that array; on the memory adapter
    through its index of the field as the rows change, elements included."""
    rm = store.read_models
    table = "rm_arrays"
    rows: dict[str, dict[str, Any]] = {
        f"k{n:03d}": {"held_from": [f"o{n}", f"o{n + 1}"]} for n in range(100)
    }
    rows["k500"] = {"held_from": "o7"}  # the value itself
    rows["k501"] = {"held_from": []}
    rows["k502"] = {"held_from": [["o7"], {"o": 7}]}  # elements that cannot be hashed
    await rm.write(table, list(rows.items()))

    async def found(value: Any) -> list[str]:
        page = await rm.query(table, filters={"held_from": value}, limit=200)
        return [r["_id"] for r in page]

    assert await found("o7") == ["k006", "k007", "k500"]
    assert await found(["o7", "o8"]) == ["k007"]
    assert await found(["o7"]) == ["k502"]  # an element that is that array
    assert await found([]) == ["k501"]
    assert await found("o999") == []
    # rows change: an element goes, another row takes it, a row is deleted
    await rm.write(table, [("k006", {"held_from": ["o6"]}), ("k050", {"held_from": ["o7"]})])
    await rm.write(table, [("k500", None)])
    assert await found("o7") == ["k007", "k050"]
    assert await found("o50") == ["k049"] and await found("o51") == ["k051"]  # k050's left
    page = await rm.query(table, filters={"held_from": "o7"}, limit=1, after="k007")
    assert [r["_id"] for r in page] == ["k050"]


async def test_a_filter_on_a_path_reaches_into_documents_and_arrays_as_mongodb_does(
    store: Store,
) -> None:
    """`{"sub.k": v}` finds the rows whose sub-document `sub` holds `k: v`, and through an
    array each element's `k` (`items.sku`), or one position's (`items.1.sku`). A plugin's
    `forget` by `customer.id` had found no row on the
    memory adapter (an outside tester), where MongoDB finds them."""
    rm = store.read_models
    table = "rm_paths"
    rows: dict[str, dict[str, Any]] = {
        f"k{n:03d}": {"sub": {"k": f"a{n % 50}"}, "items": [{"sku": f"s{n}"}, {"sku": "x"}]}
        for n in range(100)
    }
    rows["k500"] = {"sub": {"k": ["a7", "b"]}}  # an array reached: by an element
    rows["k501"] = {"sub": "a7"}  # a scalar on the way: reaches nothing
    rows["k502"] = {"other": 1}
    await rm.write(table, list(rows.items()))

    async def found(**filters: Any) -> list[str]:
        page = await rm.query(table, filters=filters, limit=300)
        return [r["_id"] for r in page]

    assert await found(**{"sub.k": "a7"}) == ["k007", "k057", "k500"]
    assert await found(**{"items.sku": "s42"}) == ["k042"]
    assert await found(**{"items.1.sku": "x"}) == [f"k{n:03d}" for n in range(100)]
    assert await found(**{"items.0.sku": "x"}) == []
    assert await found(**{"items.2.sku": "x"}) == []  # a position past the end: nothing
    assert await found(**{"sub.k": "a7", "items.sku": "s57"}) == ["k057"]
    await rm.write(table, [("k007", {"sub": {"k": "moved"}})])
    assert await found(**{"sub.k": "a7"}) == ["k057", "k500"]


async def test_swap_replaces_the_live_model_whole(store: Store) -> None:
    rm = store.read_models
    await rm.write(C, [("old", {"v": 1})])
    await rm.write(C + "__building", [("new", {"v": 2})])
    await rm.swap(C + "__building", C)
    assert await rm.get_many(C, ["old", "new"]) == {"new": {"_id": "new", "v": 2}}
    assert C + "__building" not in await rm.collections()
    await rm.drop(C)
    assert await rm.get_many(C, ["new"]) == {}


KEYS = st.sampled_from(["k0", "k1", "k2"])
STEP = st.one_of(
    st.tuples(st.just("put"), KEYS, st.sampled_from(["paid", "pending"])),
    st.tuples(st.just("delete"), KEYS, st.none()),
    st.tuples(st.just("query"), st.none() | KEYS, st.sampled_from([None, "paid"])),
)
_tables = itertools.count()


# Two cases the bookkeeping of the memory adapter's key order must get right, always tried:
# a key deleted before it was ever read, then written again (listed once); a key written
# again after its deletion, then most keys deleted (still listed after the compaction).
Step = tuple[str, str | None, str | None]
READDED: list[Step] = [("put", "k0", "paid"), ("put", "k1", "paid"), ("delete", "k1", None)]
READDED += [("query", None, None), ("put", "k1", "paid"), ("query", None, None)]
COMPACTED: list[Step] = [("put", "k0", "paid"), ("put", "k1", "paid"), ("put", "k2", "paid")]
COMPACTED += [("query", None, None), ("delete", "k1", None), ("put", "k1", "pending")]
COMPACTED += [("delete", "k0", None), ("delete", "k2", None), ("query", None, None)]


@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=60), limit=st.integers(1, 5))
@example(steps=READDED, limit=5)
@example(steps=COMPACTED, limit=5)
async def test_pages_agree_with_the_rows_written_whatever_the_order_of_writes(
    store: Store, steps: list[Step], limit: int
) -> None:
    """Writes, deletes and re-writes between pages: every page is the model's, in key order."""
    rm, table = store.read_models, f"rm_prop_{next(_tables)}"
    model: dict[str, str] = {}
    for op, key, value in steps:
        if op == "put":
            assert key is not None and value is not None
            await rm.write(table, [(key, {"status": value})])
            model[key] = value
        elif op == "delete":
            assert key is not None
            await rm.write(table, [(key, None)])
            model.pop(key, None)
        else:
            filters: dict[str, Any] = {} if value is None else {"status": value}
            page = await rm.query(table, filters=filters, limit=limit, after=key)
            wanted = [
                {"_id": k, "status": v}
                for k, v in sorted(model.items())
                if (key is None or k > key) and (value is None or v == value)
            ]
            assert page == wanted[:limit]
