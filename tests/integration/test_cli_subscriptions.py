"""`eventstore subscriptions ...` and EVENTSTORE_SUBSCRIPTIONS, over a memory store."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli.main import main
from eventstore.memory.store import MemoryStore
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

HOOK = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}


def run(store: MemoryStore, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["subscriptions", *argv, "--uri", "memory://"], out=out, store=store)
    return code, out.getvalue()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_add_list_pause_reset_parked_and_remove_with_the_actor(
    store: MemoryStore, tmp_path: Path
) -> None:
    import asyncio

    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "c")]))
    body = tmp_path / "sub.json"
    body.write_text(json.dumps({"sink": HOOK, "start": "earliest"}))
    assert run(store, "add", "hooks", "--file", str(body), "--actor", "kim") == (
        0,
        "created hooks\n",
    )
    code, listed = run(store, "list", "--json")
    assert code == 0
    rows = json.loads(listed)
    assert [(r["name"], r["position"], r["lag"], r["state"]) for r in rows] == [
        ("hooks", 0, 3, "stopped")
    ]
    code, text = run(store, "pause", "hooks", "--actor", "kim")
    assert code == 0 and "paused" in text
    code, shown = run(store, "status", "hooks", "--json")
    assert json.loads(shown)["sink"]["secret"] == "***" and SECRET not in shown
    assert run(store, "reset", "hooks", "--start", "5", "--actor", "kim")[0] == 1  # head is 3
    assert run(store, "reset", "hooks", "--start", "2", "--actor", "kim")[0] == 0
    assert json.loads(run(store, "status", "hooks", "--json")[1])["status"]["position"] == 1
    assert run(store, "parked", "hooks") == (0, "hooks: nothing parked\n")
    assert run(store, "remove", "hooks", "--actor", "kim") == (0, "removed hooks\n")
    actions = asyncio.run(store.admin_actions.page())
    assert [(a.action, a.actor) for a in actions] == [
        ("create", "kim"),
        ("pause", "kim"),
        ("reset", "kim"),
        ("delete", "kim"),
    ]


def test_bad_input_is_one_line_and_exit_1(
    store: MemoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sink": {"kind": "kafka"}}))
    body = tmp_path / "good.json"
    body.write_text(json.dumps({"sink": HOOK}))
    assert run(store, "add", "x", "--file", str(bad))[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sink.kind" in err and "Traceback" not in err
    assert run(store, "pause", "nope")[0] == 1
    assert "no subscription 'nope'" in capsys.readouterr().err
    assert run(store, "reset", "x")[0] == 1  # no --start
    # `²` passes str.isdigit() and int() refuses it: it was a ValueError's traceback
    assert run(store, "add", "x", "--file", str(body))[0] == 0
    capsys.readouterr()
    for start in ("\u00b2", "\u0663", "1_0"):  # not a seq, so a time, and not a time either
        assert run(store, "reset", "x", "--start", start)[0] == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err == (
            f"eventstore: error: --start: {start!r} is not earliest, latest, a seq or an RFC 3339"
            " time\n"
        )
    assert run(store, "parked", "x", "--skip", "\u0663")[0] == 1
    assert "not a whole number" in capsys.readouterr().err
    assert run(store, "add", "x", "--file", str(tmp_path / "missing.json"))[0] == 1
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    assert run(store, "add", "x", "--file", str(deep))[0] == 1
    err = capsys.readouterr().err
    assert f"{deep} is not JSON: JSON nested too deeply" in err and "Traceback" not in err
    twice = tmp_path / "twice.json"
    twice.write_text(body.read_text().replace('"sink":', '"lanes": 1, "lanes": 2, "sink":', 1))
    assert run(store, "add", "y", "--file", str(twice))[0] == 1
    err = capsys.readouterr().err
    assert f"{twice} is not JSON: the key 'lanes' appears twice in one object" in err
    assert asyncio.run(store.subscriptions.get("y")) is None


async def test_a_declarative_file_is_applied_by_name_and_a_bad_one_names_entry_and_field(
    tmp_path: Path,
) -> None:
    from eventstore.cli.bootstrap import open_service
    from eventstore.cli.common import CliError
    from eventstore.settings import Settings

    store = MemoryStore()
    path = tmp_path / "subs.json"
    entries: list[dict[str, Any]] = [
        {"name": "hooks", "sink": HOOK},
        {
            "name": "cache",
            "sink": {"kind": "redis-invalidate", "url": "redis://r", "keys": ["o:{entity_key}"]},
            "filter": {},
        },
    ]
    path.write_text(json.dumps(entries))
    settings = Settings(uri="memory://", subscriptions=str(path))
    async with open_service(settings, store=store) as service:
        assert await service.apply_subscriptions() == ["hooks", "cache"]
        assert await service.apply_subscriptions() == []  # unchanged: nothing written
        entries[0]["lanes"] = 2
        entries[1]["sink"]["keys"] = ["o:{customer}"]
        path.write_text(json.dumps(entries))
        with pytest.raises(CliError) as refused:
            await service.apply_subscriptions()
        assert "'cache'" in str(refused.value) and "sink.keys[0]" in str(refused.value)
        hooks = await store.subscriptions.get("hooks")
        assert hooks is not None and hooks.config["lanes"] == 1  # nothing applied
        entries[1]["sink"]["keys"] = ["o:{entity_key}"]
        path.write_text("[" * 5000 + "]" * 5000)
        with pytest.raises(CliError, match="is not JSON: JSON nested too deeply"):
            await service.apply_subscriptions()
        # Two values for one key: which one the file meant cannot be told, so neither is taken.
        twice = json.dumps(entries).replace('"lanes": 2', '"lanes": 2, "lanes": 3')
        assert twice.count('"lanes"') == 2
        path.write_text(twice)
        with pytest.raises(CliError, match="is not JSON: the key 'lanes' appears twice"):
            await service.apply_subscriptions()
        hooks = await store.subscriptions.get("hooks")
        assert hooks is not None and hooks.config["lanes"] == 1
        path.write_text(json.dumps(entries))
        assert await service.apply_subscriptions() == ["hooks"]
        # A new entry starting past the next event (the log is empty: seq 1 at most).
        path.write_text(json.dumps([*entries, {"name": "far", "sink": HOOK, "start": {"seq": 2}}]))
        with pytest.raises(CliError) as beyond:
            await service.apply_subscriptions()
        assert "'far'" in str(beyond.value) and "start.seq" in str(beyond.value)
        assert await store.subscriptions.get("far") is None
    actions = await store.admin_actions.page()
    assert [(a.action, a.actor, a.target) for a in actions] == [
        ("create", "declarative", "hooks"),
        ("create", "declarative", "cache"),
        ("update", "declarative", "hooks"),
    ]


def test_no_cli_output_shows_a_secret(
    store: MemoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden = ("hdr-cli-8e2f41", "urlpw-cli-1d9a77", SECRET)
    sink = {
        **HOOK,
        "url": f"https://hooks:{hidden[1]}@example.test/h",
        "headers": {"x-token": hidden[0]},
    }
    body = tmp_path / "sub.json"
    body.write_text(json.dumps({"sink": sink}))
    outputs = [run(store, "add", "hooks", "--file", str(body))[1]]
    outputs += [run(store, "list")[1], run(store, "list", "--json")[1]]
    outputs += [run(store, "status", "hooks")[1], run(store, "status", "hooks", "--json")[1]]
    body.write_text(json.dumps({"sink": {**sink, "timeout_s": 999}}))
    code, refused = run(store, "add", "hooks", "--file", str(body))
    assert code == 1
    captured = capsys.readouterr()
    assert "sink.timeout_s" in captured.err  # the refusal names the field
    shown = json.loads(outputs[-1])["sink"]
    assert shown["headers"] == {"x-token": "***"} and shown["secret"] == "***"
    assert shown["url"] == "https://hooks:***@example.test/h"
    for text in [*outputs, refused, captured.out, captured.err]:
        for secret in hidden:
            assert secret not in text


def test_add_of_a_changed_start_says_the_position_stays_and_how_to_deliver_from_it(
    store: MemoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "c")]))
    body = tmp_path / "sub.json"
    body.write_text(json.dumps({"sink": HOOK}))
    assert run(store, "add", "hooks", "--file", str(body)) == (0, "created hooks\n")
    assert run(store, "add", "hooks", "--file", str(body)) == (0, "updated hooks\n")  # same start
    body.write_text(json.dumps({"sink": HOOK, "start": {"seq": 2}}))
    code, said = run(store, "add", "hooks", "--file", str(body))
    assert code == 0
    assert said == (
        "updated hooks\n"
        'start is stored as {"seq": 2} (was "latest"), and the position stays at 3: an update '
        "does not move it (a start is used when a subscription is created; a reset takes the "
        "start it is given); to deliver from it, eventstore subscriptions reset hooks --start 2\n"
    )
    assert json.loads(run(store, "status", "hooks", "--json")[1])["status"]["position"] == 3
    # a parked event that is not there: said in words, one line
    assert run(store, "parked", "hooks", "--skip", "2")[0] == 1
    err = capsys.readouterr().err
    assert err == "eventstore: error: subscription 'hooks' has no parked event at seq 2\n", err


async def _api_answers(store: MemoryStore, name: str, body: dict[str, Any]) -> list[Any]:
    """What the admin API answers to PUT, PUT again (a changed start) and DELETE of `name`."""
    from litestar.testing import AsyncTestClient

    from api import create_app
    from eventstore.clock import FakeClock
    from tests.api.conftest import ADMIN_KEY, settings

    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    app = create_app(settings(admin_key=ADMIN_KEY), store=store, clock=FakeClock())
    url = f"/v1/admin/subscriptions/{name}"
    async with AsyncTestClient(app=app) as client:
        created = await client.put(url, json=body, headers=admin)
        updated = await client.put(url, json={**body, "start": {"seq": 2}}, headers=admin)
        deleted = await client.delete(url, headers=admin)
    assert (created.status_code, updated.status_code, deleted.status_code) == (201, 200, 204)
    return [created.json(), updated.json(), deleted.content]


def test_add_and_remove_print_the_api_s_json_with_json(store: MemoryStore, tmp_path: Path) -> None:
    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "c")]))
    body = {"sink": HOOK}
    created, updated, deleted = asyncio.run(_api_answers(store, "api", body))
    file = tmp_path / "sub.json"
    file.write_text(json.dumps(body))
    code, out = run(store, "add", "cli", "--file", str(file), "--json")
    assert code == 0
    # the PUT's answer: the subscription (secrets as ***) and its status
    assert json.loads(out.replace('"cli"', '"api"')) == created
    assert SECRET not in out and out.count("\n") == 1
    file.write_text(json.dumps({**body, "start": {"seq": 2}}))
    code, out = run(store, "add", "cli", "--file", str(file), "--json")
    assert code == 0
    shown = json.loads(out)
    # with the `note` of a changed start; it names the CLI's reset, the API's names its request
    assert shown["note"].endswith("eventstore subscriptions reset cli --start 2")
    assert updated["note"].endswith(
        'POST /v1/admin/subscriptions/api/reset with {"start": {"seq": 2}}'
    )
    assert {k: v for k, v in shown.items() if k != "note"} == json.loads(
        json.dumps({k: v for k, v in updated.items() if k != "note"}).replace('"api"', '"cli"')
    )
    # DELETE answers 204 with no body: nothing printed, and it is gone
    assert deleted == b""
    assert run(store, "remove", "cli", "--json") == (0, "")
    assert asyncio.run(store.subscriptions.get("cli")) is None
