"""Compression: brotli and gzip by Accept-Encoding, the size threshold, the exports, never SSE."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import brotli
import httpx
import pytest

from api import create_app
from api.compression import MINIMUM_SIZE, choose_encoding
from tests.api.conftest import AuditLog, settings


@pytest.fixture
async def client(audit_log: AuditLog) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(), store=audit_log.store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def raw(client: httpx.AsyncClient, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (`aiter_raw` does not decode).

    httpx sends `Accept-Encoding: gzip, deflate, br` unless told otherwise.
    """
    request = client.build_request("GET", path, headers=headers)
    response = await client.send(request, stream=True)
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, body


def vary(response: httpx.Response) -> set[str]:
    return {v.strip() for v in response.headers.get("vary", "").split(",")}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),  # br preferred when both are as welcome
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("br;q=0, gzip", "gzip"),
        ("*", "br"),
        ("*;q=0.1, gzip;q=0.9", "gzip"),
        ("GZIP;Q=1", "gzip"),
        ("deflate", None),
        ("br;q=bogus, gzip;q=0.2", "gzip"),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(
    accept: str | None, expected: str | None
) -> None:
    assert choose_encoding(accept) == expected


async def test_a_history_round_trips_through_br_and_gzip_and_is_smaller(
    client: httpx.AsyncClient, audit_log: AuditLog
) -> None:
    path = "/v1/events?limit=50"
    plain, plain_body = await raw(client, path, **{"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain_body) > 10 * MINIMUM_SIZE
    sizes: dict[str, int] = {"identity": len(plain_body)}
    for encoding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        response, body = await raw(client, path, **{"accept-encoding": encoding})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == encoding
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(body)
        assert "Accept-Encoding" in vary(response)
        assert decode(body) == plain_body
        sizes[encoding] = len(body)
    print(f"50 events of /v1/events: {sizes}")
    assert sizes["br"] < sizes["gzip"] < sizes["identity"] / 3


async def test_small_bodies_are_sent_as_they_are_with_vary(client: httpx.AsyncClient) -> None:
    response, body = await raw(client, "/health/live", **{"accept-encoding": "gzip, br"})
    assert len(body) < MINIMUM_SIZE
    assert "content-encoding" not in response.headers
    assert "Accept-Encoding" in vary(response)
    assert body.startswith(b'{"status":"live"')


async def test_problem_json_is_compressed_over_the_threshold(client: httpx.AsyncClient) -> None:
    # An unknown parameter name of control characters makes the 400 problem's detail long
    # (the name is quoted cut to 200 characters, each escaped as `\x01`).
    path = "/v1/events?" + "%01" * 1500 + "=1"
    response, body = await raw(client, path, **{"accept-encoding": "gzip"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-encoding"] == "gzip"
    assert b'"status":400' in gzip.decompress(body)


@pytest.mark.parametrize("media", ["text/csv", "application/x-ndjson"])
@pytest.mark.parametrize("encoding", ["br", "gzip"])
async def test_exports_stream_compressed(
    client: httpx.AsyncClient, audit_log: AuditLog, media: str, encoding: str
) -> None:
    _, plain_body = await raw(client, "/v1/events", accept=media, **{"accept-encoding": "identity"})
    response, body = await raw(client, "/v1/events", accept=media, **{"accept-encoding": encoding})
    assert response.headers["content-encoding"] == encoding
    assert "content-length" not in response.headers  # streamed
    decoded = brotli.decompress(body) if encoding == "br" else gzip.decompress(body)
    assert decoded == plain_body
    assert decoded.count(b"\n") == len(audit_log.events) + (media == "text/csv")


async def test_a_streamed_export_is_flushed_chunk_by_chunk(audit_log: AuditLog) -> None:
    """Each chunk the export yields is decodable when it arrives: compression keeps it streaming."""
    app = create_app(settings(), store=audit_log.store)
    chunks: list[bytes] = []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"accept", b"application/x-ndjson"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    sent_request = False
    complete = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await complete.wait()  # as a server does: disconnect once the response is over
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                complete.set()

    await app(scope, receive, send)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    seen = 0
    for chunk in chunks[:-1]:
        out = decoder.decompress(chunk)
        seen += out.count(b"\n")
        if chunk:
            assert out.endswith(b"\n")  # a whole page of lines, nothing held back
    assert seen + decoder.decompress(chunks[-1]).count(b"\n") == len(audit_log.events)


async def test_the_live_tail_is_never_compressed(client: httpx.AsyncClient) -> None:
    response, body = await raw(
        client, "/v1/events/live?after=0&limit=40", **{"accept-encoding": "gzip, br"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert len(body) > MINIMUM_SIZE
    assert body.count(b"\nid: ") + body.startswith(b"id: ") >= 1
    assert b"event: " in body


async def test_other_types_are_not_compressed(client: httpx.AsyncClient) -> None:
    response, _ = await raw(client, "/explorer", **{"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "content-encoding" not in response.headers
