"""The `Eventstore-Actor` header: who asked for an admin action, read alike by every route.

ASGI servers hand header values over as bytes and Litestar decodes them as Latin-1, so
`José` sent in UTF-8 would read `JosÃ©`. The actor is read here from the raw bytes as
UTF-8 instead (bytes that are not UTF-8 are refused), trimmed, and checked by the rules
of every free text the log records for good (`eventstore.erasure.text_fault`): not
empty, at most MAX_ACTOR characters, no control character (C0 but tab, DEL, C1) and no
bidirectional override or isolate. A refusal is 400 with `errors: [{key, message}]`
naming the header.
"""

from __future__ import annotations

from typing import Any, Final, Literal, overload

from litestar import Request

from api.bodies import malformed
from api.problems import ApiError
from eventstore.erasure import MAX_ACTOR, text_fault

ACTOR_HEADER: Final = "Eventstore-Actor"
_RAW_NAME: Final = ACTOR_HEADER.lower().encode("ascii")


def _refused(message: str) -> ApiError:
    return malformed([{"key": ACTOR_HEADER, "message": message}])


@overload
def actor_header(request: Request[Any, Any, Any], *, required: Literal[True]) -> str: ...
@overload
def actor_header(request: Request[Any, Any, Any], *, required: bool) -> str | None: ...
def actor_header(request: Request[Any, Any, Any], *, required: bool) -> str | None:
    """The `Eventstore-Actor` header's value, decoded as UTF-8 and trimmed.

    Absent: 400 (`required`) or None (the caller records its own default, such as
    `unknown`). Present but empty, not UTF-8, longer than MAX_ACTOR characters or holding
    a control or bidirectional character: 400 naming the header, whether required or not.
    """
    raw = [value for name, value in request.scope["headers"] if name.lower() == _RAW_NAME]
    if not raw:
        if required:
            raise _refused("required")
        return None
    if len(raw) > 1:
        raise _refused("given more than once")
    try:
        text = raw[0].decode("utf-8")
    except UnicodeDecodeError:
        raise _refused("not valid UTF-8") from None
    fault = text_fault(text, MAX_ACTOR)
    if fault is not None:
        raise _refused(fault)
    return text.strip()


__all__ = ["ACTOR_HEADER", "actor_header"]
