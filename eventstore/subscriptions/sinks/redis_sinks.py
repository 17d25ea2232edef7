"""Redis sinks over redis-py's asyncio client: pub/sub, cache invalidation, streams.

- `redis-pubsub`: PUBLISH of the event JSON (which carries `seq` and the entity's
  `version`, so a receiver can detect a gap). Pub/sub is at-most-once: a PUBLISH
  that reached no subscriber counts as delivered (`unheard`, counted).
- `redis-invalidate`: literal keys with UNLINK; patterns (a template whose own text
  holds `*`, `?` or `[`) with SCAN MATCH + UNLINK, never KEYS; substituted values
  are glob-escaped in patterns, so an entity key `*` never widens one; optionally
  a second delete `again_after_ms` later, against a stale refill racing the first.
- `redis-stream`: XADD with the entry id `<seq>-0`, one field `event`, approximate
  MAXLEN, pipelined in seq order. Redis refuses an id at or below the stream's top
  ("equal or smaller"): that redelivery counts as delivered (`already`).

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


def _refused_config(exc: BaseException, redis: Redis) -> Outcome | None:
    """A refusal no retry can fix: credentials, rights, a database that does not exist."""
    text = str(exc)
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return Outcome(
            status=MISCONFIGURED,
            detail=f"Redis at {where(redis)} refused this user the command: {text}",
        )
    return _refused_connection(exc, redis)


def _refused_connection(exc: BaseException, redis: Redis) -> Outcome | None:
    """A refusal of the connection itself: its credentials, or its database."""
    text = str(exc)
    at = where(redis)
    if isinstance(exc, AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return Outcome(
            status=MISCONFIGURED,
            detail=f"Redis at {at} refused the credentials (authentication failed: {text}); "
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
                out.append(Outcome(status=EVENT_FAILED, detail=f"PUBLISH refused: {exc}"))
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
                out.append(Outcome(status=EVENT_FAILED, detail=f"delete refused: {exc}"))
                continue
            out.append(Outcome(status=DELIVERED))
        return out


class RedisStreamSink(_OnRedis):
    """XADD `<seq>-0` in seq order, pipelined; a refusal as "equal or smaller" is already delivered."""

    strict = True
    max_batch: int | None = None

    def __init__(self, sink: dict[str, Any], *, redis: Redis | None = None) -> None:
        self.stream = templates.parse(sink["stream"])
        self.maxlen: int | None = sink.get("maxlen", 1_000_000)
        self.redis = redis or client(sink["url"])

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One pipeline of XADDs; outcomes up to the first failure (every failure is the sink's)."""
        if not deliveries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for d in deliveries:
            pipe.xadd(
                render(self.stream, d),
                {"event": d.body},
                id=f"{d.event.seq}-0",
                maxlen=self.maxlen,
                approximate=True,
            )
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            failure = _failure(exc, self.redis)
            return [failure or Outcome(status=SINK_FAILED, detail=f"XADD failed: {exc}")]
        out: list[Outcome] = []
        tops: dict[str, str | None] = {}  # each refusing stream's top id, read once
        for d, result in zip(deliveries, results, strict=False):
            if isinstance(result, ResponseError) and EQUAL_OR_SMALLER in str(result):
                key = render(self.stream, d)
                if key not in tops:
                    tops[key] = await self._top(key)
                out.append(Outcome(status=ALREADY, top=tops[key]))
            elif isinstance(result, BaseException):
                # Strict order: never park; the whole subscription backs off and retries.
                refused = _refused_config(result, self.redis)
                out.append(refused or Outcome(status=SINK_FAILED, detail=f"XADD refused: {result}"))
                break
            else:
                out.append(Outcome(status=DELIVERED))
        return out

    async def _top(self, key: str) -> str | None:
        """The stream's last generated id (what refused the entry), or None when unknown."""
        try:
            info = await self.redis.xinfo_stream(key)
        except (RedisError, OSError):
            return None
        top = info.get("last-generated-id") if isinstance(info, dict) else None
        if isinstance(top, bytes):
            top = top.decode()
        return top if isinstance(top, str) else None
