"""A webhook's rotation list: new first, no duplicates, at most two (README, the PUT row).

A list repeating a secret signed every delivery twice with one key; `[S, "***"]` over a
stored `[S2, S]` silently put the old secret first. Both are refused (422 naming the
field), and nothing is stored.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from eventstore.subscriptions.config import ConfigError
from tests.subscribing import Harness

NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"x" * 32).decode()
URL = "https://hooks.example/in"


def body(secret: Any) -> dict[str, Any]:
    return {"sink": {"kind": "webhook", "url": URL, "secret": secret}}


async def stored(h: Harness, name: str) -> Any:
    record = await h.admin.get(name)
    return record.config["sink"]["secret"]


@pytest.mark.parametrize("update", [False, True])
async def test_a_list_repeating_a_secret_is_refused(update: bool) -> None:
    h = Harness()
    if update:
        await h.subscribe("hook", body(OTHER))
    with pytest.raises(ConfigError) as refused:
        await h.admin.put("hook", body([NEW, NEW]), actor="x")
    assert not refused.value.malformed  # 422
    assert refused.value.errors == [
        {
            "key": "sink.secret[1]",
            "message": "the same secret as sink.secret[0]: a rotation is [new, old], two "
            "different secrets (give one secret when there is one)",
        }
    ]
    assert (await stored(h, "hook") if update else await h.store.subscriptions.get("hook")) == (
        OTHER if update else None
    )


async def test_an_old_secret_put_before_the_stored_ones_is_refused_not_reordered() -> None:
    h = Harness()
    await h.subscribe("hook", body(OLD))
    await h.admin.put("hook", body([NEW, "***"]), actor="x")  # a rotation starts
    assert await stored(h, "hook") == [NEW, OLD]
    with pytest.raises(ConfigError) as refused:
        await h.admin.put("hook", body([OLD, "***"]), actor="x")
    assert not refused.value.malformed
    assert refused.value.errors == [
        {
            "key": "sink.secret[0]",
            "message": 'this secret is stored already, and "***" stands for it: [new, "***"] '
            "puts a secret not stored first (new first, no duplicates); to reorder or drop "
            "stored secrets, give them themselves",
        }
    ]
    assert await stored(h, "hook") == [NEW, OLD]  # unchanged


async def test_the_same_rotation_put_again_and_its_end_are_accepted() -> None:
    h = Harness()
    await h.subscribe("hook", body(OLD))
    await h.admin.put("hook", body([NEW, "***"]), actor="x")
    await h.admin.put("hook", body([NEW, "***"]), actor="x")  # the same body again: the same
    assert await stored(h, "hook") == [NEW, OLD]
    await h.admin.put("hook", body(NEW), actor="x")  # the rotation ends
    assert await stored(h, "hook") == NEW
