"""EVENTSTORE_SUBSCRIPTIONS: a `***` (the API's mask) in the file is one start-up error.

A file is applied as written on any database; `***` stands for a value the API
stored, which the file cannot name. It used to be stored as the secret, and the
worker then failed on it at the first delivery.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest

from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import CliError
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from eventstore.subscriptions.control import SubscriptionAdmin
from tests.realsinks import SECRET

HOOK: Final = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}
WHY: Final = (
    '"***" stands for a value stored by the API, and a SUBSCRIPTIONS file has none: '
    'write the value itself, or {"env": NAME} / {"file": PATH}'
)


@pytest.mark.parametrize(
    ("sink", "key"),
    [
        ({**HOOK, "secret": "***"}, "sink.secret"),
        ({**HOOK, "secret": [SECRET, "***"]}, "sink.secret[1]"),
        ({**HOOK, "headers": {"authorization": "***"}}, "sink.headers.authorization"),
        ({"kind": "redis-pubsub", "url": "redis://u:***@r:1/0", "channel": "c"}, "sink.url"),
    ],
)
async def test_stars_in_the_file_are_one_error_naming_entry_and_field(
    tmp_path: Path, sink: dict[str, Any], key: str
) -> None:
    store = MemoryStore()
    path = tmp_path / "subs.json"
    path.write_text(json.dumps([{"name": "ok", "sink": HOOK}, {"name": "hooks", "sink": sink}]))
    async with open_service(Settings(uri="memory://", subscriptions=str(path)), store=store) as svc:
        with pytest.raises(CliError) as refused:
            await svc.apply_subscriptions()
    assert str(refused.value) == (
        f"EVENTSTORE_SUBSCRIPTIONS: {path}: subscription 'hooks': {key}: {WHY}"
    )
    assert await store.subscriptions.all() == []  # nothing applied, the good entry neither


async def test_stars_in_the_file_are_refused_even_where_the_api_stored_a_value(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    admin = SubscriptionAdmin(store, clock=FakeClock(), owner="t", lease_seconds=10)
    await admin.put("hooks", {"sink": {**HOOK, "headers": {"x-token": "t0ken"}}}, actor="ann")
    path = tmp_path / "subs.json"
    sink = {**HOOK, "headers": {"x-token": "***"}, "timeout_s": 5}
    path.write_text(json.dumps([{"name": "hooks", "sink": sink}]))
    async with open_service(Settings(uri="memory://", subscriptions=str(path)), store=store) as svc:
        with pytest.raises(CliError) as refused:
            await svc.apply_subscriptions()
    assert str(refused.value).endswith(f"subscription 'hooks': sink.headers.x-token: {WHY}")
    record = await store.subscriptions.get("hooks")
    assert record is not None
    assert record.config["sink"]["headers"] == {"x-token": "t0ken"}
    assert record.config["sink"]["timeout_s"] == 15  # the entry was not applied
