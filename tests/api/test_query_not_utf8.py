"""A query name or value that is not UTF-8 once percent-decoded is a 400, not U+FFFD.

An outside tester found `?actor=Jos%E9` searching for `Jos\\ufffd` and `?status=%FF`
answering an empty page: each answered as if asked.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient


@pytest.mark.parametrize(
    ("url", "name", "sent"),
    [
        ("/v1/events?actor=Jos%E9", "actor", "Jos%E9"),
        ("/v1/projections/order_summary?status=%FF", "status", "%FF"),
        ("/v1/streams/orders/entities?after=%C3", "after", "%C3"),
        ("/v1/events?%FF=1", "'\ufffd'", "%FF"),  # the name as the framework reads it
    ],
)
async def test_bytes_that_are_not_utf8_are_refused_naming_the_parameter(
    client: AsyncTestClient[Any], url: str, name: str, sent: str
) -> None:
    r = await client.get(url)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    message = f"not valid UTF-8 once percent-decoded, got '{sent}'"
    assert r.json()["detail"] == f"{name}: {message}"
    assert r.json()["errors"] == [{"key": name, "message": message, "source": "query"}]


async def test_utf8_percent_encoded_is_read_as_the_text_it_encodes(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/events?actor=Jos%C3%A9&limit=1")
    assert r.status_code == 200, r.text
    r = await client.get("/v1/events?actor=a+b&limit=1")  # `+` a space, as forms send it
    assert r.status_code == 200, r.text
