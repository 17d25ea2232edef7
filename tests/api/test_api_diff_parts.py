"""A diff entry whose dotted path is ambiguous carries its components (`parts`).

An outside tester found the top-level field named "a.b" and the field `b` inside `a`
both shown as path `a.b`, with nothing in the answer to tell them apart.
"""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from eventstore.diff import diff, is_ambiguous
from eventstore.memory.store import MemoryStore
from eventstore.render import changes_json
from tests.api.conftest import AppFactory
from tests.helpers import LogBuilder


def test_only_ambiguous_paths_carry_their_parts() -> None:
    before = {"a": {"b": 1}, "a.b": 1, "arr": [{"0": 1}], "n": 1}
    after = {"a": {"b": 2}, "a.b": 2, "arr": [{"0": 2}], "n": 2}
    assert changes_json(diff(before, after)) == [
        {"path": "a.b", "op": "changed", "before": 1, "after": 2},
        {"path": "a.b", "op": "changed", "before": 1, "after": 2, "parts": ["a.b"]},
        {"path": "arr.0.0", "op": "changed", "before": 1, "after": 2, "parts": ["arr", 0, "0"]},
        {"path": "n", "op": "changed", "before": 1, "after": 2},
    ]
    assert is_ambiguous(("a.b",)) and is_ambiguous(("m", "5"))
    assert not is_ambiguous(("a", "b", 3)) and not is_ambiguous(("m", "5x"))


async def test_the_api_gives_the_parts_of_an_ambiguous_path(make_app: AppFactory) -> None:
    store = MemoryStore()
    log = LogBuilder()
    created = log.next(1, document={"_id": 1, "a": {"b": 1}, "a.b": 1})
    updated = log.next(
        1,
        changes={
            "updatedFields": {"a.b": 2},
            "removedFields": [],
            "truncatedArrays": [],
            "disambiguatedPaths": {"a.b": ["a.b"]},
        },
        changed_fields=["a.b"],
    )
    await store.events.append([created, updated])
    async with AsyncTestClient(make_app(store)) as client:
        history = (await client.get("/v1/streams/orders/entities/1/history")).json()
        assert history["events"][1]["diff"] == [
            {"path": "a.b", "op": "changed", "before": 1, "after": 2, "parts": ["a.b"]}
        ]
        changes = (
            await client.get("/v1/streams/orders/entities/1/diff?from_version=1&to_version=2")
        ).json()["changes"]
        assert changes == history["events"][1]["diff"]
