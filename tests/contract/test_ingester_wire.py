"""The ingester on the wire: transactions, error 286 and invalidate, against mockupdb.

A scripted replica-set primary answers the store's commands (finding nothing,
accepting writes) and plays a change-stream script; every request is kept so
the tests can assert on exactly what the service sent.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Int64, Timestamp
from mockupdb import MockupDB, Request
from pymongo import AsyncMongoClient

from eventstore.badinput import BadChange, raw_sha256
from eventstore.clock import FakeClock
from eventstore.codec import checkpoint_doc
from eventstore.ingester import Ingester
from eventstore.model import Checkpoint
from eventstore.mongo.store import MongoStore
from eventstore.settings import Settings
from eventstore.sources.mongo import MongoChangeSource
from tests.contract.wire import CURSOR_ID, HELLO, change, stop_quickly, token

EPOCH = Timestamp(1_764_000_000, 5)
ROLE = "ingester:shop"
Step = tuple[str, Any]


class ScriptedPrimary:
    """A replica-set primary whose change stream follows a script and whose store is empty."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Step] = []
        self.checkpoint: dict[str, Any] | None = None
        self.orders: list[dict[str, Any]] = []
        self.live_heads: list[dict[str, Any]] = []
        self.fail: dict[str, dict[str, Any]] = {}
        self.idle_token: dict[str, Any] = token(9999)
        self._lock = threading.Lock()

    def answer(self, request: Request) -> bool:
        name = (request.command_name or "").lower()
        doc = dict(request.doc)
        if name in ("hello", "ismaster"):
            return bool(request.replies({**HELLO, "operationTime": EPOCH}))
        if name == "endsessions":
            return bool(request.replies())
        with self._lock:
            self.requests.append({"name": name, "db": request.namespace, **doc})
        if name in self.fail:
            return bool(request.replies(self.fail.pop(name)))
        if name == "aggregate" and doc["pipeline"] and "$changeStream" in doc["pipeline"][0]:
            return self._stream(request, first=True)
        if name == "getmore":
            return self._stream(request, first=False)
        if name == "find":
            coll = doc["find"]
            batch: list[dict[str, Any]] = []
            if coll == "checkpoints" and self.checkpoint is not None:
                batch = [self.checkpoint]
            elif coll == "orders":
                batch = self.orders
            return bool(
                request.replies(
                    {"cursor": {"id": Int64(0), "ns": f"x.{coll}", "firstBatch": batch}}
                )
            )
        if name == "aggregate":
            batch = self.live_heads if any("$group" in s for s in doc["pipeline"]) else []
            return bool(
                request.replies({"cursor": {"id": Int64(0), "ns": "x.events", "firstBatch": batch}})
            )
        if name == "findandmodify":
            value = {"_id": doc["query"]["_id"], **doc["update"].get("$set", {})}
            return bool(request.replies({"value": value, "lastErrorObject": {"n": 1}}))
        if name == "insert":
            return bool(request.replies({"n": len(doc.get("documents", []))}))
        if name in ("update", "delete"):
            return bool(request.replies({"n": 1, "nModified": 1}))
        return bool(request.replies())

    def _stream(self, request: Request, *, first: bool) -> bool:
        key = "firstBatch" if first else "nextBatch"
        if not self.script:
            cursor = {
                "id": CURSOR_ID,
                "ns": "shop.$cmd.aggregate",
                key: [],
                "postBatchResumeToken": self.idle_token,
            }
            return bool(request.replies({"cursor": cursor}))
        kind, value = self.script.pop(0)
        if kind == "error":
            return bool(request.replies(value))
        changes, post = value
        cursor = {
            "id": CURSOR_ID,
            "ns": "shop.$cmd.aggregate",
            key: changes,
            "postBatchResumeToken": post,
        }
        return bool(request.replies({"cursor": cursor}))

    def named(self, name: str, coll: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r["name"] == name and (coll is None or r.get(name) == coll)
            ]

    def change_streams(self) -> list[dict[str, Any]]:
        return [
            r["pipeline"][0]["$changeStream"]
            for r in self.named("aggregate")
            if "$changeStream" in r["pipeline"][0]
        ]

    def inserted_events(self) -> list[dict[str, Any]]:
        return [d for r in self.named("insert", "events") for d in r["documents"]]


@pytest.fixture
def primary() -> Iterator[tuple[MockupDB, ScriptedPrimary]]:
    scripted = ScriptedPrimary()
    server = MockupDB(request_timeout=5)
    server.autoresponds(scripted.answer)
    server.run()
    try:
        yield server, scripted
    finally:
        stop_quickly(server)


@pytest.fixture
async def store(primary: tuple[MockupDB, ScriptedPrimary]) -> AsyncIterator[MongoStore]:
    server, _ = primary
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri, directConnection=True, serverSelectionTimeoutMS=2000, tz_aware=True
    )
    s = MongoStore(client, "eventstore", owns_client=True)
    await s.detect()
    yield s
    await s.close()


def ingester(store: MongoStore, *, bad_input: str = "stop") -> Ingester:
    settings = Settings(uri="mongodb://x", source="mongo", lease_seconds=10, bad_input=bad_input)
    source = MongoChangeSource(
        store.client, source_db="shop", collections=["orders"], max_await_ms=10
    )
    return Ingester(
        store=store,
        source=source,
        settings=settings,
        clock=FakeClock(datetime(2026, 11, 26, tzinfo=UTC)),
    )


def streaming_checkpoint(last: int) -> dict[str, Any]:
    cp = Checkpoint(name=ROLE, token=token(last), last_cluster_time=Timestamp(1_763_000_000, 1))
    return checkpoint_doc(cp)


async def test_batch_and_checkpoint_commit_in_one_transaction(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    scripted.script = [("batch", ([change(2), change(3)], token(3)))]
    assert store.transactions
    stats = await ingester(store).run(until_idle=True)
    assert stats.recorded == 2

    [insert] = scripted.named("insert", "events")
    update = scripted.named("update", "checkpoints")[0]
    assert [d["_id"] for d in insert["documents"]] == [token(2)["_data"], token(3)["_data"]]
    assert insert["lsid"] == update["lsid"]
    assert insert["txnNumber"] == update["txnNumber"]
    assert insert["startTransaction"] is True and insert["autocommit"] is False
    assert update["autocommit"] is False and "startTransaction" not in update
    assert update["updates"][0]["u"]["token"] == token(3)
    commits = scripted.named("committransaction")
    assert next(c["txnNumber"] for c in commits) == insert["txnNumber"]
    assert stream_opened_with(scripted, 0) == {"resumeAfter": token(1)}


def stream_opened_with(scripted: ScriptedPrimary, n: int) -> dict[str, Any]:
    opts = scripted.change_streams()[n]
    return {
        k: v for k, v in opts.items() if k in ("resumeAfter", "startAfter", "startAtOperationTime")
    }


async def test_a_failed_checkpoint_aborts_the_batch_with_it(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    scripted.script = [("batch", ([change(2)], token(2)))]
    scripted.fail["update"] = {"ok": 0, "code": 112, "errmsg": "WriteConflict", "errorLabels": []}
    with pytest.raises(Exception, match="WriteConflict"):
        await ingester(store).run(until_idle=True)
    [insert] = scripted.named("insert", "events")
    aborts = scripted.named("aborttransaction")
    assert [a["txnNumber"] for a in aborts] == [insert["txnNumber"]]
    assert not scripted.named("committransaction")


async def test_history_lost_records_a_gap_and_resnapshots_from_a_new_epoch(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    scripted.script = [
        (
            "error",
            {
                "ok": 0,
                "code": 286,
                "codeName": "ChangeStreamHistoryLost",
                "errmsg": "Resume of change stream was not possible",
            },
        )
    ]
    scripted.orders = [{"_id": 1, "status": "paid", "updatedBy": "alice"}]
    scripted.live_heads = [  # entity 2 was live before the gap and is gone now
        {
            "_id": 2,
            "stream": "orders",
            "entity_id": 2,
            "entity_key": "2",
            "version": Int64(3),
            "hash": "a" * 64,
            "type": "updated",
            "actor": "bob",
        },
    ]
    stats = await ingester(store).run(until_idle=True)
    assert stats.gaps == 1

    events = scripted.inserted_events()
    kinds = [(e["type"], e["entity_key"], e.get("inferred")) for e in events]
    assert kinds[0] == ("gap", "$stream", False)
    assert ("snapshot", "1", False) in kinds
    assert ("deleted", "2", True) in kinds
    gap = events[0]
    assert gap["document"]["from"] == Timestamp(1_763_000_000, 1) and gap["document"]["to"] == EPOCH
    deleted = next(e for e in events if e["type"] == "deleted")
    assert deleted["version"] == 4 and deleted["prev_hash"] == "a" * 64
    assert stream_opened_with(scripted, 0) == {"resumeAfter": token(1)}
    # streaming resumes from just after the new epoch, with nothing skipped silently
    assert stream_opened_with(scripted, 1) == {
        "startAtOperationTime": Timestamp(EPOCH.time, EPOCH.inc + 1)
    }


async def test_invalidate_reopens_the_stream_with_start_after(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    invalidate = {
        "_id": token(3),
        "operationType": "invalidate",
        "clusterTime": Timestamp(1_764_000_100, 1),
    }
    scripted.script = [
        ("batch", ([change(2), invalidate], token(3))),
        ("batch", ([change(4)], token(4))),
    ]
    stats = await ingester(store).run(until_idle=True)
    assert stats.recorded == 2
    assert stream_opened_with(scripted, 0) == {"resumeAfter": token(1)}
    assert stream_opened_with(scripted, 1) == {"startAfter": token(3)}
    assert [e["_id"] for e in scripted.inserted_events()] == [token(2)["_data"], token(4)["_data"]]


def update_without_description(n: int) -> dict[str, Any]:
    """A malformed event from a server: an update of order 1 without its updateDescription."""
    return {**change(n, op="update"), "documentKey": {"_id": 1}}


async def test_a_malformed_event_from_the_server_is_recorded_as_rejected_in_its_place(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    bad = update_without_description(3)
    scripted.script = [("batch", ([change(2), bad, change(4)], token(4)))]
    stats = await ingester(store, bad_input="record").run(until_idle=True)
    assert stats.recorded == 3 and stats.rejected == 1

    events = scripted.inserted_events()
    position = f"after resume token {token(2)['_data']}"
    # The hash is that of the event's BSON bytes as the server sent them.
    assert [e["_id"] for e in events] == [
        token(2)["_data"],
        f"rejected:{raw_sha256(bad)}:{position}",
        token(4)["_data"],
    ]
    rejected = events[1]
    assert (rejected["type"], rejected["stream"], rejected["entity_key"]) == (
        "rejected",
        "orders",
        "$stream",
    )
    assert rejected["document"] == {
        "source": "mongo",
        "position": position,
        "reason": "update without updateDescription",
        "sha256": raw_sha256(bad),
    }
    assert [e["seq"] for e in events] == [1, 2, 3]
    update = scripted.named("update", "checkpoints")[0]
    assert update["updates"][0]["u"]["token"] == token(4)


async def test_a_malformed_event_from_the_server_stops_capture_after_the_one_before_it(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    scripted.script = [("batch", ([change(2), update_without_description(3), change(4)], token(4)))]
    with pytest.raises(BadChange) as raised:
        await ingester(store).run(until_idle=True)
    assert str(raised.value) == (
        f"mongo: after resume token {token(2)['_data']}: update without updateDescription"
    )
    assert [e["_id"] for e in scripted.inserted_events()] == [token(2)["_data"]]
    [update] = scripted.named("update", "checkpoints")
    assert update["updates"][0]["u"]["token"] == token(2)  # resumes exactly before the bad one
    [release] = scripted.named("delete", "leases")  # the lease is given up
    assert release["deletes"][0]["q"]["_id"] == ROLE


@pytest.mark.parametrize("policy", ["stop", "record"])
async def test_an_event_without_a_resume_token_stops_capture_under_either_policy(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore, policy: str
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    tokenless = {k: v for k, v in change(3).items() if k != "_id"}
    scripted.script = [("batch", ([change(2), tokenless, change(4)], token(4)))]
    with pytest.raises(BadChange) as raised:
        await ingester(store, bad_input=policy).run(until_idle=True)
    # The driver closes the stream on it, and resuming would deliver it again: no way past it.
    assert (
        str(raised.value) == f"mongo: after resume token {token(2)['_data']}: no resume token (_id)"
    )
    assert [e["_id"] for e in scripted.inserted_events()] == [token(2)["_data"]]
    [update] = scripted.named("update", "checkpoints")
    assert update["updates"][0]["u"]["token"] == token(2)


async def test_a_split_event_is_recorded_whole_and_never_checkpointed_inside(
    primary: tuple[MockupDB, ScriptedPrimary], store: MongoStore
) -> None:
    _, scripted = primary
    scripted.checkpoint = streaming_checkpoint(1)
    # Insert 3, over 16 MB: its context in fragment 1 (token 3), its document in fragment 2 (4).
    context = {k: v for k, v in change(3).items() if k not in ("_id", "fullDocument")}
    first = {"_id": token(3), "splitEvent": {"fragment": 1, "of": 2}, **context}
    second = {"_id": token(4), "splitEvent": {"fragment": 2, "of": 2}, "fullDocument": {"_id": 3}}
    scripted.script = [
        ("batch", ([change(2), first], token(3))),
        ("batch", ([], token(3))),  # a getMore that ends inside the event
        ("batch", ([second, change(5)], token(5))),
    ]
    stats = await ingester(store).run(until_idle=True)
    assert stats.recorded == 3

    events = scripted.inserted_events()
    assert [e["_id"] for e in events] == [token(n)["_data"] for n in (2, 4, 5)]
    assert (events[1]["entity_key"], events[1]["type"], events[1]["document"]) == (
        "3",
        "created",
        {"_id": 3},
    )
    saved = [u["updates"][0]["u"]["token"] for u in scripted.named("update", "checkpoints")]
    # Never a fragment's own token: a restart there would miss the event's first fragment.
    assert token(3) not in saved and saved[:2] == [token(2), token(5)]
    assert scripted.change_streams()[0]["showExpandedEvents"] is True
    [opened] = [r for r in scripted.named("aggregate") if "$changeStream" in r["pipeline"][0]]
    assert opened["pipeline"][-1] == {"$changeStreamSplitLargeEvent": {}}
