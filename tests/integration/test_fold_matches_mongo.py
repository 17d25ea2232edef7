"""Property: the fold of the recorded events is, at every version, the document mongomock holds.

Random documents (nested sub-documents, numeric-looking field names, arrays of
scalars, of sub-documents and of arrays) and random write sequences are made
through the memory change feed: operator updates at nested and array-index
paths (several operators in one update), positional updates, pipeline updates
(`$slice` truncations, `$literal` rewrites, `$project` exclusions),
replacements, deletes and re-inserts of the same `_id`. The changes are read
from the feed's change stream (pre-images on), turned into events by the
ingester's `Capture`, stored and read back as BSON, and folded.

The expected document is independent of all that: each write is also made,
as is, on a real mongomock-motor collection (`REFERENCE`) through mongomock's
own collection code, next to other documents, with no eventstore code on the
way. After every write the folded state, and the document the feed holds, must
be identical to the reference's: same values, same BSON types, float bits and
field order. (The feed itself applies a write with mongomock's operators to
the one document it addresses; the fold only ever sees the events.)

Only writes that mongomock performs as MongoDB does are generated: no `$mul`,
`$bit`, `$[]`, array filters or pipeline `$unset`; no `$set` past an array's
end (only the append index, and only as the last component); no `$unset` of an
array element; `$pull` and `$addToSet` on top-level arrays only; `$rename` of
top-level fields only; no path through a scalar.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import bson
from bson import Decimal128, Int64, ObjectId
from bson.codec_options import CodecOptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongomock_motor import AsyncMongoMockClient

from eventstore.capture import Capture
from eventstore.clock import FakeClock
from eventstore.codec import event_doc, event_from_doc
from eventstore.diff import diff
from eventstore.fold import Fold, fold
from eventstore.model import CREATED, DELETED, REPLACED, UPDATED, ChangeEvent, Event, Head
from eventstore.settings import Settings
from eventstore.sources.feed_collection import FeedCollection
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.update_description import describe_update

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[T]], T]
Path = tuple[str | int, ...]
Nodes = list[tuple[Path, Any]]

# At least 500 sequences in every run; a profile asking for more gets more. Mutation
# testing (HYPOTHESIS_PROFILE=mutation) runs this once per mutant of the fold: 50 there.
_PROFILE = settings.default
_FLOOR: Final = 50 if os.environ.get("HYPOTHESIS_PROFILE") == "mutation" else 500
EXAMPLES: Final = max(_FLOOR, _PROFILE.max_examples if _PROFILE is not None else 0)
DB: Final = "fold_matches_mongo"
COLL: Final = "orders"
STORED: Final[CodecOptions[dict[str, Any]]] = CodecOptions(document_class=dict, tz_aware=True)

# The reference: one client for the module; each example drops the collection.
_CLIENT: Final[Any] = AsyncMongoMockClient(tz_aware=True)
# Documents of other `_id`s in the reference collection: the reference's writes
# select their document among several, as a real collection's do.
BYSTANDERS: Final = [{"_id": "bystander-1", "n": 1}, {"_id": "bystander-2", "arr": [1, 2]}]

# -- documents ------------------------------------------------------------------------------

TOP_KEYS: Final = ["n", "s", "arr", "items", "m", "7"]
SUB_KEYS: Final = ["x", "y", "1", "0", "10"]
IDS: Final = st.sampled_from([1, "k-1", ObjectId("65a1b2c3d4e5f60718293a4b"), {"a": 1, "b": "x"}])
# Bit-distinct floats matter: MongoDB compares values by their bytes (0.0 vs -0.0).
FLOATS: Final = [0.0, -0.0, 1.5, 2.0, -3.25]
DATES: Final = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
    datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC),
]

ints = st.integers(min_value=-3, max_value=20)
scalars = st.one_of(
    ints,
    st.sampled_from(FLOATS),
    st.sampled_from([Int64(7), Int64(-1)]),
    st.sampled_from(["", "a", "1", "a.b", "$x"]),
    st.booleans(),
    st.none(),
    st.sampled_from(DATES),
    st.just(Decimal128("1.10")),
    st.just(ObjectId("65a1b2c3d4e5f60718293a4c")),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(SUB_KEYS), inner, max_size=3),
    ),
    max_leaves=5,
)
item = st.fixed_dictionaries(
    {
        "q": ints,
        # Long values make a cut plus element paths smaller than the whole new array:
        # the feed then reports `truncatedArrays` (as MongoDB's delta does).
        "note": st.sampled_from(["a note long enough to matter", "another long note, for size"]),
    },
    optional={
        "t": st.lists(ints, max_size=3),
        "1": scalars,
        "sub": st.dictionaries(st.sampled_from(SUB_KEYS), scalars, max_size=2),
    },
)


def _arrays(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Short arrays, often of several elements (something to cut)."""
    return st.one_of(st.lists(elements, max_size=1), st.lists(elements, min_size=2, max_size=4))


documents = st.fixed_dictionaries(
    {},
    optional={
        "n": ints,
        "s": st.dictionaries(st.sampled_from(SUB_KEYS), values, max_size=3),
        "arr": _arrays(st.one_of(ints, scalars)),
        "items": _arrays(item),
        "m": _arrays(st.lists(st.one_of(ints, st.just("a long array element")), max_size=3)),
        "7": values,
    },
)


# -- reading a document ---------------------------------------------------------------------


def _walk(value: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every nested value with its path (the document's `_id` excluded)."""
    if isinstance(value, dict):
        for key, child in value.items():
            if prefix or key != "_id":
                yield (*prefix, key), child
                yield from _walk(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (*prefix, i), child
            yield from _walk(child, (*prefix, i))


def _dotted(path: Path) -> str:
    return ".".join(str(c) for c in path)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float, Int64)


def _conflicts(path: Path, taken: list[Path]) -> bool:
    """True when `path` and a taken path are equal or one contains the other (MongoDB refuses)."""
    mine = [str(c) for c in path]
    for other in taken:
        theirs = [str(c) for c in other]
        n = min(len(mine), len(theirs))
        if mine[:n] == theirs[:n]:
            return True
    return False


def identical(a: Any, b: Any) -> bool:
    """The same BSON value: same types, field order and float bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


# -- writes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One write of the sequence: `kind` is insert, update, replace or delete."""

    kind: str
    filter: dict[str, Any]
    arg: Any = None


class _Clauses:
    """The clauses of one operator update, kept free of conflicting paths."""

    def __init__(self) -> None:
        self.update: dict[str, dict[str, Any]] = {}
        self.taken: list[Path] = []

    def add(self, op: str, path: Path, arg: Any, *also: Path) -> None:
        if any(_conflicts(p, self.taken) for p in (path, *also)):
            return
        self.taken += [path, *also]
        self.update.setdefault(op, {})[_dotted(path)] = arg


def _new_key(draw: Draw[Any], container: dict[str, Any], pool: list[str]) -> str | None:
    free = [k for k in pool if k not in container]
    return draw(st.sampled_from(free)) if free else None


def _clause(draw: Draw[Any], doc: dict[str, Any], out: _Clauses) -> None:
    """Add one operator clause that mongomock applies as MongoDB does (or nothing)."""
    nodes: Nodes = list(_walk(doc))
    dicts: Nodes = [((), doc)] + [(p, v) for p, v in nodes if isinstance(v, dict)]
    arrays: Nodes = [(p, v) for p, v in nodes if isinstance(v, list)]
    numbers: Nodes = [(p, v) for p, v in nodes if _is_number(v)]
    named: Nodes = [(p, v) for p, v in nodes if isinstance(p[-1], str)]  # parent: a sub-document
    top_arrays: Nodes = [(p, v) for p, v in arrays if len(p) == 1]
    kinds = ["set_new", "set_deep", "unset_missing", "inc_new", "push_new"]
    if nodes:
        kinds += ["set", "set", "same"]
    if named:
        kinds += ["unset", "unset"]
    if numbers:
        kinds += ["inc", "inc", "min_max"]
    if arrays:
        kinds += ["append", "append", "push", "push", "push_each", "push_mod", "pop"]
    if top_arrays:
        kinds += ["pull", "add_to_set"]
    if len(doc) > 1:
        kinds += ["rename"]
    kind = draw(st.sampled_from(kinds))

    def pick(candidates: Nodes) -> tuple[Path, Any]:
        return candidates[int(draw(st.integers(0, len(candidates) - 1)))]

    if kind == "set":
        out.add("$set", pick(nodes)[0], draw(values))
    elif kind == "same":  # the value it has: a no-op, no event
        path, value = pick(nodes)
        out.add("$set", path, copy.deepcopy(value))
    elif kind in ("set_new", "set_deep", "unset_missing", "inc_new", "push_new"):
        path, container = pick(dicts)
        key = _new_key(draw, container, TOP_KEYS if not path else SUB_KEYS)
        if key is None:
            return
        target = (*path, key)
        if kind == "set_new":
            out.add("$set", target, draw(values))
        elif kind == "set_deep":  # missing sub-documents are created, "1" as a field name
            out.add("$set", (*target, draw(st.sampled_from(SUB_KEYS))), draw(values))
        elif kind == "unset_missing":
            out.add("$unset", target, "")
        elif kind == "inc_new":
            out.add("$inc", target, draw(ints))
        else:
            out.add("$push", target, draw(scalars))
    elif kind == "unset":
        out.add("$unset", pick(named)[0], "")
    elif kind == "inc":
        amount = draw(st.one_of(st.integers(-2, 2), st.sampled_from([0.5, -0.0])))
        out.add("$inc", pick(numbers)[0], amount)
    elif kind == "min_max":
        out.add(draw(st.sampled_from(["$min", "$max"])), pick(numbers)[0], draw(ints))
    elif kind == "append":  # $set at index == length appends
        path, array = pick(arrays)
        out.add("$set", (*path, len(array)), draw(values))
    elif kind == "push":
        out.add("$push", pick(arrays)[0], draw(values))
    elif kind == "push_each":
        out.add("$push", pick(arrays)[0], {"$each": draw(st.lists(scalars, max_size=3))})
    elif kind == "push_mod":
        path, array = pick(arrays)
        spec: dict[str, Any] = {"$each": draw(st.lists(ints, max_size=3))}
        if draw(st.booleans()):
            spec["$position"] = draw(st.integers(0, len(array)))
        if draw(st.booleans()):
            spec["$slice"] = draw(st.integers(-3, 3))
        if all(type(v) in (int, Int64) for v in array) and draw(st.booleans()):
            spec["$sort"] = draw(st.sampled_from([1, -1]))
        out.add("$push", path, spec)
    elif kind == "pop":
        out.add("$pop", pick(arrays)[0], draw(st.sampled_from([1, -1])))
    elif kind == "pull":
        path, array = pick(top_arrays)
        present = [v for v in array if not (isinstance(v, dict) and "q" not in v)]
        if present and draw(st.booleans()):
            element = draw(st.sampled_from(present))
            condition = {"q": element["q"]} if isinstance(element, dict) else element
        else:
            condition = {"$in": draw(st.lists(ints, max_size=2))}
        out.add("$pull", path, condition)
    elif kind == "add_to_set":
        path, _ = pick(top_arrays)
        added = draw(st.one_of(ints, st.builds(lambda v: {"$each": v}, st.lists(ints, max_size=2))))
        out.add("$addToSet", path, added)
    else:  # rename a top-level field, onto a new name or over another field
        source = draw(st.sampled_from([k for k in doc if k != "_id"]))
        target = draw(st.sampled_from([k for k in TOP_KEYS if k != source]))
        out.add("$rename", (source,), target, (target,))


def _operator_update(draw: Draw[Any], doc: dict[str, Any]) -> dict[str, Any]:
    clauses = _Clauses()
    for _ in range(draw(st.integers(1, 3))):
        _clause(draw, doc, clauses)
    return clauses.update


def _mutated(draw: Draw[Any], value: Any, depth: int = 0) -> Any:
    """A changed copy of `value`: cut, edited, extended, sometimes with its fields reordered."""
    if isinstance(value, list) and depth < 3:
        new = list(value)
        if new and draw(st.booleans()):
            new = new[: draw(st.integers(0, len(new) - 1))]  # a truncation
        if new and draw(st.booleans()):
            i = draw(st.integers(0, len(new) - 1))
            new[i] = _mutated(draw, new[i], depth + 1)
        if draw(st.booleans()):
            new.append(draw(values))
        return new
    if isinstance(value, dict) and depth < 3:
        new_doc = dict(value)
        if new_doc and draw(st.booleans()):
            del new_doc[draw(st.sampled_from(sorted(new_doc)))]
        if new_doc and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(new_doc)))
            new_doc[key] = _mutated(draw, new_doc[key], depth + 1)
        key = _new_key(draw, value, SUB_KEYS)
        if key is not None and draw(st.booleans()):
            new_doc[key] = draw(values)
        order = draw(st.sampled_from(["kept"] * 4 + ["moved", "new first"]))
        if order == "moved" and len(new_doc) > 1:  # a field moved to the end
            moved = draw(st.sampled_from(list(new_doc)[:-1]))
            new_doc[moved] = new_doc.pop(moved)
        elif order == "new first" and key is not None and key in new_doc:
            new_doc = {key: new_doc.pop(key), **new_doc}
        return new_doc
    return draw(values)


def _pipeline(draw: Draw[Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A pipeline update: `$slice` cuts, `$literal` rewrites, `$project` exclusions."""
    stages: list[dict[str, Any]] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 2))):
        free = [k for k in TOP_KEYS if k not in used]
        arrays = [k for k in free if isinstance(doc.get(k), list)]
        long = [k for k in arrays if len(doc[k]) > 1]
        kinds = ["literal", "literal"] + (["slice", "slice"] if arrays else [])
        kinds += ["cut_edit"] * 3 if long else []
        if any(k in doc for k in free):
            kinds.append("project")
        kind = draw(st.sampled_from(kinds))
        if kind == "slice":
            name = draw(st.sampled_from(arrays))
            size = draw(st.integers(0, len(doc[name])))
            stage: dict[str, Any] = {"$set": {name: {"$slice": [f"${name}", size]}}}
            if draw(st.booleans()) and len(free) > 1:  # and a rewrite in the same stage
                other = draw(st.sampled_from([k for k in free if k != name]))
                stage["$set"][other] = {"$literal": _mutated(draw, doc.get(other))}
                used.add(other)
        elif kind == "cut_edit":  # a shorter array whose kept elements changed inside
            name = draw(st.sampled_from(long))
            kept = list(doc[name][: draw(st.integers(1, len(doc[name]) - 1))])
            i = draw(st.integers(0, len(kept) - 1))
            kept[i] = _mutated(draw, kept[i])
            stage = {"$set": {name: {"$literal": kept}}}
        elif kind == "literal":
            name = draw(st.sampled_from(free))
            if isinstance(doc.get(name), dict) and draw(st.booleans()):
                key = draw(st.sampled_from(SUB_KEYS))  # a dotted $set into a sub-document
                old = doc[name].get(key)
                stage = {"$set": {f"{name}.{key}": {"$literal": _mutated(draw, old)}}}
            else:
                stage = {"$set": {name: {"$literal": _mutated(draw, doc.get(name))}}}
        else:
            name = draw(st.sampled_from([k for k in free if k in doc]))
            field = name
            if isinstance(doc[name], dict) and doc[name] and draw(st.booleans()):
                field = f"{name}.{draw(st.sampled_from(sorted(doc[name])))}"
            stage = {"$project": {field: 0}}
        used.add(name)
        stages.append(stage)
    return stages


def _positional(draw: Draw[Any], doc: dict[str, Any], doc_id: Any) -> Write | None:
    """`items.$.<field>` updates of the first element matching the filter."""
    arrays = [
        k
        for k, v in doc.items()
        if isinstance(v, list) and v and all(isinstance(e, dict) for e in v)
    ]
    if not arrays:
        return None
    name = draw(st.sampled_from(arrays))
    element = draw(st.sampled_from(doc[name]))
    keys = [k for k, v in element.items() if v is not None and not isinstance(v, (dict, list))]
    if not keys:
        return None
    key = draw(st.sampled_from(keys))
    flt = {"_id": doc_id, f"{name}.{key}": element[key]}
    field = draw(st.sampled_from([*SUB_KEYS, "q", "t"]))
    ops = ["$set", "$set", "$unset", "$set whole"]
    # The element matched is the first one equal to the filter: $inc only what is a number in all.
    if all(field not in e or _is_number(e[field]) for e in doc[name]):
        ops.append("$inc")
    op = draw(st.sampled_from(ops))
    if op == "$set whole":  # the whole element: the first one matching the filter
        first = next(e for e in doc[name] if identical(e.get(key), element[key]))
        return Write("update", flt, {"$set": {f"{name}.$": _mutated(draw, first)}})
    arg: Any = {"$set": values, "$unset": st.just(""), "$inc": ints}[op]
    return Write("update", flt, {op: {f"{name}.$.{field}": draw(arg)}})


def draw_write(draw: Draw[Any], doc_id: Any, doc: dict[str, Any] | None) -> Write:
    """The next write, chosen to fit the document as it is now (None: there is none)."""
    key = {"_id": doc_id}
    if doc is None:
        return Write("insert", key, {"_id": doc_id, **draw(documents)})
    kind = draw(
        st.sampled_from(
            ["operators"] * 6 + ["pipeline"] * 3 + ["positional"] * 2 + ["replace", "delete"]
        )
    )
    if kind == "positional":
        write = _positional(draw, doc, doc_id)
        if write is not None:
            return write
        kind = "operators"
    if kind == "operators":
        update = _operator_update(draw, doc)
        return Write("update", key, update) if update else Write("delete", key)
    if kind == "pipeline":
        return Write("update", key, _pipeline(draw, doc))
    if kind == "replace":
        body = {k: v for k, v in doc.items() if k != "_id"}
        new = _mutated(draw, body) if draw(st.booleans()) else draw(documents)
        return Write("replace", key, new)
    return Write("delete", key)


async def perform(coll: FeedCollection | Any, write: Write) -> None:
    """Make the write on a collection: the feed's, or the reference mongomock-motor one."""
    if write.kind == "insert":
        await coll.insert_one(copy.deepcopy(write.arg))
    elif write.kind == "update":
        await coll.update_one(write.filter, copy.deepcopy(write.arg))
    elif write.kind == "replace":
        await coll.replace_one(write.filter, copy.deepcopy(write.arg))
    else:
        await coll.delete_one(write.filter)


def stored(event: Event) -> Event:
    """The event as the store gives it back: encoded to BSON and decoded."""
    raw = bson.decode(bson.encode(event_doc(event)), codec_options=STORED)
    return event_from_doc(dict(raw))


# -- the property ---------------------------------------------------------------------------


# The event types a write may record (MongoDB may log an update as a replacement).
RECORDS: Final = {
    "insert": {CREATED},
    "update": {UPDATED, REPLACED},
    "replace": {REPLACED},
    "delete": {DELETED},
}


async def check_sequence(data: st.DataObject) -> None:
    """Draw and make the writes; after each, the fold must be the document read back."""
    await _CLIENT[DB].drop_collection(COLL)
    reference = _CLIENT[DB][COLL]
    await reference.insert_many(copy.deepcopy(BYSTANDERS))
    clock = FakeClock()
    feed = MemoryChangeFeed(db_name=DB, clock=clock)
    feed.enable_pre_images(COLL)
    coll = feed.collection(COLL)
    capture = Capture(Settings(), Head())
    folder = Fold()
    doc_id = data.draw(IDS, label="_id")
    events: list[Event] = []
    # Every state the fold returned, with a copy taken at the time: older states stay valid.
    states: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    current: dict[str, Any] | None = None
    writes = data.draw(st.integers(1, 8), label="writes after the insert")
    source = feed.source([COLL], pre_images="whenAvailable", max_await=0)
    async with source.watch(None) as stream:
        for step in range(writes + 1):
            write = draw_write(data.draw, doc_id, current)
            data.draw(st.just(write), label=f"write {step}")  # shown when the property fails
            await perform(coll, write)
            await perform(reference, write)
            after = await reference.find_one({"_id": doc_id})
            held = await coll.find_one({"_id": doc_id})
            assert (held is None and after is None) or identical(held, after), (write, held, after)
            batch = await stream.next_batch()
            assert batch is not None
            changed = not (current is not None and after is not None and identical(current, after))
            assert len(batch.changes) == (1 if changed else 0), (write, batch.changes)
            for raw in batch.changes:
                change = ChangeEvent.from_bson(raw)
                assert capture.wants(change)
                event = stored(capture.entity_change(change, now=clock.now()))
                assert event.type in RECORDS[write.kind], (write, event.type)
                events.append(event)
                folder.apply(event)
                states.append((folder.state, copy.deepcopy(folder.state)))
            assert identical(folder.state, after), (
                f"after {write}:\nfolded  {folder.state}\nreference {after}\n"
                f"differs at {[c.path for c in diff(folder.state, after)] or 'field order'}\n"
                f"events {[(e.type, e.changes or e.document) for e in events]}"
            )
            assert folder.findings == [], folder.findings
            assert folder.version == len(events)
            current = after
    result = fold(events)
    assert identical(result.state, current)
    assert result.findings == []
    for state, snapshot in states:
        assert identical(state, snapshot), "a later fold changed an earlier state"
    others = await reference.find({"_id": {"$ne": doc_id}}).to_list(None)
    assert others == BYSTANDERS  # the reference's writes touched their own document only


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_folded_state_is_the_mongomock_document_after_every_write(data: st.DataObject) -> None:
    asyncio.run(check_sequence(data))


# -- regressions ----------------------------------------------------------------------------


def _recorded(feed: MemoryChangeFeed) -> tuple[list[dict[str, Any]], Fold]:
    """The feed's changes, and their events (stored and read back) folded."""
    capture, folder, clock = Capture(Settings(), Head()), Fold(), FakeClock()
    changes = []
    for position in range(1, feed.position + 1):
        entry = feed.entry_at(position)
        assert entry is not None
        changes.append(entry.event)
        folder.apply(
            stored(capture.entity_change(ChangeEvent.from_bson(entry.event), now=clock.now()))
        )
    return changes, folder


def _sign(value: float) -> float:
    return math.copysign(1.0, value)


async def test_a_write_that_only_flips_the_sign_of_zero_is_recorded_and_folded() -> None:
    # MongoDB compares a value with its update by its bytes: -0.0 over 0.0 is a change.
    feed = MemoryChangeFeed()
    coll = feed.collection(COLL)
    await coll.insert_one({"_id": 1, "f": 0.0, "arr": [-0.0]})
    await coll.update_one({"_id": 1}, {"$set": {"f": -0.0}})
    await coll.update_one({"_id": 1}, {"$inc": {"arr.0": 0}})  # -0.0 + 0 is +0.0
    after_updates = await coll.find_one({"_id": 1})
    await coll.replace_one({"_id": 1}, {"f": 0.0, "arr": [0.0]})
    changes, folder = _recorded(feed)
    assert [c["operationType"] for c in changes] == ["insert", "update", "update", "replace"]
    updated = [c["updateDescription"]["updatedFields"] for c in changes[1:3]]
    assert updated == [{"f": -0.0}, {"arr.0": 0.0}]
    assert [_sign(updated[0]["f"]), _sign(updated[1]["arr.0"])] == [-1.0, 1.0]
    assert after_updates is not None and _sign(after_updates["f"]) == -1.0
    after = await coll.find_one({"_id": 1})
    assert after is not None and folder.state is not None
    assert identical(folder.state, after) and _sign(folder.state["f"]) == 1.0
    assert folder.findings == []


async def test_a_write_of_the_same_bits_records_nothing() -> None:
    feed = MemoryChangeFeed()
    coll = feed.collection(COLL)
    await coll.insert_one({"_id": 1, "f": -0.0, "nan": float("nan")})
    await coll.update_one({"_id": 1}, {"$set": {"f": -0.0, "nan": float("nan")}})
    await coll.update_one({"_id": 1}, {"$inc": {"f": -0.0}})  # -0.0 + -0.0 is -0.0
    assert feed.position == 1


async def test_a_sub_document_whose_fields_changed_order_is_reported_whole() -> None:
    # A path cannot move a field: reported by paths, the fold would keep the old order.
    feed = MemoryChangeFeed()
    coll = feed.collection(COLL)
    long_note = "a note long enough to make paths cheaper than the whole"
    items = [{"q": 1, "note": long_note}, {"q": 2, "note": long_note}]
    await coll.insert_one({"_id": 1, "s": {"x": 1, "y": 2, "z": long_note}, "items": items})
    await coll.update_one(
        {"_id": 1, "items.q": 2}, {"$set": {"items.$": {"note": long_note, "q": 5}}}
    )
    await coll.update_one(
        {"_id": 1}, [{"$set": {"s": {"$literal": {"x": 1, "z": long_note, "y": 5}}}}]
    )
    await coll.update_one(
        {"_id": 1}, [{"$set": {"s": {"$literal": {"w": 0, "x": 1, "z": long_note, "y": 5}}}}]
    )
    changes, folder = _recorded(feed)
    assert [c["updateDescription"]["updatedFields"] for c in changes[1:]] == [
        {"items.1": {"note": long_note, "q": 5}},
        {"s": {"x": 1, "z": long_note, "y": 5}},
        {"s": {"w": 0, "x": 1, "z": long_note, "y": 5}},
    ]
    after = await coll.find_one({"_id": 1})
    assert after is not None and identical(folder.state, after)
    assert list(after["s"]) == ["w", "x", "z", "y"] and list(after["items"][1]) == ["note", "q"]
    assert folder.findings == []


def test_a_pipeline_that_reorders_top_level_fields_is_a_replacement() -> None:
    before = {"_id": 1, "a": 1, "b": "a long enough value"}
    after = {"_id": 1, "b": "a long enough value", "a": 2}
    assert describe_update(before, after, [{"$project": {"_id": 1, "b": 1, "a": 1}}]) is None
    kept = {"_id": 1, "a": 2, "b": "a long enough value"}  # same change, same order
    assert describe_update(before, kept, [{"$set": {"a": 2}}]) == {
        "updatedFields": {"a": 2},
        "removedFields": [],
        "truncatedArrays": [],
        "disambiguatedPaths": {},
    }
