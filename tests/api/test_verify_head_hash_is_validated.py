"""`GET /v1/verify?head_seq=&head_hash=`: a malformed head is a 400, never a tampering verdict.

`head_hash` is a log_hash as `eventstore verify --head` prints it: 64 lowercase
hexadecimal digits. At `head_seq=0` every log passes through one hash only, the
genesis hash (64 zeros).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.memory.store import MemoryStore
from eventstore.model import GENESIS_HASH, Event
from tests.api.conftest import AppFactory
from tests.helpers import LogBuilder

Client = AsyncTestClient[Any]


@pytest.fixture
async def log_events() -> tuple[MemoryStore, list[Event]]:
    store = MemoryStore()
    events = LogBuilder().many("o1", "o2", "o1", "o3", "o2")
    await store.events.append(events)
    return store, events


@pytest.fixture
async def client(
    log_events: tuple[MemoryStore, list[Event]], make_app: AppFactory
) -> AsyncIterator[Client]:
    async with AsyncTestClient(make_app(log_events[0])) as c:
        yield c


def _refused_head_hash(r: Any, sent: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    message = f"must be 64 lowercase hexadecimal digits (a log_hash), got {sent!r}"
    body = r.json()
    assert body["detail"] == f"head_hash: {message}"
    assert body["errors"] == [{"key": "head_hash", "message": message, "source": "query"}]


@pytest.mark.parametrize("change", ["zz", "upper", "63", "65", "space", "empty"])
async def test_a_malformed_head_hash_is_a_400_naming_it_not_a_tampering_verdict(
    client: Client, log_events: tuple[MemoryStore, list[Event]], change: str
) -> None:
    last = log_events[1][-1]
    sent = {
        "zz": "zz",
        "upper": last.log_hash.upper(),  # the right hash, in upper case
        "63": last.log_hash[:63],
        "65": last.log_hash + "0",
        "space": f" {last.log_hash}",
        "empty": "",
    }[change]
    r = await client.get("/v1/verify", params={"head_seq": last.seq, "head_hash": sent})
    _refused_head_hash(r, sent)


async def test_the_right_head_in_lowercase_still_matches(
    client: Client, log_events: tuple[MemoryStore, list[Event]]
) -> None:
    events = log_events[1]
    for e in (events[-1], events[1]):
        r = await client.get("/v1/verify", params={"head_seq": e.seq, "head_hash": e.log_hash})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["valid"], body["head_matches"], body["reason"]) == (True, True, None)
        assert body["head"] == {"seq": 5, "log_hash": events[-1].log_hash}


async def test_at_head_seq_0_only_the_genesis_hash_matches(
    client: Client, log_events: tuple[MemoryStore, list[Event]]
) -> None:
    last = log_events[1][-1]
    genesis = await client.get("/v1/verify", params={"head_seq": 0, "head_hash": GENESIS_HASH})
    assert genesis.status_code == 200, genesis.text
    assert (genesis.json()["valid"], genesis.json()["head_matches"]) == (True, True)
    for other in ("ab" * 32, last.log_hash):
        r = await client.get("/v1/verify", params={"head_seq": 0, "head_hash": other})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["valid"] is False
        assert body["head_matches"] is False
        assert body["first_invalid_seq"] is None  # no event is at fault: the head is not this log's
        assert body["reason"] == (
            "log_hash at seq 0 differs from the recorded head (the genesis hash, 64 zeros)"
        )
        assert body["head"] == {"seq": 5, "log_hash": last.log_hash}


@pytest.mark.parametrize("query", [{"head_seq": "3"}, {"head_hash": GENESIS_HASH}])
async def test_half_a_head_is_a_400_asking_for_both(client: Client, query: dict[str, str]) -> None:
    r = await client.get("/v1/verify", params=query)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == (
        "give both head_seq and head_hash (as `eventstore verify --head` prints)"
    )


async def test_the_schema_says_what_a_head_hash_is(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/v1/verify"]["get"]["parameters"]}
    assert params["head_hash"]["pattern"] == "^[0-9a-f]{64}$"
    assert (params["head_hash"]["minLength"], params["head_hash"]["maxLength"]) == (64, 64)
