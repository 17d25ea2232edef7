"""The app's request class: a JSON body nested too deeply is bad input (400), not a 500.

Litestar decodes a handler's typed body (`data: JSONBody[...]`) itself, and msgspec
raises RecursionError, not a decode error, past about 1,000 levels of nesting
(`eventstore.json_input`). Routes that decode their own bodies use `decode_json`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from api.problems import bad_request
from eventstore.json_input import TOO_DEEP


class JsonSafeRequest(Request[Any, Any, Any]):
    """A Litestar request whose `json()` refuses a body nested too deeply with a 400."""

    async def json(self) -> Any:
        """The JSON body (decoded once, as Litestar does); ApiError 400 when nested too deeply."""
        try:
            return await super().json()
        except RecursionError:
            raise bad_request(f"the body is not JSON that can be read: {TOO_DEEP}") from None


__all__ = ["JsonSafeRequest"]
