"""The audit explorer: a single page at `/explorer` over the public `/v1` API.

The page is plain HTML, CSS and JavaScript shipped as package data in
`api/explorer_static/` (no build step; Chart.js is vendored with its licence);
it reads only the `/v1` API, so the API stays the one contract, and offers
nothing that modifies events. `ROUTES` goes into the app's route handlers:
`create_app(..., extra_routes=explorer.ROUTES)` or `route_handlers=[..., *ROUTES]`.

The routes are left out of the OpenAPI document (they are not part of the API)
and accept any query string (the page keeps its own state in the URL fragment).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Final

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router

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


ASSETS: Final = create_static_files_router(
    path=ASSETS_PATH,
    directories=[ASSETS_DIR],
    name="explorer-static",
    include_in_schema=False,
    opt=OPT,
    cache_control=CacheControlHeader(no_cache=True),
)

ROUTES: Final[list[Any]] = [explorer_page, ASSETS]

__all__ = ["ASSETS_DIR", "ROUTES", "STATIC_DIR"]
