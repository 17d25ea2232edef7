"""What a sink is told (a `Delivery`) and what it answers (an `Outcome`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Final, Protocol

import msgspec

from eventstore.keys import event_typed_key
from eventstore.model import Event
from eventstore.subscriptions import templates

DELIVERED: Final = "delivered"
# The sink already held it (a redis-stream refusal of an id at or below its top): delivered.
ALREADY: Final = "already"
# A PUBLISH that reached no subscriber: delivered (pub/sub is at-most-once), and counted.
UNHEARD: Final = "unheard"
# A failure about this one event: it follows the event's retry schedule, then parks.
EVENT_FAILED: Final = "event-failed"
# A failure of the whole sink: the subscription backs off (never parks).
SINK_FAILED: Final = "sink-failed"
# The receiver asked to stop (HTTP 410): the subscription is disabled.
GONE: Final = "gone"
# The sink cannot work as configured (credentials refused, no such Redis database):
# retrying cannot help, the subscription's worker fails with the reason.
MISCONFIGURED: Final = "misconfigured"
SETTLING: Final = frozenset({DELIVERED, ALREADY, UNHEARD})
# `Retry-After` is honoured up to this many seconds.
MAX_RETRY_AFTER: Final = 3600.0


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event to deliver: its stable id (`<name>-<seq>`) and its JSON as /v1/events shows it."""

    id: str
    event: Event
    body: bytes

    def values(self) -> dict[str, str]:
        """The template values of this event."""
        e = self.event
        return {
            "stream": e.stream,
            "entity_key": e.entity_key,
            "typed_key": event_typed_key(e),
            "type": e.type,
            "seq": str(e.seq),
            "version": str(e.version),
        }


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one delivery attempt."""

    status: str
    detail: str | None = None
    retry_after: float | None = None
    # `already`: the Redis stream's top id when it refused the entry (another writer's?).
    top: str | None = None

    @property
    def settled(self) -> bool:
        """True when the event counts as delivered."""
        return self.status in SETTLING


class Sink(Protocol):
    """A destination; `strict` sinks take events strictly in seq order (redis-stream)."""

    strict: bool
    # Events one lane hands the sink at once (None: the worker's `entity_batch`). A sink
    # that gains nothing from a batch (one request per event) takes 1, so every free lane
    # starts the next ready entity at once instead of idling behind another lane's batch.
    max_batch: int | None

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Deliver events in order; one outcome each (a strict sink may stop early: fewer)."""
        ...

    async def check(self) -> Outcome | None:
        """A MISCONFIGURED outcome when the destination refuses this configuration as such
        (credentials, a database that does not exist) before any delivery; else None (a
        destination away now is the deliveries' to meet, retried)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def render(parts: tuple[templates.Part, ...], delivery: Delivery) -> str:
    """A template for this delivery, values as they are (Redis keys and channels)."""
    return templates.render(parts, delivery.values())


def retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), capped at 1 hour."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isascii() and value.isdigit():  # delay-seconds (RFC 9110): ASCII digits only
        seconds = float(value) if len(value) <= 12 else MAX_RETRY_AFTER
    else:
        from email.utils import parsedate_to_datetime

        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = at.timestamp() - now_epoch
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def os_reason(error: BaseException | None, *, otherwise: str) -> str:
    """The OS error under a client's error, as a few words (`connection refused`), or `otherwise`.

    Walks the exception's causes: an errno (`connection refused`), a resolver's failure
    (`name or service not known`), a timeout. Never the client's own message: it may
    quote the whole URL, credentials included.
    """
    seen: set[int] = set()
    current = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None and current.errno > 0:
            return os.strerror(current.errno).lower()
        if isinstance(current, socket.gaierror) and current.strerror:
            return current.strerror.lower()  # negative codes: the resolver's own
        if isinstance(current, TimeoutError):
            return "timed out"
        current = current.__cause__ or current.__context__
    return otherwise
