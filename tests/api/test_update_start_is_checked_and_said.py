"""A PUT that updates a subscription reads its `start` as a creation does, and says what it did.

An update keeps the position: a start is used when a subscription is created and by
a reset (which is given its own). An update used to store a start beyond the log
(a creation refuses it) and to answer a changed start as if delivery would follow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}"}
HOOK: Final = {"kind": "webhook", "url": "https://example.test/hooks", "secret": SECRET}
BASE: Final = "/v1/admin/subscriptions"
BEYOND: Final = (
    "seq 1000000000 is beyond the log, whose head is seq 4: a subscription starts at most "
    'at seq 5 (the next event), or at "latest"'
)


@pytest.fixture
async def client() -> AsyncIterator[tuple[AsyncTestClient[Any], MemoryStore]]:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "a", "c")])  # head: seq 4
    app = create_app(settings(admin_key=ADMIN_KEY), store=store, clock=FakeClock())
    async with AsyncTestClient(app=app) as c:
        yield c, store


async def _actions(c: AsyncTestClient[Any]) -> list[str]:
    trail = (await c.get("/v1/admin/actions", headers=ADMIN)).json()["items"]
    return [a["action"] for a in trail]


async def test_an_update_refuses_a_start_beyond_the_log_as_a_creation_does(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    far = {"sink": HOOK, "start": {"seq": 1_000_000_000}}
    created = await c.put(f"{BASE}/new", json=far, headers=ADMIN)
    assert created.status_code == 422, created.text
    assert (await c.put(f"{BASE}/s", json={"sink": HOOK}, headers=ADMIN)).status_code == 201
    updated = await c.put(f"{BASE}/s", json=far, headers=ADMIN)
    assert updated.status_code == 422, updated.text
    assert updated.headers["content-type"].startswith("application/problem+json")
    problem = updated.json()
    assert problem == created.json()  # the same problem, word for word
    assert problem["type"] == "https://eventstore.dev/problems/invalid-subscription"
    assert problem["detail"] == f"start.seq: {BEYOND}"
    assert problem["errors"] == [{"key": "start.seq", "message": BEYOND}]
    # Nothing stored: the configuration, the position and the trail are as before.
    record = await store.subscriptions.get("s")
    assert record is not None and record.config["start"] == "latest"
    shown = (await c.get(f"{BASE}/s", headers=ADMIN)).json()
    assert (shown["start"], shown["status"]["position"]) == ("latest", 4)
    assert await _actions(c) == ["create"]
    # The next event (seq 5) is a start an update may give, as a creation may.
    nxt = await c.put(f"{BASE}/s", json={"sink": HOOK, "start": {"seq": 5}}, headers=ADMIN)
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["start"] == {"seq": 5}


async def test_an_update_that_changes_the_start_says_the_position_stays(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    created = await c.put(f"{BASE}/s", json={"sink": HOOK}, headers=ADMIN)
    assert created.status_code == 201 and "note" not in created.json()
    assert created.json()["status"]["position"] == 4
    updated = await c.put(f"{BASE}/s", json={"sink": HOOK, "start": "earliest"}, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["start"], body["status"]["position"]) == ("earliest", 4)
    assert body["note"] == (
        'start is stored as "earliest" (was "latest"), and the position stays at 4: an update '
        "does not move it (a start is used when a subscription is created; a reset takes the "
        "start it is given); to deliver from it, POST /v1/admin/subscriptions/s/reset with "
        '{"start": "earliest"}'
    )
    # Stored as said, and the position did not move.
    record = await store.subscriptions.get("s")
    assert record is not None and record.config["start"] == "earliest"
    shown = (await c.get(f"{BASE}/s", headers=ADMIN)).json()
    assert (shown["start"], shown["status"]["position"]) == ("earliest", 4)
    assert "note" not in shown
    # An update that keeps the start has nothing to say.
    same = await c.put(
        f"{BASE}/s", json={"sink": HOOK, "start": "earliest", "lanes": 2}, headers=ADMIN
    )
    assert same.status_code == 200 and "note" not in same.json()
    assert same.json()["lanes"] == 2
    # The note's advice does what it says: the reset delivers from the start.
    reset = await c.post(f"{BASE}/s/reset", json={"start": "earliest"}, headers=ADMIN)
    assert reset.status_code == 200 and reset.json()["status"]["position"] == 0
    assert await _actions(c) == ["create", "update", "update", "reset"]


async def test_a_seq_start_changed_by_an_update_is_named_as_it_is_given(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    first = {"sink": HOOK, "start": {"seq": 2}}
    assert (await c.put(f"{BASE}/s", json=first, headers=ADMIN)).status_code == 201
    updated = await c.put(f"{BASE}/s", json={"sink": HOOK, "start": {"seq": 3}}, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    note = updated.json()["note"]
    assert note.startswith('start is stored as {"seq": 3} (was {"seq": 2}), and the position ')
    assert "stays at 1:" in note
    assert note.endswith('POST /v1/admin/subscriptions/s/reset with {"start": {"seq": 3}}')
    assert updated.json()["status"]["position"] == 1
