"""OPTIONS, HEAD and undeclared methods, answered alike on every route, before routing and auth.

- OPTIONS: 204 with `Allow` (what the path answers, HEAD and OPTIONS included); no
  handler runs and no key is needed (a CORS preflight carries none).
- HEAD: the GET runs, flagged (`is_head`), and its status and headers are sent
  without the body. Streaming handlers (the live tail, the exports) look at the
  flag and skip their query and stream.
- Any other method the path does not declare: 405 problem+json with `Allow`.

A path no route answers (unknown, or a parameter that does not parse) is the
router's 404 problem for every method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple, cast

import msgspec
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils import normalize_path

from api.problems import PROBLEM_JSON, TYPE_BASE, Problem

HEAD_FLAG: Final = "eventstore.head"
# A method name no route declares: routing with it names the methods a path has.
_PROBE: Final = "EVENTSTORE-ALLOW-PROBE"
# The order `Allow` lists methods in (anything else after, sorted).
_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ENCODER: Final = msgspec.json.Encoder()


class PathMethods(NamedTuple):
    """What a path answers: its methods and its route's template (a bounded metrics label)."""

    methods: frozenset[str]
    template: str


Allowed = Callable[[str], PathMethods | None]


def allowed_methods(app: Litestar, path: str) -> PathMethods | None:
    """The methods `path` answers (HEAD wherever GET, OPTIONS always); None when no route matches."""
    router = app.asgi_router
    normalized = normalize_path(path)
    try:
        router.handle_routing(path=normalized, method=_PROBE)
    except MethodNotAllowedException as exc:
        declared = {m.strip() for m in (exc.headers or {}).get("allow", "").split(",") if m.strip()}
    except HTTPException:  # no such path (404), or a websocket-only one
        return None
    else:  # a mounted ASGI app takes every method
        declared = {"GET", "POST", "PUT", "PATCH", "DELETE"}
    template = ""
    for method in sorted(declared):
        try:
            template = router.handle_routing(path=normalized, method=method)[4]
            break
        except HTTPException:  # a path parameter of the wrong type: no route after all
            return None
    if "GET" in declared:
        declared.add("HEAD")
    declared.add("OPTIONS")
    return PathMethods(frozenset(declared), template or normalized)


def allow_header(methods: frozenset[str]) -> str:
    """`Allow`'s value: the usual order, GET first."""
    known = [m for m in _ORDER if m in methods]
    return ", ".join(known + sorted(methods - set(_ORDER)))


def is_head(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when this GET runs for a HEAD request: send the headers, skip any stream."""
    return bool(cast(dict[str, Any], connection.scope).get(HEAD_FLAG))


def _not_allowed(method: str, allow: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = _ENCODER.encode(
        Problem(
            type=TYPE_BASE + "method-not-allowed",
            title="Method Not Allowed",
            status=405,
            detail=f"{method[:20]} is not allowed here (allowed: {allow})",
        )
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"allow", allow.encode()),
    ]
    return body, headers


def _not_found() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The router's own 404 problem (the same body as a GET of an unknown path)."""
    body = _ENCODER.encode(
        Problem(type=TYPE_BASE + "not-found", title="Not Found", status=404, detail="Not Found")
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """A whole response in two messages."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _bodiless(send: Send) -> Send:
    """`send` that passes a response's start and end but none of its body (HEAD)."""

    async def sending(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
        elif not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return sending


class MethodsMiddleware:
    """OPTIONS, HEAD and 405 for the app inside, as the module says."""

    def __init__(self, app: ASGIApp, allowed: Allowed) -> None:
        self.app = app
        self.allowed = allowed

    async def _unrouted(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        """No route answers the path: the router's 404 problem, whatever the method.

        Routed as itself, a path whose shape matches a route but whose parameter does
        not parse (`/v1/events/abc/proof`) would be a 404 for some methods and a 405
        for others (the router checks the method before the parameters).
        """
        del scope, receive  # nothing to route
        body, headers = _not_found()
        await respond(send, 404, headers, b"" if method == "HEAD" else body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = cast(str, scope.get("method", ""))
        route = self.allowed(scope["path"])
        if route is None:
            await self._unrouted(scope, receive, send, method)
            return
        allowed = route.methods
        if method in ("OPTIONS", "HEAD") or method not in allowed:
            cast(dict[str, Any], scope)["path_template"] = route.template
        if method == "OPTIONS":
            await respond(send, 204, [(b"allow", allow_header(allowed).encode())], b"")
        elif method not in allowed:
            body, headers = _not_allowed(method, allow_header(allowed))
            await respond(send, 405, headers, body)
        elif method == "HEAD":
            # In place, so the layers outside see the route Litestar matched; HEAD again after.
            fields = cast(dict[str, Any], scope)
            fields["method"], fields[HEAD_FLAG] = "GET", True
            try:
                await self.app(scope, receive, _bodiless(send))
            finally:
                fields["method"] = "HEAD"
                del fields[HEAD_FLAG]
        else:
            await self.app(scope, receive, send)


__all__ = [
    "HEAD_FLAG",
    "MethodsMiddleware",
    "PathMethods",
    "allow_header",
    "allowed_methods",
    "is_head",
]
