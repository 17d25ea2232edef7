"""Webhook delivery through the engine to a real receiver that verifies every signature."""

from __future__ import annotations

from typing import Any

from tests.realsinks import SECRET, Receiver, seqs_by_entity
from tests.subscribing import Harness, until


def webhook(receiver: Receiver, **kw: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url, "secret": SECRET, **kw}


async def test_every_matching_event_reaches_the_receiver_each_entity_in_order(
    receiver: Receiver,
) -> None:
    h = Harness()
    for _ in range(5):
        await h.append("a", "b", "c")
    # The first attempt of every third delivery fails: retries repeat only ids already seen.
    failed_once: set[str] = set()

    def rule(payload: dict[str, Any]) -> tuple[int, dict[str, str]]:
        seq = payload["data"]["seq"]
        if seq % 3 == 0 and seq not in failed_once:
            failed_once.add(seq)
            return 500, {}
        return 200, {}

    receiver.rule = rule
    await h.subscribe(
        "hooks", {"sink": webhook(receiver), "lanes": 3, "retry": {"delays_s": [1, 1]}}
    )
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 15)
        await h.append("a", "d")
        await until(lambda: len(receiver.ids) == 17)
    finally:
        await h.stop()
    expected = [f"hooks-{seq}" for seq in range(1, 18)]
    assert sorted(receiver.ids, key=lambda i: int(i.split("-")[1])) == expected
    assert set(receiver.attempts) == set(expected)  # a retry repeats an id, never invents one
    assert len(receiver.attempts) == 17 + 5  # seqs 3, 6, 9, 12, 15 failed once
    by_entity = seqs_by_entity(receiver.bodies)
    assert by_entity == {
        "a": [1, 4, 7, 10, 13, 16],
        "b": [2, 5, 8, 11, 14],
        "c": [3, 6, 9, 12, 15],
        "d": [17],
    }
    assert receiver.invalid == 0
    assert await h.position("hooks") == 17
