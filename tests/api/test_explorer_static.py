"""The explorer's files as served and as shipped: no browser needed (see tests/e2e/test_explorer.py)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import create_app, explorer
from tests.api.conftest import ADMIN_KEY, READ_KEY, settings
from tests.integration.conftest import open_test_store

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in explorer.STATIC_DIR.rglob("*") if p.is_file())
PAGE_FILES = [p for p in SHIPPED if p.suffix in (".html", ".js", ".css")]
ASSET_REF = re.compile(r'(?:src|href)="([^"]*)"')


async def client_for(**kw: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    """A client of the app with the explorer (create_app also adds it by itself)."""
    store = await open_test_store("memory")
    app = create_app(settings(**kw), store=store, extra_routes=explorer.ROUTES)
    async with AsyncTestClient(app) as c:
        yield c


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    async for c in client_for():
        yield c


def page_refs() -> list[str]:
    return ASSET_REF.findall((explorer.STATIC_DIR / "index.html").read_text())


async def test_the_page_is_served_as_html_with_a_strict_policy(
    client: AsyncTestClient[Any],
) -> None:
    for path in ("/explorer", "/explorer/", "/explorer?from=docs"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>eventstore explorer</title>" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_every_asset_the_page_names_is_served(client: AsyncTestClient[Any]) -> None:
    refs = [ref for ref in page_refs() if ref.startswith("/")]
    assert {"/explorer/static/explorer.js", "/explorer/static/explorer.css"} <= set(refs)
    assert any(ref.startswith("/explorer/static/vendor/chart") for ref in refs)
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for ref in refs:
        r = await client.get(ref)
        assert r.status_code == 200, ref
        assert r.headers["content-type"].startswith(kinds[Path(ref).suffix]), ref
        assert (
            r.content == (explorer.ASSETS_DIR / ref.removeprefix("/explorer/static/")).read_bytes()
        )
    missing = await client.get("/explorer/static/nothing.js")
    assert missing.status_code == 404


async def test_the_page_loads_without_a_key_when_reads_need_one() -> None:
    """The page must load to ask for the key; the API behind it stays closed."""
    async for c in client_for(read_keys=(READ_KEY,), admin_key=ADMIN_KEY):
        assert (await c.get("/explorer")).status_code == 200
        assert (await c.get("/explorer/static/explorer.js")).status_code == 200
        assert (await c.get("/v1/streams")).status_code == 401


async def test_create_app_serves_the_explorer_by_itself() -> None:
    store = await open_test_store("memory")
    async with AsyncTestClient(create_app(settings(), store=store)) as c:
        assert (await c.get("/explorer")).status_code == 200
        assert (await c.get("/explorer/static/explorer.js")).status_code == 200


async def test_the_explorer_is_not_an_api_operation(client: AsyncTestClient[Any]) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith("/explorer")]


def _without_comments(path: Path) -> str:
    text = path.read_text()
    if path.suffix == ".html":
        return re.sub(r"<!--.*?-->", "", text, flags=re.S)
    # Licence headers (/*! … */) and other block comments; no URL is fetched from those.
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_nothing_is_fetched_from_another_host(path: Path) -> None:
    code = _without_comments(path)
    assert not re.findall(r"https?://[^\s\"'`)]+", code), f"{path.name} names an external URL"
    assert not re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?//""", code), "protocol-relative URL"
    if path.suffix == ".html":
        for ref in page_refs():
            assert ref.startswith(("/", "#", "data:")), ref


def test_the_vendored_chart_library_ships_with_its_licence() -> None:
    vendored = list((explorer.ASSETS_DIR / "vendor").glob("*.min.js"))
    assert vendored
    for lib in vendored:
        licence = lib.with_name(lib.name.removesuffix(".min.js") + ".LICENSE.txt")
        assert licence.exists(), f"{lib.name} has no licence file"
        assert "Permission is hereby granted" in licence.read_text()


def test_the_page_uses_only_the_v1_api_and_modifies_nothing() -> None:
    script = (explorer.ASSETS_DIR / "explorer.js").read_text()
    # Only reads, and the admin requests that ask for a rebuild or replay or skip parked
    # subscription events (never an event is written or changed).
    assert not re.search(r"'(PUT|PATCH|DELETE)'", script)
    assert len(re.findall(r"method:\s*'POST'", script)) == 1
    posts = re.findall(r"`(/v1/admin/[^`]*)`, 'POST'", script)
    assert sorted(posts) == [
        "/v1/admin/subscriptions/${enc(name)}/parked/${p.seq}/skip",
        "/v1/admin/subscriptions/${enc(subs.open)}/parked/replay",
    ]
    paths = set(re.findall(r"[`'](/[a-z][^`']*)", script))
    api = {p for p in paths if not p.startswith(("/explorer", "/#"))}
    assert api and all(p.startswith("/v1/") for p in api), sorted(api - {"/v1/"})


def test_every_shipped_file_is_package_data() -> None:
    """An installed package (a wheel) carries the page: pyproject's globs cover every file."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["api"]
    api_dir = ROOT / "api"
    for path in SHIPPED:
        relative = path.relative_to(api_dir)
        assert any(relative.match(g) for g in globs), f"{relative} is not package data"
