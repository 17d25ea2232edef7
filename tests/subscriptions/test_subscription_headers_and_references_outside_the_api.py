"""The same rules where the operator configures subscriptions: the SUBSCRIPTIONS file and
`eventstore subscriptions add` (both through `SubscriptionAdmin`, which parses as the API).

- Two `headers` names differing only in case are refused (one would be dropped when sent).
- A secret reference stays the operator's to give (only the admin API refuses new ones).
- A stored document read back is never refused for what an older version let through.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any, Final

import pytest

from eventstore.cli.main import main
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions.control import SubscriptionAdmin
from eventstore.subscriptions.declarative import DeclarativeError, apply_file
from tests.realsinks import SECRET

HOOK: Final = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}
TWICE: Final = (
    "'x-a' and 'X-A' name the same header (HTTP header names are case-insensitive, "
    "RFC 9110 5.1): give it once"
)


def _admin(store: MemoryStore) -> SubscriptionAdmin:
    return SubscriptionAdmin(store, clock=FakeClock(), owner="t", lease_seconds=10)


def test_the_parser_refuses_two_names_of_one_header() -> None:
    sink = {**HOOK, "headers": {"x-a": "lower", "x-b": "b", "X-A": "upper"}}
    with pytest.raises(cfg.ConfigError) as refused:
        cfg.parse("s", {"sink": sink})
    assert not refused.value.malformed  # well formed, impossible: 422
    assert refused.value.errors == [{"key": "sink.headers", "message": TWICE}]
    # Distinct names are taken; a stored document holding two (as before) still reads.
    assert cfg.parse("s", {"sink": {**HOOK, "headers": {"x-a": "1", "x-b": "2"}}}).sink[
        "headers"
    ] == {"x-a": "1", "x-b": "2"}
    assert cfg.parse("s", {"sink": sink}, stored=True).sink["headers"] == sink["headers"]


async def test_a_subscriptions_file_with_two_names_of_one_header_is_refused(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    path = tmp_path / "subs.json"
    sink = {**HOOK, "headers": {"x-a": "lower", "X-A": "upper"}}
    path.write_text(json.dumps([{"name": "hooks", "sink": sink}]))
    with pytest.raises(DeclarativeError) as refused:
        await apply_file(_admin(store), str(path))
    assert str(refused.value) == f"{path}: subscription 'hooks': sink.headers: {TWICE}"
    assert await store.subscriptions.get("hooks") is None


def test_cli_add_with_two_names_of_one_header_is_refused_and_with_references_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()

    def add(name: str, sink: dict[str, Any]) -> int:
        body = tmp_path / f"{name}.json"
        body.write_text(json.dumps({"sink": sink}))
        argv = ["subscriptions", "add", name, "--file", str(body), "--uri", "memory://"]
        return main(argv, out=io.StringIO(), store=store)

    assert add("twice", {**HOOK, "headers": {"x-a": "lower", "X-A": "upper"}}) == 1
    assert f"refused: sink.headers: {TWICE}" in capsys.readouterr().err
    assert asyncio.run(store.subscriptions.get("twice")) is None
    # The operator's own references (the admin API refuses new ones by default).
    refs = {
        **HOOK,
        "secret": {"env": "HOOK_SECRET"},
        "headers": {"x-token": {"file": "/run/secrets/token"}},
    }
    assert add("refs", refs) == 0
    record = asyncio.run(store.subscriptions.get("refs"))
    assert record is not None and record.config["sink"] == {**refs, "timeout_s": 15}


async def test_a_subscriptions_file_keeps_taking_references(tmp_path: Path) -> None:
    store = MemoryStore()
    path = tmp_path / "subs.json"
    sink = {"kind": "redis-pubsub", "url": {"env": "REDIS_URL"}, "channel": "c"}
    path.write_text(json.dumps([{"name": "cache", "sink": sink}]))
    assert await apply_file(_admin(store), str(path)) == ["cache"]
    record = await store.subscriptions.get("cache")
    assert record is not None and record.config["sink"] == sink


def test_keep_secrets_leaves_a_null_secret_for_parse_to_refuse() -> None:
    old = {**HOOK, "secret": SECRET}
    assert cfg.keep_secrets({**HOOK, "secret": None}, old)["secret"] is None
    assert cfg.keep_secrets({"kind": "webhook", "url": HOOK["url"]}, old)["secret"] == SECRET


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://h.example/a", "HTTPS://H.example:443/b?q", True),
        ("http://u:p@h.example/a", "http://h.example:80/", True),
        ("https://{stream}.example/a", "https://{stream}.example/b", True),
        ("https://h.example/a", "http://h.example/a", False),
        ("https://h.example/a", "https://h.example:8443/a", False),
        ("https://h.example/a", "https://g.example/a", False),
        ("redis://h/0", "redis://h:6379/1", True),
        ("redis://h/0", "rediss://h/0", False),
    ],
)
def test_a_destination_is_the_origin_of_the_url(a: str, b: str, same: bool) -> None:
    assert (cfg.destination(a) == cfg.destination(b)) is same
    assert cfg.destination({"env": "A"}) == cfg.destination({"env": "A"})
    assert cfg.destination({"env": "A"}) != cfg.destination({"env": "B"})
    assert cfg.destination({"env": "A"}) != cfg.destination(a)
