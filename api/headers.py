"""Small helpers over ASGI header lists (lower-case names, bytes values), and `Accept` read
with its quality values (`preferred_media`)."""

from __future__ import annotations

from collections.abc import Sequence

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


def quality_of(params: list[str]) -> float:
    """The `q` of a list element's parameters (1 without one; 0 for one that does not read):
    RFC 9110 12.4.2, for `Accept` and `Accept-Encoding` alike."""
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return max(0.0, min(q, 1.0)) if q == q else 0.0  # NaN: not a quality


def preferred_media(accept: str, offered: Sequence[str]) -> str | None:
    """The type of `offered` an `Accept` value prefers, or None when it accepts none of them.

    RFC 9110 12.5.1: each offered type takes the quality of the most specific range that
    matches it (`text/csv` before `text/*` before `*/*`), and one of quality 0 is not
    acceptable (12.4.2), as `Accept-Encoding` is read (`api.compression`). Of equal
    quality, the more specific range wins, then the one named first, then `offered`'s order.
    """
    ranges: list[tuple[str, str, float, int]] = []
    for index, element in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in element.split(";"))
        main, _, sub = media.lower().partition("/")
        if main == "*" and not sub:  # a bare `*` (some clients send it): any type
            sub = "*"
        if main and sub:
            ranges.append((main, sub, quality_of(params), index))
    best: str | None = None
    best_rank: tuple[float, int, int, int] | None = None
    for order, offer in enumerate(offered):
        main, _, sub = offer.lower().partition("/")
        found: tuple[int, float, int] | None = None  # specificity, quality, position
        for range_main, range_sub, quality, index in ranges:
            if (range_main, range_sub) == (main, sub):
                specificity = 2
            elif (range_main, range_sub) == (main, "*"):
                specificity = 1
            elif (range_main, range_sub) == ("*", "*"):
                specificity = 0
            else:
                continue
            if found is None or specificity > found[0]:
                found = (specificity, quality, index)
        if found is None or found[1] <= 0:
            continue
        rank = (found[1], found[0], -found[2], -order)
        if best_rank is None or rank > best_rank:
            best, best_rank = offer, rank
    return best
