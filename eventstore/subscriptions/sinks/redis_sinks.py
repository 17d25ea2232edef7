"""Redis sinks over redis-py's asyncio client: pub/sub, cache invalidation, streams.

- `redis-pubsub`: PUBLISH of the event JSON (which carries `seq` and the entity's
  `version`, so a receiver can detect a gap). Pub/sub is at-most-once: a PUBLISH
  that reached no subscriber counts as delivered (`unheard`, counted).
- `redis-invalidate`: literal keys with UNLINK; patterns (a template whose own text
  holds `*`, `?` or `[`) with SCAN MATCH + UNLINK, never KEYS; substituted values
  are glob-escaped in patterns, so an entity key `*` never widens one; optionally
  a second delete `again_after_ms` later, against a stale refill racing the first.
- `redis-stream`: XADD with the entry id `<seq>-0`, fields `event` and `subscription`
  (the writer's name), approximate MAXLEN, pipelined in seq order. Redis refuses an id
  at or below the stream's top ("equal or smaller"). The refused id's entry tells who
  holds it: this subscription (a redelivery: `already`), or another writer (a second
  writer of one stream: `misconfigured`, never counted as delivered, as the event would
  be missing from the stream). See `RedisStreamSink._refused`.

A server that cannot be reached (connection refused or reset, timeout) is a
failure of the whole sink; the engine backs off the subscription. A server that
refuses the credentials or the user's rights, or has no such database, is a
configuration error (`misconfigured`): retrying cannot help, the worker fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eventstore.ports import Clock
from eventstore.subscriptions import templates
from eventstore.subscriptions.secrets import resolve
from eventstore.subscriptions.sinks.base import (
    ALREADY,
    DELIVERED,
    EVENT_FAILED,
    MISCONFIGURED,
    SINK_FAILED,
    UNHEARD,
    Delivery,
    Outcome,
    os_reason,
    render,
)

log = logging.getLogger("eventstore.subscriptions")

# Redis's refusal of an XADD id at or below the stream's top item.
EQUAL_OR_SMALLER: Final = "equal or smaller"
SCAN_COUNT: Final = 500
SOCKET_TIMEOUT_S: Final = 5.0
# How much of a Redis error reply a detail quotes: Redis's own texts run to a kilobyte
# (protected mode's DENIED), and a detail is shown in one status line.
REPLY_CHARS: Final = 200


def client(url: Any, *, timeout: float = SOCKET_TIMEOUT_S) -> Redis:
    """A client for a sink URL (literal or a secret reference); nothing connects yet.

    No retries inside the client: the engine retries, with its back-off and its counts.
    """
    return Redis.from_url(
        resolve(url),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def where(redis: Redis) -> str:
    """The server a client talks to, as `host:port` (or the socket's path)."""
    kw = redis.connection_pool.connection_kwargs
    if kw.get("path"):
        return str(kw["path"])
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def _unreached(exc: BaseException) -> str:
    """Why the server was not reached, in a few words (`connection refused`, `timed out`)."""
    if isinstance(exc, RedisTimeoutError):
        return "timed out"
    return os_reason(exc, otherwise=str(exc) or type(exc).__name__)


def _said(exc: BaseException) -> str:
    """What an error says on one line, at most REPLY_CHARS characters (cut with `…`)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= REPLY_CHARS else text[: REPLY_CHARS - 1] + "…"


def _error(command: str, exc: BaseException, redis: Redis) -> str:
    """Why `command` failed, naming the server as every Redis error does: its error reply
    (`Redis at h:6379 refused XADD: WRONGTYPE …`), or what else went wrong."""
    if isinstance(exc, ResponseError):
        return f"Redis at {where(redis)} refused {command}: {_said(exc)}"
    return f"{command} failed at Redis {where(redis)}: {_said(exc)}"


def _refused_config(exc: BaseException, redis: Redis) -> Outcome | None:
    """A refusal no retry can fix: credentials, rights, a database that does not exist."""
    text = str(exc)
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return Outcome(
            status=MISCONFIGURED,
            detail=f"Redis at {where(redis)} refused this user the command: {_said(exc)}",
        )
    return _refused_connection(exc, redis)


def _refused_connection(exc: BaseException, redis: Redis) -> Outcome | None:
    """A refusal of the connection itself: its credentials, or its database."""
    text = str(exc)
    at = where(redis)
    if isinstance(exc, AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return Outcome(
            status=MISCONFIGURED,
            detail=f"Redis at {at} refused the credentials (authentication failed: {_said(exc)}); "
            "check the user and password in the sink's URL",
        )
    if isinstance(exc, ResponseError) and "DB index is out of range" in text:
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        return Outcome(
            status=MISCONFIGURED,
            detail=f"Redis at {at} has no database {db} (DB index is out of range); "
            "fix the database number in the sink's URL",
        )
    return None


async def refused_at_connect(redis: Redis) -> Outcome | None:
    """The credentials or the database a connection is refused for, before any delivery.

    A PING opens a connection, which authenticates and selects the database. Whatever
    else goes wrong (the server away, this user not allowed PING) is None here: the
    deliveries meet it and say so, retried.
    """
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        return _refused_connection(exc, redis)
    return None


def _failure(exc: BaseException, redis: Redis) -> Outcome | None:
    """A failure of the whole sink (unreachable, misconfigured), or None: about this event."""
    refused = _refused_config(exc, redis)
    if refused is not None:
        return refused
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
        return Outcome(
            status=SINK_FAILED, detail=f"Redis unreachable at {where(redis)}: {_unreached(exc)}"
        )
    return None


class _OnRedis:
    """What every Redis sink does alike with its client: check it at start, close it."""

    redis: Redis

    async def check(self) -> Outcome | None:
        """Credentials and database, refused when a connection opens (`refused_at_connect`)."""
        return await refused_at_connect(self.redis)

    async def close(self) -> None:
        """Close the client."""
        await self.redis.aclose()


class RedisPubSubSink(_OnRedis):
    """PUBLISH each event on its channel."""

    strict = False
    max_batch: int | None = None

    def __init__(self, sink: dict[str, Any], *, redis: Redis | None = None) -> None:
        self.channel = templates.parse(sink["channel"])
        self.redis = redis or client(sink["url"])

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """PUBLISH in order; a server away stops the batch."""
        out: list[Outcome] = []
        for d in deliveries:
            try:
                receivers = await self.redis.publish(render(self.channel, d), d.body)
            except (RedisError, OSError) as exc:
                failure = _failure(exc, self.redis)
                if failure is not None:
                    out.append(failure)
                    break
                out.append(Outcome(status=EVENT_FAILED, detail=_error("PUBLISH", exc, self.redis)))
                continue
            out.append(Outcome(status=DELIVERED if receivers else UNHEARD))
        return out


class RedisInvalidateSink(_OnRedis):
    """Delete each event's cache keys: UNLINK literal keys, SCAN MATCH + UNLINK patterns."""

    strict = False
    max_batch: int | None = None

    def __init__(self, sink: dict[str, Any], *, clock: Clock, redis: Redis | None = None) -> None:
        self.keys = [templates.parse(k) for k in sink["keys"]]
        self.again_after_ms = int(sink.get("again_after_ms", 0))
        self.clock = clock
        self.redis = redis or client(sink["url"])

    async def _delete(self, d: Delivery) -> int:
        values = d.values()
        literal: list[str] = []
        removed = 0
        for parts in self.keys:
            if templates.is_pattern(parts):
                pattern = templates.render(parts, values, templates.glob_escape)
                batch: list[bytes] = []
                async for key in self.redis.scan_iter(match=pattern, count=SCAN_COUNT):
                    batch.append(key)
                    if len(batch) >= SCAN_COUNT:
                        removed += int(await self.redis.unlink(*batch))
                        batch = []
                if batch:
                    removed += int(await self.redis.unlink(*batch))
            else:
                literal.append(templates.render(parts, values))
        if literal:
            removed += int(await self.redis.unlink(*literal))
        return removed

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Invalidate in order (a second time after `again_after_ms` when set)."""
        out: list[Outcome] = []
        for d in deliveries:
            try:
                await self._delete(d)
                if self.again_after_ms:
                    await self.clock.sleep(self.again_after_ms / 1000)
                    await self._delete(d)
            except (RedisError, OSError) as exc:
                failure = _failure(exc, self.redis)
                if failure is not None:
                    out.append(failure)
                    break
                out.append(
                    Outcome(status=EVENT_FAILED, detail=_error("the invalidation", exc, self.redis))
                )
                continue
            out.append(Outcome(status=DELIVERED))
        return out


# The entry field naming the subscription that wrote an entry.
WRITER_FIELD: Final = "subscription"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _seq_of(entry_id: Any) -> int | None:
    """The seq of an entry id of this sink's shape (`<seq>-0`), else None."""
    ms, _, part = _text(entry_id).partition("-")
    return int(ms) if ms.isdigit() and part == "0" else None


class RedisStreamSink(_OnRedis):
    """XADD `<seq>-0` in seq order, pipelined, each entry naming its writer; a refusal as
    "equal or smaller" is already delivered only when this subscription holds that id."""

    strict = True
    max_batch: int | None = None

    def __init__(
        self, sink: dict[str, Any], *, writer: str = "", redis: Redis | None = None
    ) -> None:
        self.stream = templates.parse(sink["stream"])
        self.maxlen: int | None = sink.get("maxlen", 1_000_000)
        self.writer = writer
        self.redis = redis or client(sink["url"])

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One pipeline of XADDs; outcomes up to the first failure (every failure is the sink's)."""
        if not deliveries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for d in deliveries:
            pipe.xadd(
                render(self.stream, d),
                {"event": d.body, WRITER_FIELD: self.writer},
                id=f"{d.event.seq}-0",
                maxlen=self.maxlen,
                approximate=True,
            )
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            failure = _failure(exc, self.redis)
            return [failure or Outcome(status=SINK_FAILED, detail=_error("XADD", exc, self.redis))]
        refused = [
            d
            for d, result in zip(deliveries, results, strict=False)
            if isinstance(result, ResponseError) and EQUAL_OR_SMALLER in str(result)
        ]
        try:
            held = await self._holders(refused) if refused else {}
        except (RedisError, OSError) as exc:
            failure = _failure(exc, self.redis)
            return [
                failure or Outcome(status=SINK_FAILED, detail=_error("XRANGE", exc, self.redis))
            ]
        out: list[Outcome] = []
        for d, result in zip(deliveries, results, strict=False):
            if isinstance(result, ResponseError) and EQUAL_OR_SMALLER in str(result):
                outcome = self._refused(d, held)
                out.append(outcome)
                if not outcome.settled:
                    break
            elif isinstance(result, BaseException):
                # Strict order: never park; the whole subscription backs off and retries.
                refused_config = _refused_config(result, self.redis)
                out.append(
                    refused_config
                    or Outcome(status=SINK_FAILED, detail=_error("XADD", result, self.redis))
                )
                break
            else:
                out.append(Outcome(status=DELIVERED))
        return out

    async def _holders(self, refused: Sequence[Delivery]) -> dict[str, Any]:
        """In one round trip: each refused id's entry (if the stream holds it), and each
        refusing stream's first and top entries (keyed `id@key`, `first@key`, `top@key`)."""
        pipe = self.redis.pipeline(transaction=False)
        names: list[str] = []
        keys: list[str] = []
        for d in refused:
            key = render(self.stream, d)
            entry_id = f"{d.event.seq}-0"
            pipe.xrange(key, min=entry_id, max=entry_id, count=1)
            names.append(f"{entry_id}@{key}")
            if key not in keys:
                keys.append(key)
        for key in keys:
            pipe.xrange(key, count=1)
            names.append(f"first@{key}")
            pipe.xrevrange(key, count=1)
            names.append(f"top@{key}")
        results = await pipe.execute(raise_on_error=True)
        return {n: (r[0] if r else None) for n, r in zip(names, results, strict=True)}

    def _refused(self, d: Delivery, held: dict[str, Any]) -> Outcome:
        """What an id Redis refused as at or below the stream's top is.

        Invariant: an event counts as delivered only when the stream holds this
        subscription's own entry for it, or when trimming removed it: its id is below
        the stream's first entry and that entry is this subscription's (MAXLEN trims the
        oldest; a stream emptied of every entry cannot say, and counts as before). Any
        other refusal (another writer's entry at that id, no entry at an id within the
        stream, or below another writer's first entry) is a second writer of the stream:
        the event is not in it, and retrying cannot put it there.
        """
        key = render(self.stream, d)
        seq = d.event.seq
        entry = held.get(f"{seq}-0@{key}")
        top = held.get(f"top@{key}")
        top_id = _text(top[0]) if top is not None else None
        if entry is not None:
            if self._mine(entry[1]):
                return Outcome(status=ALREADY)  # its own entry: a redelivery
            return self._conflict(
                key, seq, f"entry {seq}-0 was written by {_who(entry[1])}, not by this subscription"
            )
        first = held.get(f"first@{key}")
        if first is None:
            return Outcome(status=ALREADY, top=top_id)  # emptied below its top: cannot tell
        first_seq = _seq_of(first[0])
        if first_seq is not None and first_seq > seq and self._mine(first[1]):
            return Outcome(status=ALREADY, top=top_id)  # trimmed from this subscription's own
        above = f"the top entry {top_id} (written by {_who(top[1])})" if top else "the top"
        return self._conflict(
            key, seq, f"entry {seq}-0 is refused below {above}, and the stream does not hold it"
        )

    def _mine(self, fields: Any) -> bool:
        """True when an entry is this subscription's: it names it, or it holds the one field
        `event` alone (written before entries named their writer, taken as its own)."""
        named = {_text(k): v for k, v in fields.items()}
        writer = named.get(WRITER_FIELD)
        if writer is None:
            return set(named) == {"event"}
        return _text(writer) == self.writer

    def _conflict(self, key: str, seq: int, what: str) -> Outcome:
        """A second writer of the stream: the worker fails with this (and a WARNING)."""
        detail = (
            f"the Redis stream {key!r} at {where(self.redis)}: {what}: another writer "
            f"writes this stream, so seq {seq} is missing from it; give subscription "
            f"{self.writer!r} a stream of its own (or stop the other writer and remove its "
            "entries), then restart its worker"
        )
        log.warning("subscription %s: %s", self.writer, detail)
        return Outcome(status=MISCONFIGURED, detail=detail)


def _who(fields: Any) -> str:
    """The writer an entry names (`subscription 'x'`), or `another writer`."""
    named = {_text(k): v for k, v in fields.items()}.get(WRITER_FIELD)
    return f"subscription {_text(named)!r}" if named is not None else "another writer"
