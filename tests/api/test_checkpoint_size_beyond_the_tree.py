"""`/v1/checkpoint?size=N` answers as every proof endpoint does about a size.

Beyond the stored tree: 422 naming `size` (as `/v1/proof/inclusion?size=`,
`/v1/events/{seq}/proof?size=` do); inside it with no checkpoint made there: 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import AppFactory
from tests.merkle_helpers import Signed, signed_log

Client = AsyncTestClient[Any]


@pytest.fixture
async def client(tmp_path: Path, make_app: AppFactory) -> AsyncIterator[Client]:
    signed: Signed = await signed_log(tmp_path)  # checkpoints at 5, 13 and 21
    async with AsyncTestClient(make_app(signed.store)) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/checkpoint", {}),
        ("/v1/proof/inclusion", {"seq": 1}),
        ("/v1/events/1/proof", {}),
    ],
)
@pytest.mark.parametrize("size", [22, 1000, 2**62])
async def test_a_size_beyond_the_tree_is_422_naming_size_on_every_endpoint(
    client: Client, path: str, params: dict[str, int], size: int
) -> None:
    r = await client.get(path, params={**params, "size": size})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["detail"].startswith(f"tree size {size} is beyond the stored tree")
    assert body["type"] == "https://eventstore.dev/problems/unprocessable-proof"
    assert body["errors"] == [{"key": "size", "message": body["detail"]}]


async def test_the_checkpoint_says_how_big_the_tree_is(client: Client) -> None:
    r = await client.get("/v1/checkpoint", params={"size": 22})
    assert r.json()["detail"] == "tree size 22 is beyond the stored tree (21 events)"


async def test_a_size_inside_the_tree_without_a_checkpoint_stays_404(client: Client) -> None:
    r = await client.get("/v1/checkpoint", params={"size": 14})
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == "no checkpoint was made at tree size 14"
    made = await client.get("/v1/checkpoint", params={"size": 21})
    assert made.status_code == 200 and made.text.split("\n")[1] == "21"


async def test_the_schema_documents_the_422(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    responses = doc["paths"]["/v1/checkpoint"]["get"]["responses"]
    assert {"200", "400", "404", "422"} <= set(responses)
    assert "application/problem+json" in responses["422"]["content"]
