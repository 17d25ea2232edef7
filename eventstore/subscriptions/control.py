"""Operating subscriptions: create, update, delete, pause, resume, reset, parked replay and skip.

Every operator action is appended to the admin action trail with its actor.
Reset, replay and skip are queued on the subscription's record for the instance
that delivers (it holds the lease); when no instance holds it, reset and skip are
carried out here at once (a replay needs a sink and waits for a delivering one).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from eventstore.codec import rfc3339
from eventstore.ports import Clock, Store
from eventstore.subscription_records import AdminAction, ParkedEvent, SubscriptionRecord
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions import positions, templates
from eventstore.subscriptions.delivery import SubscriptionWorker, new_command
from eventstore.worker_state import DISABLED, PAUSED, STOPPED, WorkerRecord, shown

UNKNOWN_ACTOR: Final = "unknown"
# When several instances report one subscription, the most telling state is shown.
_RANK: Final = {"running": 0, "retrying": 1, "failed": 2, "starting": 3, "standby": 4}


class NotFound(KeyError):
    """No subscription (or parked event) of that name."""


class NoParkedEvent(NotFound):
    """The subscription exists, and has no parked event at that seq (`detail` says so)."""

    def __init__(self, name: str, seq: int) -> None:
        super().__init__(f"{name}: no parked event at seq {seq}")
        self.detail = f"subscription {name!r} has no parked event at seq {seq}"


@dataclass(frozen=True)
class Put:
    """What a PUT did: created or updated the subscription, and its start (as JSON).

    An update never moves the position: `kept_position` is set when it changed the
    start all the same (`previous_start` is the one it replaced), so the caller can say so.
    """

    created: bool
    record: SubscriptionRecord
    start: Any
    previous_start: Any = None
    kept_position: int | None = None

    def start_note(self, reset: str) -> str | None:
        """The changed start and the position kept, in words, ending with `reset` (how to
        deliver from the start: `reset_command`, or the API's request); None when there is
        nothing to say."""
        if self.kept_position is None:
            return None
        return (
            f"start is stored as {json.dumps(self.start)} (was {json.dumps(self.previous_start)}), "
            f"and the position stays at {self.kept_position}: an update does not move it (a start "
            "is used when a subscription is created; a reset takes the start it is given); "
            f"to deliver from it, {reset}"
        )

    def reset_command(self, name: str) -> str:
        """The command that delivers from the stored start (`--start` as the CLI reads it)."""
        start = self.start if isinstance(self.start, str) else next(iter(self.start.values()))
        return f"eventstore subscriptions reset {name} --start {start}"


def _start_or_none(value: Any) -> cfg.Start | None:
    """A stored start read back (None when it does not read: it then differs from any)."""
    try:
        return cfg.parse_start(value)
    except cfg.ConfigError:
        return None


_SEQUENCE = itertools.count()


def action_id(at: datetime) -> str:
    """A sortable, unique id for a trail entry: its time, this process's count, randomness."""
    return f"{at.strftime('%Y%m%dT%H%M%S.%f')}-{next(_SEQUENCE):010d}-{uuid.uuid4().hex[:8]}"


def _stream_target(sink: Mapping[str, Any]) -> tuple[Any, str] | None:
    if sink.get("kind") != cfg.REDIS_STREAM:
        return None
    return cfg.redis_address(sink.get("url")), str(sink.get("stream"))


def may_collide(a: str, b: str) -> bool:
    """True when two stream templates could name the same key (same text, or one's literal matches)."""
    if a == b:
        return True
    import re

    def pattern(t: str) -> re.Pattern[str]:
        parts = templates.parse(t)
        return re.compile(
            "".join(".+" if is_ph else re.escape(text) for is_ph, text in parts) + r"\Z"
        )

    for x, y in ((a, b), (b, a)):
        parts = templates.parse(x)
        if not templates.uses(parts) and pattern(y).match(templates.render(parts, {})):
            return True
    return False


class SubscriptionAdmin:
    """The operations behind the admin API, the CLI and the declarative file."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        owner: str,
        lease_seconds: float,
        nudge: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.nudge = nudge

    # -- the trail ----------------------------------------------------------------------------
    async def record_action(
        self, actor: str | None, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> None:
        """Append one action to the trail."""
        now = self.clock.now()
        await self.store.admin_actions.append(
            AdminAction(
                id=action_id(now),
                at=now,
                actor=actor or UNKNOWN_ACTOR,
                action=action,
                target=target,
                details=dict(details or {}),
            )
        )

    async def actions(
        self, *, after: str | None, limit: int
    ) -> tuple[list[AdminAction], str | None]:
        """A page of the trail and the cursor of the next one (None at the end)."""
        page = await self.store.admin_actions.page(after=after, limit=limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].id if more and page else None)

    # -- configuration ------------------------------------------------------------------------
    async def get(self, name: str) -> SubscriptionRecord:
        """The record; NotFound when there is none."""
        record = await self.store.subscriptions.get(name)
        if record is None:
            raise NotFound(name)
        return record

    async def validate(
        self, name: str, body: Any, *, references: bool = True
    ) -> cfg.SubscriptionConfig:
        """The configuration a PUT body gives (stored secrets kept where it gives none).

        A stored secret is kept only for the same destination (`cfg.moved_secrets`).
        `references`: whether the body may give new `{"env"}`/`{"file"}` secret references
        (the admin API's PUT may not, unless EVENTSTORE_API_SECRET_REFERENCES: they read
        this server's environment and files; `cfg.api_references`).
        """
        existing = await self.store.subscriptions.get(name) if cfg.NAME_RE.fullmatch(name) else None
        old = existing.config.get("sink") if existing is not None else None
        sink = body.get("sink") if isinstance(body, dict) else None
        refused = [] if references else cfg.api_references(sink, old)
        if isinstance(sink, dict) and old is not None:
            refused += cfg.moved_secrets(sink, old) + cfg.restated_secrets(sink, old)
            body = {**body, "sink": cfg.keep_secrets(sink, old)}
        config = cfg.parse(name, body, refused=refused)
        await self._refuse_shared_stream(config)
        # An update's start is checked as a creation's: a start that would skip events is
        # never stored (the configuration shows it, and an update stores what it is given).
        await self._refuse_start_beyond_the_log(config.start)
        return config

    async def _refuse_start_beyond_the_log(self, start: cfg.Start) -> None:
        """A start seq past the next event would skip every event until the log reached it."""
        if start.kind != "seq" or start.seq is None:
            return
        head = (await self.store.events.head()).seq
        if start.seq > head + 1:
            raise cfg.ConfigError(
                [
                    {
                        "key": "start.seq",
                        "message": f"seq {start.seq} is beyond the log, whose head is seq "
                        f"{head}: a subscription starts at most at seq {head + 1} (the next "
                        'event), or at "latest"',
                    }
                ]
            )

    async def _refuse_shared_stream(self, config: cfg.SubscriptionConfig) -> None:
        target = _stream_target(config.sink)
        if target is None:
            return
        for other in await self.store.subscriptions.all():
            if other.name == config.name:
                continue
            theirs = _stream_target(other.config.get("sink", {}))
            if theirs is None or theirs[0] != target[0]:
                continue
            if may_collide(target[1], theirs[1]):
                raise cfg.ConfigError(
                    [
                        {
                            "key": "sink.stream",
                            "message": f"subscription {other.name!r} writes the same Redis "
                            "stream: two writers would swallow each other's entries",
                        }
                    ]
                )

    async def put(
        self, name: str, body: Any, *, actor: str | None
    ) -> tuple[bool, SubscriptionRecord]:
        """Create (True) or update (False); ConfigError when invalid (nothing stored)."""
        done = await self.apply(name, body, actor=actor)
        return done.created, done.record

    async def apply(
        self, name: str, body: Any, *, actor: str | None, references: bool = True
    ) -> Put:
        """Create or update; ConfigError when invalid (nothing stored).

        A creation starts at the body's start. An update stores the configuration,
        its start included, and keeps the position (`Put.start_note` says so when
        the start changed): only a reset delivers from another start. `references`:
        as `validate` takes it.
        """
        config = await self.validate(name, body, references=references)
        doc = cfg.to_doc(config)
        now = self.clock.now()
        existing = await self.store.subscriptions.get(name)
        if existing is None:
            position = await positions.position_of(self.store.events, config.start)
            await self.store.deliveries.clear(name)
            await positions.write_position(self.store.checkpoints, name, position, now)
            record = SubscriptionRecord(name=name, config=doc, created_at=now, updated_at=now)
            if await self.store.subscriptions.create(record):
                await self.record_action(
                    actor, "create", name, {"sink": config.kind, "position": position}
                )
                self._nudge(name)
                return Put(created=True, record=record, start=doc["start"])
            existing = await self.store.subscriptions.get(name)  # created meanwhile
        await self.store.subscriptions.patch(name, {"config": doc, "updated_at": now})
        await self.record_action(actor, "update", name, {"sink": config.kind})
        self._nudge(name)
        done = Put(created=False, record=await self.get(name), start=doc["start"])
        before = existing.config.get("start") if existing is not None else None
        if existing is None or _start_or_none(before) == config.start:
            return done
        # Without a position (none written yet) the worker starts at the stored start.
        kept = await positions.read_position(self.store.checkpoints, name)
        if kept is None:
            return done
        return Put(
            created=False,
            record=done.record,
            start=done.start,
            previous_start=before,
            kept_position=kept,
        )

    async def delete(self, name: str, *, actor: str | None) -> None:
        """Remove a subscription, its settled positions and parked events; its worker ends."""
        if not await self.store.subscriptions.delete(name):
            raise NotFound(name)
        await self.store.deliveries.clear(name)
        await self.record_action(actor, "delete", name)
        self._nudge(name)

    async def pause(self, name: str, *, actor: str | None) -> SubscriptionRecord:
        """Stop delivering (the position is kept)."""
        await self._patch(name, {"paused": True})
        await self.record_action(actor, "pause", name)
        return await self.get(name)

    async def resume(self, name: str, *, actor: str | None) -> SubscriptionRecord:
        """Deliver again (also after a 410 disabled it)."""
        before = await self.get(name)
        await self._patch(name, {"paused": False, "disabled_reason": None})
        await self.record_action(actor, "resume", name, {"was_disabled": before.disabled_reason})
        return await self.get(name)

    async def _patch(self, name: str, fields: dict[str, Any]) -> None:
        if not await self.store.subscriptions.patch(
            name, {**fields, "updated_at": self.clock.now()}
        ):
            raise NotFound(name)
        self._nudge(name)

    # -- commands for the delivering instance ---------------------------------------------------
    async def _command(self, name: str, command: dict[str, Any]) -> None:
        if not await self.store.subscriptions.push_command(name, command):
            raise NotFound(name)
        worker = SubscriptionWorker(
            self.store,
            name,
            clock=self.clock,
            owner=f"{self.owner}:admin",
            lease_seconds=self.lease_seconds,
        )
        if not await worker.run_commands_once():
            self._nudge(name)

    async def reset(self, name: str, start: Any, *, actor: str | None) -> None:
        """Deliver again from `start` (settled positions and parked events are forgotten)."""
        parsed = cfg.parse_start(start)
        await self.get(name)
        await self._refuse_start_beyond_the_log(parsed)
        await self._command(name, new_command("reset", start=cfg.start_json(parsed)))
        await self.record_action(actor, "reset", name, {"start": cfg.start_json(parsed)})

    async def replay(self, name: str, up_to_seq: int | None, *, actor: str | None) -> int:
        """Deliver parked events again (all, or up to a seq), in order; how many are queued."""
        parked = await self.store.deliveries.parked(name, up_to=up_to_seq)
        await self.get(name)
        await self._command(name, new_command("replay", up_to_seq=up_to_seq))
        await self.record_action(
            actor, "replay", name, {"up_to_seq": up_to_seq, "events": len(parked)}
        )
        return len(parked)

    async def skip(self, name: str, seq: int, *, actor: str | None) -> None:
        """Give up on one parked event (it stays settled, never delivered)."""
        await self.get(name)
        found = await self.store.deliveries.parked(name, after_seq=seq - 1, up_to=seq)
        if not found:
            raise NoParkedEvent(name, seq)
        await self._command(name, new_command("skip", seq=seq))
        await self.record_action(
            actor,
            "skip",
            name,
            {"seq": seq, "stream": found[0].stream, "entity_key": found[0].entity_key},
        )

    async def parked(
        self, name: str, *, after_seq: int = 0, limit: int = 100
    ) -> tuple[list[ParkedEvent], int | None]:
        """A page of parked events and the next cursor."""
        await self.get(name)
        page = await self.store.deliveries.parked(name, after_seq=after_seq, limit=limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].seq if more and page else None)

    def _nudge(self, name: str) -> None:
        if self.nudge is not None:
            self.nudge(name)

    # -- status -------------------------------------------------------------------------------
    async def status(self, record: SubscriptionRecord) -> dict[str, Any]:
        """`{name, state, position, lag, lag_seconds, delivered, failed_attempts, parked, ...}`."""
        name = record.name
        head = (await self.store.events.head()).seq
        position = await positions.read_position(self.store.checkpoints, name) or 0
        lag = max(head - position, 0)
        lag_seconds = 0.0
        if lag:
            page = await self.store.events.read(after_seq=position, limit=1)
            if page:
                lag_seconds = max((self.clock.now() - page[0].recorded_at).total_seconds(), 0.0)
        return {
            "name": name,
            "state": await self._state(record),
            "position": position,
            "lag": lag,
            "lag_seconds": round(lag_seconds, 3),
            "delivered": record.delivered,
            "failed_attempts": record.failed_attempts,
            "parked": await self.store.deliveries.count_parked(name),
            "unheard": record.unheard,
            "already_delivered": record.already_delivered,
            "last_error": record.last_error,
            "last_delivery_at": rfc3339(record.last_delivery_at)
            if record.last_delivery_at
            else None,
            "disabled_reason": record.disabled_reason,
            "pending_commands": len(record.commands),
        }

    async def _state(self, record: SubscriptionRecord) -> str:
        if record.disabled_reason is not None:
            return DISABLED
        if record.paused:
            return PAUSED
        role = positions.checkpoint_name(record.name)
        now = self.clock.now()
        states = [
            shown(r, now=now, lease_seconds=self.lease_seconds).state
            for r in await self.store.workers.all()
            if r.name == role
        ]
        live = sorted((s for s in states if s in _RANK), key=lambda s: _RANK[s])
        return live[0] if live else STOPPED


def record_json(record: SubscriptionRecord) -> dict[str, Any]:
    """A subscription's configuration as shown (secrets as `***`)."""
    return cfg.public(cfg.from_doc(record.config))


def parked_json(p: ParkedEvent) -> dict[str, Any]:
    """`{seq, stream, entity_key, type, attempts, last_error, parked_at}`."""
    return {
        "seq": p.seq,
        "stream": p.stream,
        "entity_key": p.entity_key,
        "type": p.type,
        "attempts": p.attempts,
        "last_error": p.last_error,
        "parked_at": rfc3339(p.parked_at),
    }


def action_json(a: AdminAction) -> dict[str, Any]:
    """`{at, actor, action, target, details}`."""
    return {
        "id": a.id,
        "at": rfc3339(a.at),
        "actor": a.actor,
        "action": a.action,
        "target": a.target,
        "details": msgspec.to_builtins(a.details),
    }


def worker_records_of(records: list[WorkerRecord], name: str) -> list[WorkerRecord]:
    """The worker records of one subscription."""
    return [r for r in records if r.name == positions.checkpoint_name(name)]
