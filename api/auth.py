"""Bearer keys: `READ_KEYS` protect reads when set, `ADMIN_KEY` enables and protects admin.

Keys are compared in constant time against every configured key (no early exit
that would tell which matched), and never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.params import refuse_repeated
from api.problems import ApiError

CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="eventstore"'}
# A key was sent and is not one (RFC 6750 section 3: the challenge names the error then).
INVALID: Final = {"WWW-Authenticate": 'Bearer realm="eventstore", error="invalid_token"'}


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    # Two keys in one request: which one a proxy checked and which one we would is a guess.
    refuse_repeated(connection, ("Authorization",))
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: str, keys: tuple[str, ...]) -> bool:
    found = False
    given = token.encode()
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def _unauthorized(detail: str, challenge: dict[str, str] = CHALLENGE) -> ApiError:
    return ApiError(401, detail, kind="unauthorized", headers=dict(challenge))


def _invalid() -> ApiError:
    return _unauthorized("the key is not valid", INVALID)


def _settings(connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
    return connection.app.state.services.settings


def read_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Every `/v1` read: open unless READ_KEYS is set; the admin key reads too."""
    settings = _settings(connection)
    if not settings.read_keys:
        return
    token = _bearer(connection)
    if token is None:
        raise _unauthorized("this API needs a read key: send `Authorization: Bearer <key>`")
    keys = tuple(settings.read_keys) + ((settings.admin_key,) if settings.admin_key else ())
    if not _matches(token, keys):
        raise _invalid()


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """`/v1/admin`: 403 when admin is disabled (no ADMIN_KEY) or for a read key; 401 otherwise."""
    settings = _settings(connection)
    if not settings.admin_key:
        raise ApiError(
            403, "admin is disabled: set EVENTSTORE_ADMIN_KEY to enable it", kind="forbidden"
        )
    token = _bearer(connection)
    if token is None:
        raise _unauthorized("admin needs the admin key: send `Authorization: Bearer <key>`")
    if _matches(token, (settings.admin_key,)):
        return
    if settings.read_keys and _matches(token, tuple(settings.read_keys)):
        raise ApiError(403, "a read key cannot use admin endpoints", kind="forbidden")
    raise _invalid()
