"""Small helpers over ASGI header lists (lower-case names, bytes values)."""

from __future__ import annotations

from litestar.types import Scope

Headers = list[tuple[bytes, bytes]]


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def has_header(headers: Headers, name: bytes) -> bool:
    """True when `headers` has `name` (lower case)."""
    return any(key.lower() == name for key, _ in headers)


def add_vary(headers: Headers, token: bytes) -> Headers:
    """`headers` with `token` in `Vary` (appended to an existing Vary, once)."""
    for i, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = [t.strip().lower() for t in value.split(b",")]
            if token.lower() not in tokens and b"*" not in tokens:
                headers[i] = (key, value + b", " + token)
            return headers
    headers.append((b"vary", token))
    return headers
