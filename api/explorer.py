"""The audit explorer: a single page at `/explorer` over the public `/v1` API.

The page is plain HTML, CSS and JavaScript shipped as package data in
`api/explorer_static/` (no build step; Chart.js is vendored with its licence);
it reads only the `/v1` API, so the API stays the one contract, and offers
nothing that modifies events. `ROUTES` goes into the app's route handlers:
`create_app(..., extra_routes=explorer.ROUTES)` or `route_handlers=[..., *ROUTES]`.

The routes are left out of the OpenAPI document (they are not part of the API)
and accept any query string (the page keeps its own state in the URL fragment).
Each shipped asset is a route of its own (`ASSETS`): any other path under
`/explorer/static` is unrouted, the API's 404 problem for an unknown path.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Final

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.file_system import BaseLocalFileSystem
from litestar.handlers import HTTPRouteHandler
from litestar.response.file import ASGIFileResponse
from litestar.static_files import StaticFiles

STATIC_DIR: Final = Path(__file__).resolve().parent / "explorer_static"
# The page itself is served by `explorer_page` (with its headers), the rest from here.
ASSETS_DIR: Final = STATIC_DIR / "assets"
PATH: Final = "/explorer"
ASSETS_PATH: Final = PATH + "/static"

# Everything the page loads comes from this origin; it is never framed.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS: Final = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
# Not API operations: no schema entry, no unknown-parameter check, no schema fuzzing.
OPT: Final[dict[str, Any]] = {"free_query": True, "skip_schema_fuzz": True}


@cache
def _page() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


# (Litestar routes `/explorer/` here too: its paths carry no trailing slash.)
@get(PATH, include_in_schema=False, opt=OPT, media_type=MediaType.HTML, sync_to_thread=False)
def explorer_page() -> Response[bytes]:
    """The explorer's single page."""
    return Response(_page(), media_type=MediaType.HTML, headers=PAGE_HEADERS)


# A file name the routes can carry as it is: each shipped file is one fixed route.
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def shipped_assets() -> list[str]:
    """The page's files under ASSETS_DIR, as paths relative to it (`vendor/chart-3.9.1.min.js`)."""
    return sorted(
        path.relative_to(ASSETS_DIR).as_posix() for path in ASSETS_DIR.rglob("*") if path.is_file()
    )


# Revalidated on each load (the page and its files change together on an upgrade).
_FILES: Final = StaticFiles(
    is_html_mode=False,
    directories=[ASSETS_DIR],
    file_system=BaseLocalFileSystem(),
    headers={"cache-control": CacheControlHeader(no_cache=True).to_header()},
)


def _asset_route(relative: str) -> HTTPRouteHandler:
    """The route of one shipped file: `/explorer/static/<relative>`, served as Litestar serves
    static files (Content-Type, ETag, Last-Modified, inline).

    A route per file, not one over the directory: a path that names no shipped file
    is then no route at all, the same 404 problem as any unknown path. Litestar's static
    files router joined the request's path to the directory: a NUL byte or a name past
    the file system's length limit was a 500, and its 404 said the absolute path.
    """

    async def asset() -> ASGIFileResponse:
        try:
            return await _FILES.handle(path=relative, is_head_response=False)
        except (NotFoundException, OSError):  # gone since the app started: not found
            raise NotFoundException() from None

    return get(
        f"{ASSETS_PATH}/{relative}",
        name=f"explorer-static:{relative}",
        include_in_schema=False,
        opt=OPT,
    )(asset)


ASSETS: Final = [_asset_route(name) for name in shipped_assets() if _PLAIN_NAME.fullmatch(name)]

ROUTES: Final[list[Any]] = [explorer_page, *ASSETS]

__all__ = ["ASSETS", "ASSETS_DIR", "ROUTES", "STATIC_DIR", "shipped_assets"]
