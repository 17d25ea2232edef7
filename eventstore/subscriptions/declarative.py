"""`EVENTSTORE_SUBSCRIPTIONS=FILE`: subscriptions declared in a JSON file, applied at start.

The file is a list of objects, each `name` plus the fields of the PUT body. Every
entry is validated before anything is stored, so a bad file changes nothing and
is one error naming the subscription and the field. Subscriptions not in the file
are left alone; those in it are created, or updated when their configuration differs.
An update keeps the position: one that changes the start stores it and says, in a
WARNING, that delivery goes on from where it was (a reset delivers from a start).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec

from eventstore.json_input import decode_json
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions.control import SubscriptionAdmin

ACTOR = "declarative"
log = logging.getLogger("eventstore.subscriptions")


class DeclarativeError(ValueError):
    """The subscriptions file cannot be applied: the message names the entry and the field."""


def read_file(path: str) -> list[tuple[str, dict[str, Any]]]:
    """The file's entries as (name, body); DeclarativeError when it is not such a list."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DeclarativeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = decode_json(raw)
    except msgspec.DecodeError as exc:
        raise DeclarativeError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise DeclarativeError(f"{path}: expected a JSON list of subscriptions")
    entries: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DeclarativeError(f"{path}: entry {i}: expected an object with a string `name`")
        name = item["name"]
        if name in seen:
            raise DeclarativeError(f"{path}: subscription {name!r} appears twice")
        seen.add(name)
        entries.append((name, {k: v for k, v in item.items() if k != "name"}))
    return entries


async def apply_file(admin: SubscriptionAdmin, path: str) -> list[str]:
    """Validate every entry, then create or update each; the names changed."""
    entries = read_file(path)
    for name, body in entries:
        masked = cfg.masked_keys(body.get("sink"))
        if masked:
            raise DeclarativeError(
                f"{path}: subscription {name!r}: {masked[0]}: "
                f'"***" stands for a value stored by the API, and a SUBSCRIPTIONS file has '
                'none: write the value itself, or {"env": NAME} / {"file": PATH}'
            )
        try:
            await admin.validate(name, body)
        except cfg.ConfigError as exc:
            first = exc.errors[0]
            raise DeclarativeError(
                f"{path}: subscription {name!r}: {first['key'] or 'body'}: {first['message']}"
            ) from None
    _refuse_shared_streams(path, entries)
    changed = []
    for name, body in entries:
        existing = await admin.store.subscriptions.get(name)
        config = await admin.validate(name, body)
        if existing is not None and existing.config == cfg.to_doc(config):
            continue
        done = await admin.apply(name, body, actor=ACTOR)
        note = done.start_note(done.reset_command(name))
        if note is not None:  # an applied entry whose new start does not move the position
            log.warning("%s: subscription %r: %s", path, name, note)
        changed.append(name)
    return changed


def _refuse_shared_streams(path: str, entries: list[tuple[str, dict[str, Any]]]) -> None:
    """Two entries of the file writing one Redis stream are both refused."""
    from eventstore.subscriptions.control import may_collide

    targets = []
    for name, body in entries:
        sink = body.get("sink", {})
        if sink.get("kind") == cfg.REDIS_STREAM:
            targets.append((name, cfg.redis_address(sink.get("url")), str(sink.get("stream"))))
    for i, (a, addr_a, key_a) in enumerate(targets):
        for b, addr_b, key_b in targets[i + 1 :]:
            if addr_a == addr_b and may_collide(key_a, key_b):
                raise DeclarativeError(
                    f"{path}: subscriptions {a!r} and {b!r}: sink.stream: both write the "
                    "same Redis stream"
                )
