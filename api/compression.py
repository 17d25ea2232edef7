"""Response compression: brotli or gzip by `Accept-Encoding` (q-values honoured, br preferred).

Compressed: JSON, problem+json, NDJSON and CSV bodies of at least `MINIMUM_SIZE`
bytes (a whole body, with `Content-Length`), and the streamed exports whatever
their size (their length is unknown when the headers go; each chunk is flushed as
it comes, so they stay streaming). Never the live tail (`text/event-stream`:
an event must reach the client when it happens), never another content type, a
body already encoded, or a status without a body. Every response of a
compressible type carries `Vary: Accept-Encoding`, compressed or not.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, cast

import brotli
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.headers import add_vary, has_header, quality_of

MINIMUM_SIZE: Final = 1024
COMPRESSIBLE: Final = frozenset(
    {"application/json", "application/problem+json", "application/x-ndjson", "text/csv"}
)
GZIP_LEVEL: Final = 6
# Quality 5: most of brotli's gain over gzip at a cost near gzip's (11 is for static files).
BROTLI_QUALITY: Final = 5


def choose_encoding(accept_encoding: str | None) -> str | None:
    """`br`, `gzip` or None (identity) for an `Accept-Encoding` value (RFC 9110 12.5.3)."""
    if not accept_encoding:
        return None
    quality: dict[str, float] = {}
    for part in accept_encoding.split(","):
        token, *params = (p.strip() for p in part.split(";"))
        if token:
            quality[token.lower()] = quality_of(params)
    star = quality.get("*", 0.0)
    br = quality.get("br", star)
    gzip = quality.get("gzip", quality.get("x-gzip", star))
    if br <= 0 and gzip <= 0:
        return None
    return "br" if br >= gzip else "gzip"


class _Encoder:
    """One response's compressor: `chunk()` returns what can be sent now, `end()` the rest."""

    def __init__(self, encoding: str) -> None:
        self.chunk: Callable[[bytes], bytes]
        self.end: Callable[[], bytes]
        if encoding == "br":
            c = brotli.Compressor(quality=BROTLI_QUALITY)
            self.chunk = lambda data: c.process(data) + c.flush()
            self.end = c.finish
        else:
            z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            self.chunk = lambda data: z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            self.end = z.flush


def _compress(encoding: str, body: bytes) -> bytes:
    if encoding == "br":
        return cast(bytes, brotli.compress(body, quality=BROTLI_QUALITY))
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return z.compress(body) + z.flush()


def _media_type(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return ""


class CompressionMiddleware:
    """Compresses the app's responses as the module says."""

    def __init__(self, app: ASGIApp, minimum_size: int = MINIMUM_SIZE) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        accept = next((v for k, v in scope["headers"] if k == b"accept-encoding"), b"")
        encoding = choose_encoding(accept.decode("latin-1"))
        start: Message | None = None
        encoder: _Encoder | None = None

        async def sending(message: Message) -> None:
            nonlocal start, encoder
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                status = message["status"]
                if _media_type(headers) not in COMPRESSIBLE or status < 200 or status in (204, 304):
                    await send(message)
                    return
                headers = add_vary(headers, b"Accept-Encoding")
                message = cast(Message, {**message, "headers": headers})
                if encoding is None or has_header(headers, b"content-encoding"):
                    await send(message)
                    return
                if not has_header(headers, b"content-length"):  # streamed: compress as it goes
                    encoder = _Encoder(encoding)
                    headers.append((b"content-encoding", encoding.encode()))
                    await send(message)
                    return
                start = message  # held until the body says whether it is worth it
                return
            if message["type"] != "http.response.body":
                await send(message)
            elif encoder is not None:
                more = message.get("more_body", False)
                data = encoder.chunk(message.get("body", b""))
                if not more:
                    data += encoder.end()
                await send({"type": "http.response.body", "body": data, "more_body": more})
            elif start is not None:
                await self._whole(send, start, message, cast(str, encoding))
                start = None
            else:
                await send(message)

        await self.app(scope, receive, sending)

    async def _whole(self, send: Send, start: Message, message: Message, encoding: str) -> None:
        """A response with Content-Length: compressed in one piece when over the threshold."""
        body = cast(bytes, message.get("body", b""))
        if message.get("more_body", False) or len(body) < self.minimum_size:
            # Below the threshold (or a length-announced body in parts): as it was.
            await send(start)
            await send(message)
            return
        packed = _compress(encoding, body)
        given = cast(list[tuple[bytes, bytes]], start.get("headers") or [])
        headers = [(k, v) for k, v in given if k.lower() != b"content-length"]
        headers += [
            (b"content-encoding", encoding.encode()),
            (b"content-length", str(len(packed)).encode()),
        ]
        await send(cast(Message, {**start, "headers": headers}))
        await send({"type": "http.response.body", "body": packed, "more_body": False})


__all__ = ["COMPRESSIBLE", "MINIMUM_SIZE", "CompressionMiddleware", "choose_encoding"]
