"""The MerkleTree contract, run over every adapter (memory, mongo on mongomock-motor)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from eventstore.merkle import Frontier, inclusion_plan, leaf_hash
from eventstore.model import TreeCheckpoint
from eventstore.ports import Store

WHEN = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def checkpoint(size: int, **changes: object) -> TreeCheckpoint:
    fields: dict[str, object] = {
        "size": size,
        "root": "AAAA",
        "note": f"eventstore/test\n{size}\nAAAA\n",
        "signed": False,
        "created_at": WHEN,
    }
    fields.update(changes)
    return TreeCheckpoint(**fields)  # type: ignore[arg-type]


async def test_an_empty_tree_has_size_zero_and_no_nodes(store: Store) -> None:
    assert await store.merkle.size() == 0
    assert await store.merkle.get_nodes({(0, 0), (3, 1)}) == {}
    assert await store.merkle.checkpoint() is None


async def test_nodes_round_trip_by_level_and_index_in_one_query(store: Store) -> None:
    frontier = Frontier()
    created = []
    for i in range(37):
        created.extend(frontier.append(leaf_hash(hashlib.sha256(bytes([i])).digest())))
    await store.merkle.put_nodes(created, size=37)
    assert await store.merkle.size() == 37
    plan = inclusion_plan(20, 37)
    before = store.merkle.queries
    nodes = await store.merkle.get_nodes(plan.node_ids())
    assert store.merkle.queries == before + 1
    assert set(nodes) == plan.node_ids()
    expected = {(lv, ix): h for lv, ix, h in created}
    assert all(nodes[i] == expected[i] for i in nodes)
    # The biggest level a 2**48-leaf log reaches still round-trips.
    await store.merkle.put_nodes([(47, 1, b"\x07" * 32)], size=37)
    assert await store.merkle.get_nodes([(47, 1)]) == {(47, 1): b"\x07" * 32}


async def test_rewriting_nodes_is_idempotent_and_the_size_never_shrinks(store: Store) -> None:
    await store.merkle.put_nodes([(0, 0, b"\x01" * 32)], size=1)
    await store.merkle.put_nodes([(0, 0, b"\x01" * 32), (0, 1, b"\x02" * 32)], size=2)
    await store.merkle.put_nodes([], size=1)
    assert await store.merkle.size() == 2
    assert await store.merkle.get_nodes([(0, 0), (0, 1)]) == {
        (0, 0): b"\x01" * 32,
        (0, 1): b"\x02" * 32,
    }


async def test_checkpoints_by_size_and_latest(store: Store) -> None:
    assert await store.merkle.add_checkpoint(checkpoint(3))
    assert await store.merkle.add_checkpoint(checkpoint(10, signed=True, note="x\n"))
    assert not await store.merkle.add_checkpoint(checkpoint(3, note="other\n"))
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.size == 10 and latest.signed and latest.note == "x\n"
    third = await store.merkle.checkpoint(3)
    assert third == checkpoint(3, created_at=datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC))
    assert await store.merkle.checkpoint(4) is None


async def test_checkpoints_list_by_size_in_pages(store: Store) -> None:
    assert await store.merkle.checkpoints() == []
    for size in (40, 3, 17, 100, 5):  # made out of order: listed by size
        assert await store.merkle.add_checkpoint(checkpoint(size))
    sizes = [c.size for c in await store.merkle.checkpoints()]
    assert sizes == [3, 5, 17, 40, 100]
    first = await store.merkle.checkpoints(limit=2)
    assert [c.size for c in first] == [3, 5]
    assert [c.size for c in await store.merkle.checkpoints(after=5, limit=2)] == [17, 40]
    assert [c.size for c in await store.merkle.checkpoints(after=40)] == [100]
    assert [c.size for c in await store.merkle.checkpoints(after=4)] == [5, 17, 40, 100]
    assert await store.merkle.checkpoints(after=100) == []
    assert await store.merkle.checkpoints(limit=0) == []
    assert first[0] == await store.merkle.checkpoint(3)


async def test_cosignatures_are_added_once(store: Store) -> None:
    await store.merkle.add_checkpoint(checkpoint(5))
    await store.merkle.add_cosignature(5, "— w1 AAAA")
    await store.merkle.add_cosignature(5, "— w1 AAAA")
    await store.merkle.add_cosignature(5, "— w2 BBBB")
    await store.merkle.add_cosignature(6, "— w2 BBBB")
    found = await store.merkle.checkpoint(5)
    assert found is not None and found.cosignatures == ["— w1 AAAA", "— w2 BBBB"]
    assert await store.merkle.checkpoint(6) is None


async def test_a_node_stored_again_with_another_hash_is_replaced_and_new_ones_kept(
    store: Store,
) -> None:
    # A batch redone after a crash (or a tree rebuilt over a rewritten log) meets
    # nodes already stored: the new write wins, and the nodes around it are stored too.
    await store.merkle.put_nodes([(0, 0, b"\x01" * 32), (0, 1, b"\x02" * 32)], size=2)
    await store.merkle.put_nodes(
        [(0, 1, b"\x09" * 32), (0, 2, b"\x03" * 32), (1, 0, b"\x04" * 32)], size=3
    )
    assert await store.merkle.size() == 3
    assert await store.merkle.get_nodes([(0, 0), (0, 1), (0, 2), (1, 0)]) == {
        (0, 0): b"\x01" * 32,
        (0, 1): b"\x09" * 32,
        (0, 2): b"\x03" * 32,
        (1, 0): b"\x04" * 32,
    }


async def test_truncate_forgets_the_nodes_past_a_size_and_lowers_it(store: Store) -> None:
    frontier = Frontier()
    created = frontier.extend([leaf_hash(bytes([i]) * 32) for i in range(37)])
    await store.merkle.put_nodes(created, size=37)
    await store.merkle.put_nodes([(47, 1, b"\x07" * 32)], size=37)  # far past any size
    await store.merkle.truncate(21)
    assert await store.merkle.size() == 21
    everything = {(lv, ix) for lv, ix, _ in created} | {(47, 1)}
    kept = await store.merkle.get_nodes(everything)
    assert set(kept) == {(lv, ix) for lv, ix in everything if (ix + 1) << lv <= 21}
    assert Frontier.from_store(21, kept).root() == root_of_first(created, 21)
    await store.merkle.truncate(30)  # never raises the size
    assert await store.merkle.size() == 21
    await store.merkle.truncate(0)
    assert await store.merkle.size() == 0 and await store.merkle.get_nodes(everything) == {}


def root_of_first(created: list[tuple[int, int, bytes]], size: int) -> bytes:
    frontier = Frontier()
    frontier.extend([h for lv, _, h in created if lv == 0][:size])
    return frontier.root()
