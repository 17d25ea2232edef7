"""Single-valued headers sent twice, on separate lines, through a real HTTP server (uvicorn).

(An in-process test client joins repeated headers into one comma-separated line;
uvicorn hands them to the app as they came.) Which of two keys, two actors or two
resume points counts would be the server's guess, so the request is refused.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from api import create_app
from eventstore.settings import Settings
from tests.e2e.processes import InProcessServer, serving

READ_KEY = "read-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
SUBSCRIPTION = json.dumps(
    {"sink": {"kind": "redis-pubsub", "url": "redis://127.0.0.1:1", "channel": "c"}}
)


@pytest.fixture(scope="module")
def server() -> Iterator[InProcessServer]:
    async def build() -> Any:
        settings = Settings(
            uri="memory://", source="simulator", read_keys=(READ_KEY,), admin_key=ADMIN_KEY
        )
        return create_app(settings)

    with serving(build) as s:
        yield s


def send(
    server: InProcessServer, method: str, path: str, headers: list[tuple[str, str]], body: str = ""
) -> tuple[int, dict[str, Any]]:
    """One request whose headers go out line by line, repeats included."""
    url = urlsplit(server.base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in [*headers, ("Content-Length", str(len(body.encode())))]:
            conn.putheader(name, value)
        conn.endheaders(body.encode() or None)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


def twice(detail: str, header: str) -> None:
    assert detail == f"the {header} header is given 2 times; send it once"


@pytest.mark.parametrize("path", ["/v1/streams", "/v1/admin/subscriptions"])
def test_two_authorization_headers_are_refused_whatever_their_order(
    server: InProcessServer, path: str
) -> None:
    key = ADMIN_KEY if "admin" in path else READ_KEY
    for pair in ((key, "wrong"), ("wrong", key), (key, key)):
        status, body = send(server, "GET", path, [("Authorization", f"Bearer {k}") for k in pair])
        assert status == 400, body
        twice(body["detail"], "Authorization")
    assert send(server, "GET", path, [("Authorization", f"Bearer {key}")])[0] == 200


def test_two_actors_are_refused_and_nothing_is_recorded(server: InProcessServer) -> None:
    admin = [("Authorization", f"Bearer {ADMIN_KEY}"), ("Content-Type", "application/json")]
    actors = [("Eventstore-Actor", "alice"), ("Eventstore-Actor", "mallory")]
    status, body = send(server, "PUT", "/v1/admin/subscriptions/s1", admin + actors, SUBSCRIPTION)
    assert status == 400, body
    twice(body["detail"], "Eventstore-Actor")
    erasure = json.dumps({"stream": "orders", "entity_key": "1", "reason": "asked"})
    status, body = send(server, "POST", "/v1/admin/erasures", admin + actors, erasure)
    assert status == 400, body
    twice(body["detail"], "Eventstore-Actor")
    assert send(server, "GET", "/v1/admin/actions", admin)[1]["items"] == []

    status, _ = send(server, "PUT", "/v1/admin/subscriptions/s1", admin + actors[:1], SUBSCRIPTION)
    assert status == 201
    [action] = send(server, "GET", "/v1/admin/actions", admin)[1]["items"]
    assert (action["actor"], action["action"], action["target"]) == ("alice", "create", "s1")


def test_two_resume_points_of_a_live_tail_are_refused(server: InProcessServer) -> None:
    headers = [
        ("Authorization", f"Bearer {READ_KEY}"),
        ("Last-Event-ID", "1"),
        ("Last-Event-ID", "9"),
    ]
    status, body = send(server, "GET", "/v1/events/live?timeout=0.1", headers)
    assert status == 400, body
    twice(body["detail"], "Last-Event-ID")
