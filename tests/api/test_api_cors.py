"""CORS_ORIGINS: preflights and actual responses for listed, unlisted and `*` origins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest

from api import create_app
from api.cors import REQUEST_HEADERS
from eventstore.settings import Settings, SettingsError, load
from tests.api.conftest import ADMIN_KEY, READ_KEY, AuditLog, settings

LISTED: Final = "https://audit.example.com"
OTHER: Final = "http://localhost:5173"
UNLISTED: Final = "https://evil.example"


def preflight(origin: str, method: str = "GET", headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def _client(audit_log: AuditLog, **kw: Any) -> httpx.AsyncClient:
    app = create_app(settings(**kw), store=audit_log.store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def keyed(audit_log: AuditLog) -> AsyncIterator[httpx.AsyncClient]:
    """Two listed origins, both keys set."""
    async with await _client(
        audit_log, cors_origins=(LISTED, OTHER), admin_key=ADMIN_KEY, read_keys=(READ_KEY,)
    ) as c:
        yield c


async def test_preflight_from_a_listed_origin_gets_the_allow_headers_without_a_key(
    keyed: httpx.AsyncClient,
) -> None:
    for origin in (LISTED, OTHER):
        response = await keyed.options("/v1/events", headers=preflight(origin))
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
        assert allowed == {
            "Authorization",
            "Accept",
            "Content-Type",
            "Last-Event-ID",
            "Eventstore-Actor",
        }
        assert allowed == set(REQUEST_HEADERS)
        assert response.headers["allow"] == "GET, HEAD, OPTIONS"
        assert "Origin" in response.headers["vary"]
        assert "access-control-allow-credentials" not in response.headers
    admin = await keyed.options(
        "/v1/admin/projections/order_summary/rebuild", headers=preflight(LISTED, "POST")
    )
    assert admin.status_code == 204
    assert admin.headers["access-control-allow-methods"] == "POST, OPTIONS"


async def test_preflight_from_an_unlisted_origin_gets_no_cors_headers(
    keyed: httpx.AsyncClient,
) -> None:
    response = await keyed.options("/v1/events", headers=preflight(UNLISTED))
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert not [h for h in response.headers if h.startswith("access-control-")]


async def test_actual_responses_carry_the_origin_for_listed_origins_only(
    keyed: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {READ_KEY}"}
    listed = await keyed.get("/v1/streams", headers={"Origin": LISTED, **auth})
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == LISTED
    assert "Origin" in {v.strip() for v in listed.headers["vary"].split(",")}
    unlisted = await keyed.get("/v1/streams", headers={"Origin": UNLISTED, **auth})
    assert unlisted.status_code == 200
    assert "access-control-allow-origin" not in unlisted.headers
    assert "Origin" in unlisted.headers["vary"]  # a cache must keep the two answers apart
    # Errors carry it too, or the page could not read them.
    missing = await keyed.get("/v1/streams/nope/verify", headers={"Origin": LISTED, **auth})
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == LISTED


async def test_guards_apply_to_the_real_request_from_a_listed_origin(
    keyed: httpx.AsyncClient,
) -> None:
    origin = {"Origin": LISTED}
    no_key = await keyed.get("/v1/streams", headers=origin)
    assert no_key.status_code == 401
    assert no_key.headers["access-control-allow-origin"] == LISTED
    read_on_admin = await keyed.post(
        "/v1/admin/projections/order_summary/rebuild",
        headers={**origin, "Authorization": f"Bearer {READ_KEY}"},
    )
    assert read_on_admin.status_code == 403


async def test_star_allows_every_origin(audit_log: AuditLog) -> None:
    async with await _client(audit_log, cors_origins=("*",)) as c:
        pre = await c.options("/v1/streams", headers=preflight(UNLISTED))
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "*"
        got = await c.get("/v1/streams", headers={"Origin": UNLISTED})
        assert got.headers["access-control-allow-origin"] == "*"
        plain = await c.get("/v1/streams")
        assert "access-control-allow-origin" not in plain.headers


async def test_no_origins_configured_means_no_cors_headers(audit_log: AuditLog) -> None:
    async with await _client(audit_log) as c:
        pre = await c.options("/v1/streams", headers=preflight(LISTED))
        assert pre.status_code == 204
        got = await c.get("/v1/streams", headers={"Origin": LISTED})
    for response in (pre, got):
        assert not [h for h in response.headers if h.startswith("access-control-")]


def test_the_setting_is_validated_and_read_from_the_environment() -> None:
    env = {"EVENTSTORE_CORS_ORIGINS": f"{LISTED}, {OTHER} ,http://[::1]:8080"}
    assert load(env).cors_origins == (LISTED, OTHER, "http://[::1]:8080")
    assert load({"EVENTSTORE_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    assert load({}).cors_origins == ()
    for bad in ("example.com", "https://example.com/", "https://a.example/path", "*,https://x.io"):
        with pytest.raises(SettingsError, match="CORS_ORIGINS"):
            load({"EVENTSTORE_CORS_ORIGINS": bad})
    flagged = load({"EVENTSTORE_CORS_ORIGINS": LISTED}, {"cors_origins": OTHER})
    assert flagged.cors_origins == (OTHER,)
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        Settings(cors_origins=("https://a.example/",))  # checked however Settings is built
