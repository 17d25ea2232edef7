"""Query-parameter rules shared by the routes: cursors, times, keys, unknown parameters.

Cursors are opaque to clients: `base64url("<kind>:<value>")`, so a cursor of one
listing is refused by another instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

from litestar import Request
from litestar.handlers import BaseRouteHandler

from api.problems import bad_request

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000


def encode_cursor(kind: str, value: str | int) -> str:
    """An opaque page cursor for a listing `kind`."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The value a cursor of this listing carries; 400 for anything else."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request(f"malformed page cursor {cursor!r}: pass back a `next` value") from None
    prefix, _, value = raw.partition(":")
    if prefix != kind or not value:
        raise bad_request(f"page cursor {cursor!r} does not belong to this listing")
    return value


def int_cursor(kind: str, cursor: str | None) -> int | None:
    """A cursor carrying a non-negative integer (a seq or a version)."""
    value = decode_cursor(kind, cursor)
    if value is None:
        return None
    if not value.isdecimal() or len(value) > 19:
        raise bad_request(f"page cursor {cursor!r} does not belong to this listing")
    return int(value)


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with a zone (`Z` or an offset); a time without one is refused."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(
            f"{name}: {value!r} is not an RFC 3339 time (e.g. 2026-11-26T14:03:00.123Z)"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise bad_request(f"{name}: {value!r} has no time zone; add `Z` or an offset like +01:00")
    return parsed


def path_value(value: str) -> str:
    """A path parameter as sent: the app keeps `%2F` and `%25` encoded for routing (see app.py)."""
    return unquote(value) if "%" in value else value


def _declared(handler: BaseRouteHandler) -> set[str]:
    names: set[str] = set()
    for name, param in handler.parsed_fn_signature.parameters.items():
        kwarg = param.kwarg_definition
        alias = getattr(kwarg, "query", None)
        if getattr(kwarg, "header", None) or getattr(kwarg, "cookie", None):
            continue
        names.add(alias or name)
    return names


_ALLOWED_CACHE: dict[int, frozenset[str]] = {}


async def refuse_unknown_parameters(request: Request[Any, Any, Any]) -> None:
    """400 for a query parameter the endpoint does not take (a misspelled filter must not widen a query).

    Endpoints with free-form filters (`opt={"free_query": True}`) check their own.
    """
    handler = request.route_handler
    if handler.opt.get("free_query"):
        return
    allowed = _ALLOWED_CACHE.get(id(handler))
    if allowed is None:
        allowed = _ALLOWED_CACHE[id(handler)] = frozenset(_declared(handler))
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed - {"request", "services", "state"})) or "none"
        raise bad_request(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (this endpoint takes: {known})"
        )
