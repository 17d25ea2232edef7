"""CORS for the origins of `CORS_ORIGINS` (or `*`): preflights answered here, before any guard.

A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) from a
listed origin gets 204 with `Allow` and the `Access-Control-Allow-*` headers; from
an unlisted origin it gets the plain OPTIONS answer, without them, and the
browser refuses the request. Actual responses to a listed origin carry
`Access-Control-Allow-Origin` and `Vary: Origin`. Keys are sent in
`Authorization`, never as cookies, so credentials mode is not offered; the read
and admin guards judge the real request as they would any other.
"""

from __future__ import annotations

from typing import Any, Final, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.headers import add_vary, request_header
from api.methods import Allowed, allow_header, respond

REQUEST_HEADERS: Final = (
    "Authorization",
    "Accept",
    "Content-Type",
    "Last-Event-ID",
    "Eventstore-Actor",
)
# Response headers a page may read besides the CORS-safelisted ones.
EXPOSED_HEADERS: Final = ("Content-Disposition", "WWW-Authenticate", "Allow", "Retry-After")
MAX_AGE_SECONDS: Final = 600


class CorsMiddleware:
    """Preflights and `Access-Control-Allow-Origin` for the configured origins."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], allowed: Allowed) -> None:
        self.app = app
        self.any = "*" in origins
        self.origins = frozenset(o.rstrip("/").lower() for o in origins if o != "*")
        self.allowed = allowed

    def _listed(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin.rstrip("/").lower() in self.origins)

    def _allow_origin(self, origin: str) -> bytes:
        return b"*" if self.any else origin.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not (self.any or self.origins):
            await self.app(scope, receive, send)
            return
        origin = request_header(scope, b"origin")
        listed = self._listed(origin)
        if listed and scope.get("method") == "OPTIONS":
            requested = request_header(scope, b"access-control-request-method")
            route = self.allowed(scope["path"]) if requested is not None else None
            if route is not None:
                cast(dict[str, Any], scope)["path_template"] = route.template
                await self._preflight(send, cast(str, origin), route.methods)
                return
        added: list[tuple[bytes, bytes]] = []
        if listed:
            added = [
                (b"access-control-allow-origin", self._allow_origin(cast(str, origin))),
                (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
            ]
        elif self.any:  # the answer is the same for every origin
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Listed origins are answered differently from the rest: caches must keep apart.
                headers = [*(message.get("headers") or []), *added]
                message = cast(Message, {**message, "headers": add_vary(headers, b"Origin")})
            await send(message)

        await self.app(scope, receive, sending)

    async def _preflight(self, send: Send, origin: str, allowed: frozenset[str]) -> None:
        allow = allow_header(allowed).encode()
        headers = [
            (b"allow", allow),
            (b"access-control-allow-origin", self._allow_origin(origin)),
            (b"access-control-allow-methods", allow),
            (b"access-control-allow-headers", ", ".join(REQUEST_HEADERS).encode()),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
        ]
        await respond(send, 204, add_vary(headers, b"Origin"), b"")


__all__ = ["REQUEST_HEADERS", "CorsMiddleware"]
