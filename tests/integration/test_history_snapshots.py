"""What a reconstruction costs: store reads counted, snapshots laid lazily, snapshots never trusted blindly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import eventstore.history as history_module
from eventstore.diff import FieldChange
from eventstore.fold import fold
from eventstore.history import (
    History,
    HistoryError,
    UnknownEntity,
    UnknownStream,
    UnknownVersion,
)
from eventstore.memory.store import MemoryStore
from eventstore.model import GENESIS_HASH, EntitySnapshot, Event
from eventstore.ports import Store
from eventstore.settings import Settings
from tests.helpers import READS, LogBuilder

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


class CountingReads:
    """Counts the store reads (queries) and the events they return."""

    def __init__(self, store: Store) -> None:
        self.queries = 0
        self.events_read = 0
        self.names: list[str] = []
        for port_name, methods in READS.items():
            port = getattr(store, port_name)
            for name in methods:
                setattr(port, name, self._counted(name, getattr(port, name)))

    def _counted(self, name: str, fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            self.queries += 1
            self.names.append(name)
            result = await fn(*a, **kw)
            if name == "read_entity":
                self.events_read += len(result)
            return result

        return wrapper

    def reset(self) -> None:
        self.queries = self.events_read = 0
        self.names = []


def forged_at(version: int) -> EntitySnapshot:
    """A snapshot of entity 1 at `version` whose event hash matches no event."""
    return EntitySnapshot(
        stream="orders",
        entity_id=1,
        entity_key="1",
        version=version,
        occurred_at=at(version),
        exists=True,
        document={"_id": 1, "n": "forged"},
        event_hash="f" * 64,
    )


def with_a_conflict_at(bad: int, *, versions: int) -> list[Event]:
    """`build(versions)`, but version `bad` sets a field under the scalar `n` (a finding)."""
    log = LogBuilder()
    events = [log.next(1, occurred_at=at(1), document={"_id": 1, "n": 1})]
    for v in range(2, versions + 1):
        field = "n.x" if v == bad else "n"
        changes = {"updatedFields": {field: v}, "removedFields": [], "truncatedArrays": []}
        events.append(log.next(1, occurred_at=at(v), changes=changes))
    return events


def stale_of(
    events: list[Event], entity_id: Any, *, next_version: int | None = None
) -> EntitySnapshot:
    """A true snapshot at version 10 of these events (linking to `next_version`, if given)."""
    return EntitySnapshot(
        stream="orders",
        entity_id=entity_id,
        entity_key=str(entity_id),
        version=10,
        occurred_at=at(10),
        exists=True,
        document=fold(events[:10]).state,
        event_hash=events[9].hash,
        next_version=next_version,
    )


def at(n: int) -> datetime:
    """The time of version n in `entity`'s log: one second apart."""
    return T0 + timedelta(seconds=n)


def build(versions: int, entity_id: Any = 1) -> list[Event]:
    """One entity's `versions` events: created, then `n` counting up, one second apart."""
    log = LogBuilder()
    events = [log.next(entity_id, occurred_at=at(1), document={"_id": entity_id, "n": 1})]
    for v in range(2, versions + 1):
        changes = {"updatedFields": {"n": v}, "removedFields": [], "truncatedArrays": []}
        events.append(log.next(entity_id, occurred_at=at(v), changes=changes))
    return events


async def entity(store: Store, versions: int, entity_id: Any = 1) -> list[Event]:
    """`build`, stored."""
    events = build(versions, entity_id)
    await store.events.append(events)
    return events


async def chain(store: Store, entity_id: Any = 1) -> list[tuple[int, int | None]]:
    """(version, next_version) of every stored snapshot of the entity, newest first."""
    out: list[tuple[int, int | None]] = []
    bound: int | None = None
    while (s := await store.snapshots.latest("orders", entity_id, max_version=bound)) is not None:
        out.append((s.version, s.next_version))
        if s.version == 0:
            break
        bound = s.version - 1
    return out


async def test_a_version_costs_two_queries_cold_or_warm(store: Store) -> None:
    await entity(store, 60)
    h = History(store, snapshot_every=10)
    counter = CountingReads(store)
    cold = await h.state("orders", "int:1", version=60)
    assert cold.document == {"_id": 1, "n": 60}
    assert (counter.queries, counter.names) == (2, ["latest", "read_entity"])
    # the cold read laid every tenth version, linked from a version-0 snapshot
    counter.reset()
    assert await chain(store) == [
        (60, None),
        (50, 60),
        (40, 50),
        (30, 40),
        (20, 30),
        (10, 20),
        (0, 10),
    ]
    for version in (7, 10, 33, 47, 60):
        counter.reset()
        state = await h.state("orders", "int:1", version=version)
        assert state.document == {"_id": 1, "n": version}
        assert counter.queries == 2
        assert counter.events_read <= 10  # from the snapshot's own event to the target


async def test_a_diff_of_a_version_with_itself_costs_one_reconstruction(store: Store) -> None:
    await entity(store, 25)
    h = History(store, snapshot_every=10)
    await h.ensure_snapshots("orders", 1)
    counter = CountingReads(store)
    same = await h.diff("orders", "int:1", 17, 17)
    assert (same.from_version, same.to_version, same.changes) == (17, 17, [])
    assert counter.names == ["latest", "read_entity"]
    counter.reset()
    apart = await h.diff("orders", "int:1", 17, 18)
    assert apart.changes == [FieldChange(path="n", op="changed", before=17, after=18, parts=("n",))]
    assert counter.names == ["latest", "read_entity"] * 2


async def test_a_time_costs_two_queries_and_reads_at_most_one_interval(store: Store) -> None:
    await entity(store, 95)
    h = History(store, snapshot_every=10)
    await h.state("orders", "int:1", at=at(1))  # reads the stream's gaps once (cached)
    counter = CountingReads(store)
    # no snapshots yet: the rest of the entity is read once, and the snapshots laid
    first = await h.state("orders", "int:1", at=at(23) + timedelta(milliseconds=500))
    assert (first.version, first.document) == (23, {"_id": 1, "n": 23})
    assert counter.queries == 2
    for version in (1, 9, 10, 11, 44, 90, 94, 95):
        for t in (at(version), at(version) + timedelta(milliseconds=999)):
            counter.reset()
            state = await h.state("orders", "int:1", at=t)
            assert (state.version, state.as_of) == (version, at(version))
            assert state.document == {"_id": 1, "n": version}
            assert counter.queries == 2, (version, counter.names)
            # between two snapshots: up to and including the next one's event
            assert counter.events_read <= 11
    counter.reset()
    future = await h.state("orders", "int:1", at=at(10_000))
    assert future.version == 95 and counter.queries == 2 and counter.events_read <= 6


async def test_a_key_that_can_name_one_value_costs_no_lookup(store: Store) -> None:
    await entity(store, 30, entity_id="ORD-1")
    h = History(store, snapshot_every=10)
    await h.state("orders", "ORD-1")
    counter = CountingReads(store)
    await h.state("orders", "ORD-1", version=25)
    assert counter.queries == 2
    counter.reset()
    page = await h.history("orders", "str:ORD-1", from_version=21, limit=5)
    assert [e.event.version for e in page.events] == [21, 22, 23, 24, 25] and page.next == "25"
    assert counter.queries == 2 and counter.events_read <= 16


async def test_a_bare_key_that_may_name_several_types_is_looked_up_first(store: Store) -> None:
    await entity(store, 12, entity_id=42)
    h = History(store, snapshot_every=10)
    counter = CountingReads(store)
    assert (await h.state("orders", "42", version=12)).document == {"_id": 42, "n": 12}
    assert counter.names == ["existing_entity_ids", "latest", "read_entity"]


async def test_new_events_extend_the_snapshot_chain(store: Store) -> None:
    events = build(41)
    await store.events.append(events[:25])
    h = History(store, snapshot_every=10)
    assert await h.ensure_snapshots("orders", 1) == 25
    assert await chain(store) == [(20, None), (10, 20), (0, 10)]
    await store.events.append(events[25:])
    latest = await h.state("orders", "int:1")
    assert latest.document == {"_id": 1, "n": 41}
    assert await chain(store) == [(40, None), (30, 40), (20, 30), (10, 20), (0, 10)]
    await h.state("orders", "int:1", at=at(1))  # the stream's gaps, read once and cached
    counter = CountingReads(store)
    assert (await h.state("orders", "int:1", at=at(35))).version == 35
    assert counter.queries == 2 and counter.events_read <= 11


async def test_ensure_snapshots_reads_only_what_follows_the_newest_snapshot(store: Store) -> None:
    events = build(41)
    await store.events.append(events[:25])
    h = History(store, snapshot_every=10)
    counter = CountingReads(store)
    assert await h.ensure_snapshots("orders", 1) == 25
    assert counter.names == ["latest", "read_entity"] and counter.events_read == 25
    await store.events.append(events[25:])
    counter.reset()
    assert await h.ensure_snapshots("orders", 1) == 41
    # from the newest snapshot's own event (20) on: 22 events, not 41
    assert counter.names == ["latest", "read_entity"] and counter.events_read == 22
    assert await chain(store) == [(40, None), (30, 40), (20, 30), (10, 20), (0, 10)]
    for v in (20, 30, 40):
        laid = await store.snapshots.latest("orders", 1, max_version=v)
        assert laid is not None and laid.document == fold(events[:v]).state
        assert laid.event_hash == events[v - 1].hash
    counter.reset()
    assert await h.ensure_snapshots("orders", 1) == 41  # nothing new: nothing laid
    assert counter.events_read == 2


async def test_ensure_snapshots_reads_in_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "_PAGE", 7)
    events = await entity(store, 21)  # three full pages: the fourth read finds nothing
    h = History(store, snapshot_every=5)
    counter = CountingReads(store)
    assert await h.ensure_snapshots("orders", 1) == 21
    assert counter.names == ["latest"] + ["read_entity"] * 4 and counter.events_read == 21
    assert await chain(store) == [(20, None), (15, 20), (10, 15), (5, 10), (0, 5)]
    for v in (5, 10, 15, 20):
        laid = await store.snapshots.latest("orders", 1, max_version=v)
        assert laid is not None and laid.document == fold(events[:v]).state


async def test_ensure_snapshots_past_a_snapshot_that_does_not_match_still_reads_in_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "_PAGE", 7)
    events = await entity(store, 21)
    await store.snapshots.put_many([forged_at(10)])
    counter = CountingReads(store)
    assert await History(store, snapshot_every=5).ensure_snapshots("orders", 1) == 21
    # the newest snapshot, its page (not continued: versions 10-16), then the whole log
    # from version 1 in pages of 7 (the fourth finds nothing)
    assert counter.names == ["latest"] + ["read_entity"] * 5
    assert counter.events_read == 7 + 21
    healed = await store.snapshots.latest("orders", 1, max_version=10)
    assert healed is not None and healed.document == fold(events[:10]).state


async def test_ensure_snapshots_continues_from_a_snapshot_of_version_one_in_one_read(
    store: Store,
) -> None:
    events = build(3)
    await store.events.append(events[:1])
    h = History(store, snapshot_every=1)
    assert await h.ensure_snapshots("orders", 1) == 1
    await store.events.append(events[1:])
    counter = CountingReads(store)
    assert await h.ensure_snapshots("orders", 1) == 3
    assert counter.names == ["latest", "read_entity"] and counter.events_read == 3
    assert await chain(store) == [(3, None), (2, 3), (1, 2), (0, 1)]


async def test_a_snapshot_past_the_end_of_the_log_is_not_trusted(store: Store) -> None:
    """A snapshot newer than every stored event (forged, or the log was cut) is ignored."""
    events = await entity(store, 12)
    await store.snapshots.put_many([forged_at(20)])
    h = History(store, snapshot_every=5)
    state = await h.state("orders", "int:1")
    assert (state.version, state.document) == (12, {"_id": 1, "n": 12})
    assert await h.ensure_snapshots("orders", 1) == 12
    laid = await store.snapshots.latest("orders", 1, max_version=10)
    assert laid is not None and laid.document == fold(events[:10]).state


async def test_ensure_snapshots_continues_from_a_deleted_state_without_refolding_it(
    store: Store,
) -> None:
    log = LogBuilder()
    events = [log.next("D"), log.next("D", type="deleted"), log.next("D", **_doc("again"))]
    events.append(log.next("D"))
    await store.events.append(events[:2])
    h = History(store, snapshot_every=2)
    assert await h.ensure_snapshots("orders", "D") == 2
    await store.events.append(events[2:])
    assert await h.ensure_snapshots("orders", "D") == 4
    laid = await store.snapshots.latest("orders", "D", max_version=4)
    assert laid is not None and laid.version == 4
    assert laid.document == fold(events).state and fold(events).findings == []
    assert laid.findings == []


async def test_ensure_snapshots_of_an_entity_without_events_lays_nothing(store: Store) -> None:
    await entity(store, 3)
    assert await History(store, snapshot_every=2).ensure_snapshots("orders", 2) == 0
    assert await chain(store, 2) == []


async def test_a_forged_version_zero_snapshot_is_not_trusted(store: Store) -> None:
    events = await entity(store, 12)
    forged = EntitySnapshot(
        stream="orders",
        entity_id=1,
        entity_key="1",
        version=0,
        occurred_at=at(0),
        exists=True,
        document={"_id": 1, "n": "forged"},
        event_hash="f" * 64,
        findings=[{"version": 0, "kind": "forged", "detail": "planted"}],
    )
    await store.snapshots.put_many([forged])
    h = History(store, snapshot_every=5)
    assert await h.ensure_snapshots("orders", 1) == 12
    for v in (5, 10):
        laid = await store.snapshots.latest("orders", 1, max_version=v)
        assert laid is not None and laid.document == fold(events[:v]).state
        assert laid.findings == []
    state = await h.state("orders", "int:1", version=12)
    assert (state.document, state.findings) == ({"_id": 1, "n": 12}, [])


async def test_a_snapshot_that_does_not_match_the_log_is_ignored_and_healed(
    store: Store,
) -> None:
    await entity(store, 30)
    h = History(store, snapshot_every=10)
    await h.ensure_snapshots("orders", 1)
    forged = forged_at(20)
    await store.snapshots.put_many([forged])
    counter = CountingReads(store)
    state = await h.state("orders", "int:1", version=25)
    assert state.document == {"_id": 1, "n": 25}
    assert counter.queries == 3  # the snapshot, its range, then the whole entity
    assert counter.events_read == 6 + 25  # versions 20-25, then 1-25: never past the version
    healed = await store.snapshots.latest("orders", 1, max_version=20)
    assert healed is not None and healed.document == {"_id": 1, "n": 20}
    assert healed.event_hash != forged.event_hash
    counter.reset()
    assert (await h.state("orders", "int:1", version=25)).document == {"_id": 1, "n": 25}
    assert counter.queries == 2


async def test_a_link_to_a_snapshot_that_is_gone_does_not_mislead_a_time(store: Store) -> None:
    events = await entity(store, 30)
    # snapshot 10 says snapshot 20 exists; it does not (removed by an operator, say)
    await store.snapshots.put_many([stale_of(events, 1, next_version=20)])
    h = History(store, snapshot_every=10)
    counter = CountingReads(store)
    state = await h.state("orders", "int:1", at=at(27))
    assert (state.version, state.document, state.findings) == (27, {"_id": 1, "n": 27}, [])
    # snapshot 10, versions 10-20, then on from 21 (each event read once, none skipped),
    # then the stream's gaps
    assert counter.names == ["latest", "read_entity", "read_entity", "read_entity"]
    assert counter.events_read == 11 + 10

    for entity_id, ask in ((2, "latest"), (3, "version")):
        # the same stale link on fresh entities
        more = build(30, entity_id)
        await store.events.append(
            [msgspec.structs.replace(e, seq=e.seq + 30 * (entity_id - 1)) for e in more]
        )
        await store.snapshots.put_many(
            [msgspec.structs.replace(stale_of(more, entity_id), next_version=20)]
        )
        if ask == "latest":  # reads past the stale link to the end
            latest = await History(store, snapshot_every=100).state("orders", f"int:{entity_id}")
            assert (latest.version, latest.document) == (30, {"_id": entity_id, "n": 30})
        else:  # a version at the stale link lays the snapshot there
            v20 = await h.state("orders", f"int:{entity_id}", version=20)
            assert v20.document == {"_id": entity_id, "n": 20}
            laid = await store.snapshots.latest("orders", entity_id, max_version=20)
            assert laid is not None and laid.version == 20 and laid.findings == []


async def test_a_version_below_a_snapshot_links_what_it_lays_to_that_snapshot(
    store: Store,
) -> None:
    await entity(store, 35)
    await History(store, snapshot_every=30).ensure_snapshots("orders", 1)
    assert await chain(store) == [(30, None), (0, 30)]
    h = History(store, snapshot_every=10)
    assert (await h.state("orders", "int:1", version=25)).document == {"_id": 1, "n": 25}
    assert await chain(store) == [(30, None), (20, 30), (10, 20), (0, 10)]


async def test_a_time_at_a_stale_link_reads_on_through_versions_in_the_same_millisecond(
    store: Store,
) -> None:
    log = LogBuilder()
    events = [log.next(1, occurred_at=at(1), document={"_id": 1, "n": 1})]
    for v in range(2, 25):
        when = at(20) if v == 21 else at(v)  # versions 20 and 21 in the same millisecond
        changes = {"updatedFields": {"n": v}, "removedFields": [], "truncatedArrays": []}
        events.append(log.next(1, occurred_at=when, changes=changes))
    await store.events.append(events)
    stale = stale_of(events, 1, next_version=20)
    await store.snapshots.put_many([stale])
    state = await History(store, snapshot_every=100).state("orders", "int:1", at=at(20))
    assert (state.version, state.document, state.findings) == (21, {"_id": 1, "n": 21}, [])


async def test_remembered_states_are_not_folded_again_and_the_oldest_is_forgotten_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # version 17 cannot be applied (a field under a scalar): a finding after version 15
    await store.events.append(with_a_conflict_at(17, versions=30))
    applied: list[int] = []
    apply = history_module._Folding.apply

    def counted(self: Any, event: Event) -> None:
        applied.append(event.version)
        apply(self, event)

    monkeypatch.setattr(history_module._Folding, "apply", counted)
    h = History(store, snapshot_every=100, remember=2)
    first = await h.state("orders", "int:1", version=15)
    assert (first.document, first.findings) == ({"_id": 1, "n": 15}, [])
    assert applied == list(range(1, 16))  # folded up to the version asked, not one further
    applied.clear()
    again = await h.state("orders", "int:1", version=15)
    assert (again.document, again.findings, applied) == (first.document, [], [])
    later = await h.state("orders", "int:1", version=20)
    assert [f.version for f in later.findings] == [17]
    await h.state("orders", "int:1", version=15)  # remembered: now the most recent
    applied.clear()
    await h.state("orders", "int:1", version=10)  # a third state: 20, the oldest, is forgotten
    await h.state("orders", "int:1", version=15)
    assert applied == list(range(1, 11))  # 10 folded, 15 still remembered
    applied.clear()
    assert (await h.state("orders", "int:1", version=20)).document == later.document
    assert applied == list(range(1, 21))
    # a time reads on past the version it finds: the fold still stops there
    applied.clear()
    assert (await h.state("orders", "int:1", at=at(12))).version == 12
    assert applied == list(range(1, 13))
    # a remembered state is folded again when this fold would lay a snapshot
    h.snapshot_every = 10
    applied.clear()
    assert (await h.state("orders", "int:1", version=12)).document == {"_id": 1, "n": 12}
    assert applied == list(range(1, 13))
    laid = await store.snapshots.latest("orders", 1, max_version=12)
    assert laid is not None and laid.version == 10
    one = History(store, snapshot_every=100, remember=1)
    await one.state("orders", "int:1", version=5)
    applied.clear()
    await one.state("orders", "int:1", version=5)
    assert applied == []
    none = History(store, snapshot_every=100, remember=0)
    await none.state("orders", "int:1", version=5)
    applied.clear()
    await none.state("orders", "int:1", version=5)
    assert applied == list(range(1, 6))


async def test_a_state_folded_on_to_lay_a_snapshot_keeps_only_the_findings_up_to_it(
    store: Store,
) -> None:
    await store.events.append(with_a_conflict_at(17, versions=20))
    h = History(store, snapshot_every=20)
    state = await h.state("orders", "int:1", at=at(15))  # folds on to 20 to lay its snapshot
    assert (state.version, state.findings) == (15, [])
    laid = await store.snapshots.latest("orders", 1)
    assert laid is not None and laid.version == 20 and [f["version"] for f in laid.findings] == [17]


async def test_a_log_missing_a_version_still_answers_with_a_finding(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version deleted from the log (tampering) is reported, never a crash or a guess."""
    await entity(store, 6)
    read_entity = store.events.read_entity

    async def without_version_3(*args: Any, **kwargs: Any) -> list[Event]:
        return [e for e in await read_entity(*args, **kwargs) if e.version != 3]

    monkeypatch.setattr(store.events, "read_entity", without_version_3)
    h = History(store, snapshot_every=100)
    for _ in range(2):  # the second answer may come from the remembered states
        state = await h.state("orders", "int:1")
        assert (state.version, state.document) == (6, {"_id": 1, "n": 6})
        assert [(f.version, f.kind) for f in state.findings] == [(4, "unexpected_version")]


async def test_a_changed_interval_keeps_every_answer_exact(store: Store) -> None:
    events = await entity(store, 50)
    await History(store, snapshot_every=10).ensure_snapshots("orders", 1)
    h = History(store, snapshot_every=4)
    for v in (3, 13, 27, 44, 50):
        assert (await h.state("orders", "int:1", version=v)).document == fold(events[:v]).state
        assert (await h.state("orders", "int:1", at=at(v))).version == v


async def test_the_version_zero_snapshot_records_the_genesis(store: Store) -> None:
    await entity(store, 10)
    await History(store, snapshot_every=5).state("orders", "int:1")
    genesis = await store.snapshots.latest("orders", 1, max_version=0)
    assert genesis is not None
    assert (genesis.exists, genesis.document, genesis.event_hash, genesis.next_version) == (
        False,
        None,
        GENESIS_HASH,
        5,
    )
    assert (genesis.stream, genesis.entity_id, genesis.entity_key, genesis.version) == (
        "orders",
        1,
        "1",
        0,
    )


async def test_a_version_missing_just_after_a_snapshot_is_still_a_finding(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folding on from a stored snapshot knows its version: a gap right after it is named."""
    await entity(store, 12)
    await History(store, snapshot_every=5).state("orders", "int:1")  # lays 5 and 10
    assert (await chain(store))[:2] == [(10, None), (5, 10)]
    read_entity = store.events.read_entity

    async def without_version_11(*args: Any, **kwargs: Any) -> list[Event]:
        return [e for e in await read_entity(*args, **kwargs) if e.version != 11]

    monkeypatch.setattr(store.events, "read_entity", without_version_11)
    state = await History(store, snapshot_every=5).state("orders", "int:1")
    assert (state.version, state.document) == (12, {"_id": 1, "n": 12})
    assert [(f.version, f.kind, f.detail) for f in state.findings] == [
        (12, "unexpected_version", "expected version 11, got 12")
    ]


@pytest.mark.parametrize("every", [1, 3])
async def test_deleted_states_are_snapshotted_as_deleted(store: Store, every: int) -> None:
    log = LogBuilder()
    events = [log.next("D"), log.next("D", type="deleted"), log.next("D", **_doc("again"))]
    await store.events.append(events)
    h = History(store, snapshot_every=every)
    await h.ensure_snapshots("orders", "D")
    for v, exists in ((1, True), (2, False), (3, True)):
        state = await h.state("orders", "D", version=v)
        assert (state.exists, state.document is not None) == (exists, exists)
        laid = await store.snapshots.latest("orders", "D", max_version=v)
        assert laid is not None
        if laid.version == v:  # the snapshot laid at v says the same, under the entity's key
            assert (laid.entity_key, laid.exists, laid.document is not None) == (
                "D",
                exists,
                exists,
            )


def _doc(status: str) -> dict[str, Any]:
    return {"type": "created", "document": {"_id": "D", "status": status}}


async def test_the_gaps_of_a_stream_are_read_once_while_fresh(store: Store) -> None:
    await entity(store, 5)
    now = [100.0]
    h = History(store, monotonic=lambda: now[0])  # gaps kept 5 s by default
    counter = CountingReads(store)
    await h.state("orders", "int:1", at=at(3))
    assert counter.names == ["latest", "read_entity", "read_entity"]  # the last: `$stream`
    counter.reset()
    await h.state("orders", "int:1", at=at(4))
    assert counter.queries == 2
    now[0] += 5  # exactly the cache's time: still fresh
    counter.reset()
    await h.state("orders", "int:1", at=at(4))
    assert counter.queries == 2
    now[0] += 1  # stale: a gap recorded since would be missed, so read again
    counter.reset()
    await h.state("orders", "int:1", at=at(4))
    assert counter.queries == 3
    counter.reset()
    await h.state("orders", "int:1", version=2)  # a version is never inside a gap
    assert counter.queries == 2


async def test_history_pages_lay_snapshots_below_the_next_existing_one(store: Store) -> None:
    events = await entity(store, 41)
    h = History(store, snapshot_every=10)
    await h.ensure_snapshots("orders", 1)
    links = [(40, None), (30, 40), (20, 30), (10, 20), (0, 10)]
    assert await chain(store) == links
    counter = CountingReads(store)
    written: list[EntitySnapshot] = []
    put_many = store.snapshots.put_many

    async def counted(snapshots: Any, *, session: Any = None) -> None:
        written.extend(snapshots)
        await put_many(snapshots, session=session)

    store.snapshots.put_many = counted  # type: ignore[method-assign]
    page = await h.history("orders", "int:1", from_version=21, limit=15)
    assert [e.event.version for e in page.events] == list(range(21, 36)) and page.next == "35"
    assert written == []  # snapshot 30 exists: not laid again
    # from snapshot 20 (its own event) to one past the page; nothing laid again
    assert counter.names == ["latest", "read_entity"] and counter.events_read == 17
    assert await chain(store) == links
    assert (
        page.events[0].diff
        == [FieldChange(path="n", op="changed", before=20, after=21, parts=("n",))]
        and page.events[0].event == events[20]
    )


async def test_history_pages_lay_the_missing_snapshots_they_fold_through(store: Store) -> None:
    await entity(store, 41)
    h = History(store, snapshot_every=10)
    page = await h.history("orders", "int:1", from_version=31, limit=5)
    assert [e.event.version for e in page.events] == [31, 32, 33, 34, 35]
    assert await chain(store) == [(30, None), (20, 30), (10, 20), (0, 10)]
    laid = await store.snapshots.latest("orders", 1, max_version=30)
    assert laid is not None and laid.document == {"_id": 1, "n": 30}


async def test_a_history_page_past_a_forged_snapshot_is_folded_from_the_first_event(
    store: Store,
) -> None:
    events = await entity(store, 30)
    forged = forged_at(20)
    await store.snapshots.put_many([forged])
    h = History(store, snapshot_every=10)
    page = await h.history("orders", "int:1", from_version=21, limit=3)
    assert [e.event for e in page.events] == events[20:23]
    assert page.events[0].diff == [
        FieldChange(path="n", op="changed", before=20, after=21, parts=("n",))
    ]
    healed = await store.snapshots.latest("orders", 1, max_version=20)
    assert healed is not None and healed.document == {"_id": 1, "n": 20}


def recorded_writes(store: Store) -> list[EntitySnapshot]:
    """The snapshots written from now on, in order."""
    written: list[EntitySnapshot] = []
    put_many = store.snapshots.put_many

    async def recorded(snapshots: Any, *, session: Any = None) -> None:
        written.extend(snapshots)
        await put_many(snapshots, session=session)

    store.snapshots.put_many = recorded  # type: ignore[method-assign]
    return written


async def test_a_history_page_starting_at_or_next_to_a_linked_snapshot_lays_nothing_again(
    store: Store,
) -> None:
    await entity(store, 41)
    h = History(store, snapshot_every=10)
    await h.ensure_snapshots("orders", 1)
    written = recorded_writes(store)
    for start in (29, 30, 31):
        page = await h.history("orders", "int:1", from_version=start, limit=3)
        assert [e.event.version for e in page.events] == [start, start + 1, start + 2]
    assert written == []
    assert await chain(store) == [(40, None), (30, 40), (20, 30), (10, 20), (0, 10)]


async def test_a_history_page_past_a_link_to_a_snapshot_that_is_gone_lays_the_missing_ones(
    store: Store,
) -> None:
    events = await entity(store, 41)
    # snapshot 10 says snapshot 20 exists; it does not (removed by an operator, say)
    stale = stale_of(events, 1, next_version=20)
    await store.snapshots.put_many([stale])
    h = History(store, snapshot_every=10)
    page = await h.history("orders", "int:1", from_version=21, limit=5)
    assert [e.event.version for e in page.events] == [21, 22, 23, 24, 25]
    laid = await store.snapshots.latest("orders", 1, max_version=20)
    assert laid is not None and laid.version == 20 and laid.document == {"_id": 1, "n": 20}
    assert laid.findings == []  # folded on from the snapshot: its own event is not applied twice


async def test_a_history_page_from_a_snapshot_of_version_one_costs_two_queries(
    store: Store,
) -> None:
    await entity(store, 1)
    h = History(store, snapshot_every=1)
    assert await h.ensure_snapshots("orders", 1) == 1
    await store.events.append(build(4)[1:])
    counter = CountingReads(store)
    page = await h.history("orders", "int:1", from_version=2)
    assert [e.event.version for e in page.events] == [2, 3, 4]
    assert counter.names == ["latest", "read_entity"] and counter.events_read == 4


async def test_a_history_page_past_a_forged_snapshot_reads_only_to_the_page_end(
    store: Store,
) -> None:
    await entity(store, 60)
    await store.snapshots.put_many([forged_at(20)])
    counter = CountingReads(store)
    page = await History(store, snapshot_every=100).history(
        "orders", "int:1", from_version=21, limit=5
    )
    assert [e.event.version for e in page.events] == [21, 22, 23, 24, 25] and page.next == "25"
    # the snapshot and its range (versions 20-26), then the entity from version 1 to 26
    assert counter.names == ["latest", "read_entity", "read_entity"]
    assert counter.events_read == 7 + 26
    with pytest.raises(UnknownEntity) as unknown:
        await History(store).history("orders", "int:99")
    assert str(unknown.value) == "no entity 'int:99' in stream 'orders'"


async def test_a_state_at_a_time_folds_on_to_lay_a_snapshot_due_at_the_last_event(
    store: Store,
) -> None:
    events = build(20)
    await store.events.append(events[:10])
    h = History(store, snapshot_every=10)
    assert await h.ensure_snapshots("orders", 1) == 10
    await store.events.append(events[10:])
    state = await h.state("orders", "int:1", at=at(15))
    assert (state.version, state.document) == (15, {"_id": 1, "n": 15})
    # version 20 is the last event read and a multiple of 10: its snapshot is laid now
    assert await chain(store) == [(20, None), (10, 20), (0, 10)]


async def test_a_history_page_holds_a_hundred_events_unless_told(store: Store) -> None:
    await entity(store, 150)
    page = await History(store).history("orders", "int:1")
    assert len(page.events) == 100 and page.next == "100"


async def test_verification_through_history_reads_in_its_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "_PAGE", 4)
    await entity(store, 9)
    h = History(store, streams=["orders", "shipments"])
    counter = CountingReads(store)
    assert (await h.verify_entity("orders", "int:1")).events_checked == 9
    assert counter.names == ["read_entity"] * 3
    counter.reset()
    stream = await h.verify_stream("orders")
    assert (stream.valid, stream.events_checked) == (True, 9)
    assert counter.names == ["read"] * 3
    counter.reset()
    assert (await h.verify_log()).events_checked == 9
    assert counter.names == ["read"] * 3
    with pytest.raises(UnknownStream) as unknown:
        await h.verify_stream("refunds")
    assert str(unknown.value) == "unknown stream 'refunds' (captured: orders, shipments)"


async def test_page_events_and_history_name_a_bad_page(store: Store) -> None:
    await entity(store, 150)
    h = History(store)
    events, more = await h.page_events("orders", "int:1")
    assert [e.version for e in events] == list(range(1, 101)) and more is True
    for kw, message in (
        ({"limit": 0}, f"limit must be between 1 and {history_module.MAX_LIMIT}, got 0"),
        ({"from_version": 0}, "versions start at 1, got from_version 0"),
        ({"after": "x1"}, "malformed page cursor 'x1'"),
    ):
        for read in (h.page_events, h.history):
            with pytest.raises(HistoryError) as bad:
                await read("orders", "int:1", **kw)
            assert str(bad.value) == message


async def test_state_of_an_id_at_a_time_or_a_version(store: Store) -> None:
    await entity(store, 12)
    h = History(store, snapshot_every=5)
    assert (await h.state_of("orders", 1, at=at(7))).version == 7
    assert (await h.state_of("orders", 1, version=3)).document == {"_id": 1, "n": 3}
    assert (await h.state_of("orders", 1)).version == 12
    with pytest.raises(UnknownVersion) as missing:
        await h.state_of("orders", 1, version=13)
    assert str(missing.value) == "'1' has no version 13: its latest is 12"


async def test_a_state_writes_no_snapshot_that_exists_already(store: Store) -> None:
    await entity(store, 41)
    h = History(store, snapshot_every=10)
    await h.ensure_snapshots("orders", 1)
    written: list[EntitySnapshot] = []
    put_many = store.snapshots.put_many

    async def counted(snapshots: Any, *, session: Any = None) -> None:
        written.extend(snapshots)
        await put_many(snapshots, session=session)

    store.snapshots.put_many = counted  # type: ignore[method-assign]
    for v in (25, 35, 41):
        assert (await h.state("orders", "int:1", version=v)).document == {"_id": 1, "n": v}
    assert (await h.state("orders", "int:1", at=at(33))).version == 33
    assert written == []
    assert await chain(store) == [(40, None), (30, 40), (20, 30), (10, 20), (0, 10)]


async def test_a_state_reports_the_findings_up_to_its_version(store: Store) -> None:
    log = LogBuilder()
    events = [log.next(1, document={"_id": 1, "n": 1})]
    # version 2 carries a pre-image the fold does not have: a finding at version 2
    changes = {"updatedFields": {"n": 2}, "removedFields": [], "truncatedArrays": []}
    events.append(log.next(1, changes=changes, before={"_id": 1, "n": 99}))
    events.append(log.next(1, changes={**changes, "updatedFields": {"n": 3}}))
    await store.events.append(events)
    h = History(store, snapshot_every=100)
    assert (await h.state("orders", "int:1", version=1)).findings == []
    at2 = await h.state("orders", "int:1", version=2)
    assert [(f.version, f.kind) for f in at2.findings] == [(2, "pre_image_mismatch")]
    assert [f.version for f in (await h.state("orders", "int:1")).findings] == [2]


async def test_a_state_asked_badly_says_why(store: Store) -> None:
    await entity(store, 3)
    h = History(store)
    with pytest.raises(HistoryError) as both:
        await h.state("orders", "int:1", at=at(2), version=2)
    assert str(both.value) == "give a time or a version, not both"
    with pytest.raises(UnknownVersion) as zero:
        await h.state("orders", "int:1", version=0)
    assert str(zero.value) == "versions start at 1, got 0"


def test_the_history_of_a_deployment_takes_its_settings() -> None:
    settings = Settings(uri="memory://", snapshot_every=7, collections=("orders", "refunds"))
    h = History.from_settings(MemoryStore(), settings)
    assert (h.snapshot_every, sorted(h.streams), h.head_checkpoint) == (
        7,
        ["orders", "refunds"],
        settings.ingester_role,
    )


async def test_a_history_is_built_from_its_settings_or_its_defaults(store: Store) -> None:
    """Snapshots every 100 versions, heads checked against `ingester:shop`, unless told."""
    plain = History(store)
    assert (plain.snapshot_every, plain.head_checkpoint, plain.streams) == (
        100,
        "ingester:shop",
        frozenset(),
    )
    settings = Settings(snapshot_every=7, collections=("orders", "refunds"), source_db="crm")
    told = History.from_settings(store, settings)
    assert (told.snapshot_every, told.head_checkpoint, told.streams) == (
        7,
        "ingester:crm",
        frozenset({"orders", "refunds"}),
    )
    for every in (0, -1):
        with pytest.raises(ValueError, match=r"^snapshot_every must be 1 or more$"):
            History(store, snapshot_every=every)
