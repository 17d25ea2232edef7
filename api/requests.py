"""The app's request class: a JSON body nested too deeply is bad input (400), not a 500.

Litestar decodes a handler's typed body (`data: JSONBody[...]`) itself, and msgspec
raises RecursionError, not a decode error, past about 1,000 levels of nesting
(`eventstore.json_input`). Routes that decode their own bodies use `decode_json`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from api.problems import bad_request
from eventstore.json_input import TOO_DEEP, DuplicateKey, check_unique_keys


class JsonSafeRequest(Request[Any, Any, Any]):
    """A Litestar request whose `json()` refuses with a 400 a body nested too deeply, or
    naming a key twice in one object (`eventstore.json_input`)."""

    async def json(self) -> Any:
        """The JSON body (decoded once, as Litestar does); ApiError 400 when it cannot be read."""
        try:
            value = await super().json()
        except RecursionError:
            raise bad_request(f"the body is not JSON that can be read: {TOO_DEEP}") from None
        if isinstance(value, (dict, list)):
            try:
                check_unique_keys(await self.body())
            except DuplicateKey as exc:
                raise bad_request(f"the body is not JSON that can be read: {exc}") from None
        return value


__all__ = ["JsonSafeRequest"]
