"""Webhooks, signed as Standard Webhooks v1: one POST per event.

Headers `webhook-id` (the delivery id, the same on every attempt and replay),
`webhook-timestamp` (Unix seconds of this attempt), `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret during a
rotation). 2xx is delivered; 410 disables the subscription; 429, 502, 503, 504,
408, timeouts and connection errors are failures of the whole sink (with
`Retry-After`); anything else, 3xx included (redirects are not followed), is a
failure of this event.

The client is aiohttp (its parser is compiled): one POST costs about a sixth of
httpx's CPU, which is what keeps the tail latency at hundreds of deliveries a
second (see tests/benchmarks/bench_subscription_e2e.py). Connections are kept
alive and reused; the session is made on the first delivery, in the running loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import msgspec
from yarl import URL

from eventstore.codec import rfc3339
from eventstore.ports import Clock
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions import templates
from eventstore.subscriptions.secrets import SecretError, resolve
from eventstore.subscriptions.sinks.base import (
    DELIVERED,
    EVENT_FAILED,
    GONE,
    SINK_FAILED,
    Delivery,
    Outcome,
    os_reason,
    retry_after,
)

# Statuses that say the receiver (not this event) is in trouble: back off the whole sink.
SINK_STATUSES: Final = frozenset({408, 429, 502, 503, 504})
# At most this much of an answer's body is read (then the connection is dropped, not reused).
ANSWER_BYTES: Final = 64 * 1024
USER_AGENT: Final = "eventstore-webhooks/1"


def path_escape(value: str) -> str:
    """A template value in a URL: percent-encoded, and `.`/`..` too (`%2E`, `%2E%2E`).

    A value that is exactly a dot-segment would otherwise be removed by the receiver's URL
    normalisation (`/hooks/..` is `/`), so the POST would reach another path.
    """
    if value in (".", ".."):
        return "%2E" * len(value)
    return templates.url_escape(value)


# What `unreachable` says when no OS error tells more.
FAILED_CONNECTION: Final = "the connection failed"


def receiver(url: URL) -> str:
    """The receiver a URL names, as `host:port` (`[v6]:port`): every error names it."""
    host = url.host or ""
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"


def unreachable(exc: BaseException, url: URL) -> str:
    """Why a POST got no HTTP answer, naming the receiver's host and port."""
    where = receiver(url)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the receiver's host {exc.host}: {os_reason(exc.os_error, otherwise=FAILED_CONNECTION)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot reach the receiver {exc.host}:{exc.port}: {os_reason(exc.os_error, otherwise=FAILED_CONNECTION)}"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised before any status: the bytes that came back do not parse as HTTP.
        what = (exc.message or "").strip().splitlines()
        said = what[0].rstrip(":") if what else type(exc).__name__
        return f"the receiver {where} answered something that is not HTTP ({said})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"the receiver {where} closed the connection without an answer"
    if isinstance(exc, OSError):
        return f"cannot reach the receiver {where}: {os_reason(exc, otherwise=FAILED_CONNECTION)}"
    return f"cannot reach the receiver {where}: {type(exc).__name__}"


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `id.timestamp.body`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(delivery: Delivery) -> bytes:
    """`{"type": "<stream>.<type>", "timestamp": <occurred_at>, "data": <the event>}`."""
    e = delivery.event
    data = msgspec.Raw(delivery.body)
    return msgspec.json.encode(
        {"type": f"{e.stream}.{e.type}", "timestamp": rfc3339(e.occurred_at), "data": data}
    )


class WebhookSink:
    """POSTs each event to the configured URL (a template, values percent-encoded)."""

    strict = False
    # One POST per event: a batch would only serialize them behind one lane.
    max_batch: int | None = 1

    def __init__(self, sink: dict[str, Any], *, clock: Clock) -> None:
        raw = sink["secret"]
        secrets = raw if isinstance(raw, list) else [raw]
        self.keys: list[bytes] = []
        for s in secrets:
            key = cfg.webhook_key(resolve(s))
            if key is None:
                raise SecretError(f"a webhook secret is {cfg.SECRET_FORM}")
            self.keys.append(key)
        self.url = templates.parse(resolve(sink["url"]))
        self.headers = {h: resolve(v) for h, v in sink.get("headers", {}).items()}
        for h, v in self.headers.items():
            if not cfg.header_value_ok(v):  # read from the environment or a file
                raise SecretError(f"header {h}: the value holds control characters (CR, LF, ...)")
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=float(sink.get("timeout_s", 15)))
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                headers={"user-agent": USER_AGENT},
                # Proxies from HTTP(S)_PROXY / NO_PROXY, as httpx (the client before) did.
                trust_env=True,
                auto_decompress=False,
            )
        return self._session

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One POST per event, in order; stops after a failure of the whole sink."""
        out: list[Outcome] = []
        for d in deliveries:
            outcome = await self._post(d)
            out.append(outcome)
            if outcome.status in (SINK_FAILED, GONE):
                break
        return out

    async def _post(self, d: Delivery) -> Outcome:
        body = body_of(d)
        now = self.clock.now().timestamp()
        timestamp = int(now)
        signature = " ".join(sign(k, d.id, timestamp, body) for k in self.keys)
        headers = {
            **self.headers,
            "content-type": "application/json",
            "webhook-id": d.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        # Substituted values are percent-encoded already: the URL goes out as it is.
        url = URL(templates.render(self.url, d.values(), path_escape), encoded=True)
        try:
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry = response.headers.get("retry-after")
                # Read (a bounded part of) the answer so the connection can be reused.
                left = ANSWER_BYTES
                while left > 0 and (chunk := await response.content.read(left)):
                    left -= len(chunk)
        except TimeoutError:
            return Outcome(status=SINK_FAILED, detail=f"the receiver {receiver(url)} timed out")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(status=SINK_FAILED, detail=unreachable(exc, url))
        # Invariant: every error names the receiver as `host:port`, as `unreachable` does.
        answered = f"the receiver {receiver(url)} answered {status}"
        if 200 <= status < 300:
            return Outcome(status=DELIVERED)
        if status == 410:
            return Outcome(status=GONE, detail=f"{answered} Gone")
        if status in SINK_STATUSES:
            return Outcome(status=SINK_FAILED, detail=answered, retry_after=retry_after(retry, now))
        if 300 <= status < 400:
            return Outcome(status=EVENT_FAILED, detail=f"{answered} (redirects are not followed)")
        return Outcome(status=EVENT_FAILED, detail=answered)

    async def check(self) -> Outcome | None:
        """None: a receiver has nothing to refuse before a delivery (its answers say it all)."""
        return None

    async def close(self) -> None:
        """Close the HTTP client (its kept-alive connections)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
