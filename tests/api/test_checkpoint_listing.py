"""`GET /v1/checkpoints`: the checkpoints made, by size, so a proof's `size` need not be guessed."""

from __future__ import annotations

import base64
from pathlib import Path

from litestar.testing import AsyncTestClient

from eventstore.notes import parse_checkpoint
from tests.api.conftest import AppFactory
from tests.merkle_helpers import signed_log


async def test_the_checkpoints_are_listed_by_size_in_pages_and_each_is_served(
    tmp_path: Path, make_app: AppFactory
) -> None:
    signed = await signed_log(tmp_path, sizes=(5, 13, 21))
    async with AsyncTestClient(make_app(signed.store)) as client:  # public: no key
        r = await client.get("/v1/checkpoints")
        assert r.status_code == 200, r.text
        body = r.json()
        assert [c["size"] for c in body["items"]] == [5, 13, 21] and body["next"] is None
        assert all(c["signed"] is True and c["cosignatures"] == 0 for c in body["items"])
        assert all(c["created_at"].endswith("Z") for c in body["items"])
        for listed in body["items"]:  # each size names a checkpoint `?size=` serves
            note = await client.get("/v1/checkpoint", params={"size": listed["size"]})
            assert note.status_code == 200
            _, size, root = parse_checkpoint(note.text.split("\n\n")[0] + "\n")
            assert size == listed["size"] and listed["root"] == base64.b64encode(root).decode()

        first = (await client.get("/v1/checkpoints", params={"limit": 2})).json()
        assert [c["size"] for c in first["items"]] == [5, 13] and first["next"]
        rest = await client.get("/v1/checkpoints", params={"limit": 2, "after": first["next"]})
        assert [c["size"] for c in rest.json()["items"]] == [21] and rest.json()["next"] is None

        r = await client.get("/v1/checkpoints", params={"after": "bm9wZQ"})
        assert r.status_code == 400 and "does not belong to this listing" in r.json()["detail"]
        r = await client.get("/v1/checkpoints", params={"limit": "0"})
        assert r.status_code == 400
        r = await client.head("/v1/checkpoints")
        assert r.status_code == 200 and r.content == b""
        r = await client.post("/v1/checkpoints")
        assert r.status_code == 405 and "GET" in r.headers["allow"]


async def test_an_empty_log_lists_no_checkpoint(tmp_path: Path, make_app: AppFactory) -> None:
    signed = await signed_log(tmp_path, sizes=())
    async with AsyncTestClient(make_app(signed.store)) as client:
        r = await client.get("/v1/checkpoints")
        assert r.status_code == 200 and r.json() == {"items": [], "next": None}
