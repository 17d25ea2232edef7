"""What is stored about subscriptions: their records, parked events, admin actions (pure Structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class SubscriptionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription as stored: its configuration (secrets as configured), controls and counters.

    `commands` are operator requests (reset, replay, skip) queued for the instance
    that delivers; counters are written by that instance.
    """

    name: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    paused: bool = False
    disabled_reason: str | None = None
    commands: list[dict[str, Any]] = []
    delivered: int = 0
    failed_attempts: int = 0
    unheard: int = 0
    already_delivered: int = 0
    last_error: str | None = None
    last_delivery_at: datetime | None = None


class ParkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event set aside after its retries ran out (or behind an earlier parked one of its entity)."""

    name: str
    seq: int
    stream: str
    entity_key: str
    type: str
    attempts: int
    last_error: str | None
    parked_at: datetime


class AdminAction(msgspec.Struct, frozen=True, kw_only=True):
    """One operator action, appended to the trail and never changed: `id` orders the trail."""

    id: str
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any] = {}
