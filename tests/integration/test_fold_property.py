"""Property: folding the recorded events gives, at every version, exactly what MongoDB held.

Random documents and random update sequences are applied for real to a
mongomock collection through the memory feed; each change becomes an event
(the ingester's own Capture) and is folded. After every write the folded state
must equal the document read back. (The memory feed and the fold are written by
the same team: the hand-written forms in tests/unit/test_fold.py cover what the
feed never produces.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.capture import Capture
from eventstore.clock import FakeClock
from eventstore.fold import Fold
from eventstore.model import ChangeEvent, Head
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed

# At least 500 generated sequences in every run, CI included (about 10 s here).
EXAMPLES = 500

small = st.integers(min_value=-5, max_value=50)
scalar = st.one_of(small, st.sampled_from(["a", "b", "", "x.y"]), st.booleans(), st.none())
leaf = st.one_of(small, st.sampled_from(["a", "b"]))

documents = st.fixed_dictionaries(
    {
        "n": small,
        "s": st.fixed_dictionaries({"x": leaf, "1": leaf}),
        "arr": st.lists(small, max_size=4),
        "objs": st.lists(st.fixed_dictionaries({"q": small, "tag": leaf}), min_size=1, max_size=3),
    },
    optional={"opt": scalar},
)

SET_PATHS = ["s.x", "s.1", "s.new.deep", "objs.0.q", "objs.0.tag", "opt", "fresh", "arr"]
UNSET_PATHS = ["s.x", "s.1", "objs.0.tag", "opt", "arr", "s"]

operations = st.one_of(
    st.tuples(
        st.just("set"), st.sampled_from(SET_PATHS), st.one_of(scalar, st.lists(small, max_size=3))
    ),
    st.tuples(st.just("set_many"), st.sampled_from(["s.x", "opt"]), leaf),
    st.tuples(st.just("unset"), st.sampled_from(UNSET_PATHS), st.none()),
    st.tuples(st.just("inc"), st.just("n"), st.integers(-3, 3)),
    st.tuples(st.just("push"), st.just("arr"), small),
    st.tuples(st.just("push_each"), st.just("arr"), st.lists(small, max_size=3)),
    st.tuples(st.just("push_obj"), st.just("objs"), small),
    st.tuples(st.just("pull"), st.just("arr"), small),
    st.tuples(st.just("pop"), st.just("arr"), st.sampled_from([1, -1])),
    st.tuples(st.just("set_index"), st.just("arr"), small),
    st.tuples(st.just("append_index"), st.just("arr"), small),
    st.tuples(st.just("slice"), st.just("arr"), st.integers(0, 3)),
    st.tuples(st.just("replace"), st.just(""), documents),
    st.tuples(st.just("recreate"), st.just(""), documents),
)


async def _apply(coll: Any, op: str, path: str, value: Any) -> None:
    """One write, as an application would make it (shapes mongomock runs like MongoDB)."""
    f = {"_id": 1}
    current = await coll.find_one(f)
    if op == "recreate":
        if current is not None:
            await coll.delete_one(f)
        await coll.insert_one({"_id": 1, **value})
        return
    if current is None:
        await coll.insert_one(
            {"_id": 1, **value} if op == "replace" else {"_id": 1, "n": 0, "arr": []}
        )
        return
    arr = current.get("arr")
    if op in (
        "push",
        "push_each",
        "pull",
        "pop",
        "set_index",
        "append_index",
        "slice",
    ) and not isinstance(arr, list):
        await coll.update_one(f, {"$set": {"arr": []}})
        return
    if op == "set":
        await coll.update_one(f, {"$set": {path: value}})
    elif op == "set_many":
        await coll.update_one(f, {"$set": {path: value, "n2": value}})
    elif op == "unset":
        await coll.update_one(f, {"$unset": {path: ""}})
    elif op == "inc":
        if not isinstance(current.get("n"), int) or isinstance(current.get("n"), bool):
            await coll.update_one(f, {"$set": {"n": 0}})
        else:
            await coll.update_one(f, {"$inc": {"n": value}})
    elif op == "push":
        await coll.update_one(f, {"$push": {"arr": value}})
    elif op == "push_each":
        await coll.update_one(f, {"$push": {"arr": {"$each": value}}})
    elif op == "push_obj":
        if isinstance(current.get("objs"), list):
            await coll.update_one(f, {"$push": {"objs": {"q": value}}})
    elif op == "pull":
        await coll.update_one(f, {"$pull": {"arr": value}})
    elif op == "pop":
        await coll.update_one(f, {"$pop": {"arr": value}})
    elif op == "set_index" and arr:
        await coll.update_one(f, {"$set": {"arr.0": value}})
    elif op == "append_index":
        await coll.update_one(f, {"$set": {f"arr.{len(arr)}": value}})
    elif op == "slice":
        await coll.update_one(f, [{"$set": {"arr": {"$slice": ["$arr", value]}}}])
    elif op == "replace":
        await coll.replace_one(f, value)


async def _check(doc: dict[str, Any], ops: list[tuple[str, str, Any]]) -> None:
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    coll = feed.collection("orders")
    capture = Capture(Settings(), Head())
    capture.add_heads("orders", [1], {})
    folder = Fold()
    seen = 0
    await coll.insert_one({"_id": 1, **doc})
    for step in [None, *ops]:
        if step is not None:
            await _apply(coll, *step)
        while seen < feed.position:
            seen += 1
            entry = feed.entry_at(seen)
            assert entry is not None
            folder.apply(capture.entity_change(ChangeEvent.from_bson(entry.event), now=clock.now()))
        expected = await coll.find_one({"_id": 1})
        assert folder.state == expected, (step, folder.state, expected)
        assert not folder.findings, folder.findings


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, ops=st.lists(operations, min_size=1, max_size=6))
def test_folded_state_equals_the_document_after_every_write(
    doc: dict[str, Any], ops: list[tuple[str, str, Any]]
) -> None:
    asyncio.run(_check(doc, ops))
