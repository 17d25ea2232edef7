"""EVENTSTORE_SUBSCRIPTIONS updates a subscription by the API's path: its start is read alike.

An entry for a subscription that exists is an update: a start beyond the log is one
start-up error naming the entry and `start.seq` (as for a new entry), and a changed
start is stored with a WARNING saying the position stays and how to deliver from it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

import pytest

from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import CliError
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from eventstore.subscriptions import positions
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

HOOK: Final = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}


async def test_an_entry_updating_a_start_is_checked_and_its_kept_position_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "c")])  # head: seq 3
    path = tmp_path / "subs.json"
    path.write_text(json.dumps([{"name": "hooks", "sink": HOOK}]))
    settings = Settings(uri="memory://", subscriptions=str(path))
    async with open_service(settings, store=store) as service:
        assert await service.apply_subscriptions() == ["hooks"]
        assert await positions.read_position(store.checkpoints, "hooks") == 3
        # Beyond the log: refused as for a new entry, nothing applied.
        path.write_text(json.dumps([{"name": "hooks", "sink": HOOK, "start": {"seq": 99}}]))
        with pytest.raises(CliError) as refused:
            await service.apply_subscriptions()
        assert str(refused.value) == (
            f"EVENTSTORE_SUBSCRIPTIONS: {path}: subscription 'hooks': start.seq: seq 99 is "
            "beyond the log, whose head is seq 3: a subscription starts at most at seq 4 "
            '(the next event), or at "latest"'
        )
        record = await store.subscriptions.get("hooks")
        assert record is not None and record.config["start"] == "latest"
        # A changed start: stored, the position kept, and a WARNING says so.
        path.write_text(json.dumps([{"name": "hooks", "sink": HOOK, "start": {"seq": 2}}]))
        with caplog.at_level(logging.WARNING, logger="eventstore.subscriptions"):
            assert await service.apply_subscriptions() == ["hooks"]
        record = await store.subscriptions.get("hooks")
        assert record is not None and record.config["start"] == {"seq": 2}
        assert await positions.read_position(store.checkpoints, "hooks") == 3
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f'{path}: subscription \'hooks\': start is stored as {{"seq": 2}} (was "latest"), '
            "and the position stays at 3: an update does not move it (a start is used when a "
            "subscription is created; a reset takes the start it is given); to deliver from "
            "it, eventstore subscriptions reset hooks --start 2"
        ]
        # Applied again unchanged: nothing written, nothing said.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eventstore.subscriptions"):
            assert await service.apply_subscriptions() == []
        assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    trail = await store.admin_actions.page()
    assert [(a.action, a.actor) for a in trail] == [
        ("create", "declarative"),
        ("update", "declarative"),
    ]
