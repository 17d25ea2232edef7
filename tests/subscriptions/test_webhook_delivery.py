"""Webhook delivery through the engine to a real receiver that verifies every signature."""

from __future__ import annotations

from typing import Any

from tests.realsinks import SECRET, Receiver, seqs_by_entity
from tests.subscribing import Harness, until, until_async


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


async def test_reset_to_a_seq_and_to_a_time_replays_from_there_with_the_same_ids(
    receiver: Receiver,
) -> None:
    h = Harness()
    for _ in range(3):
        await h.append("a", "b")  # seqs 1..6, recorded 1 s apart (tests.helpers)
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 6)
        first_run = list(receiver.ids)
        await h.admin.reset("hooks", {"seq": 4}, actor="ops")
        await until(lambda: len(receiver.ids) == 9)
        events = await h.store.events.read(after_seq=1, limit=1)  # seq 2
        at = events[0].recorded_at.isoformat()
        await h.admin.reset("hooks", {"time": at}, actor="ops")
        await until(lambda: len(receiver.ids) == 14)
    finally:
        await h.stop()
    assert receiver.ids[6:9] == ["hooks-4", "hooks-5", "hooks-6"]
    assert receiver.ids[9:] == ["hooks-2", "hooks-3", "hooks-4", "hooks-5", "hooks-6"]
    assert set(receiver.ids) == set(first_run)  # the same ids as the first time
    actions, _ = await h.admin.actions(after=None, limit=10)
    assert [(a.action, a.details) for a in actions[1:]] == [
        ("reset", {"start": {"seq": 4}}),
        ("reset", {"start": {"time": events[0].recorded_at.isoformat().replace("+00:00", "Z")}}),
    ]


async def test_a_filter_delivers_only_changes_of_the_named_field(receiver: Receiver) -> None:
    h = Harness()
    await h.subscribe(
        "emails", {"sink": webhook(receiver), "filter": {"fields": ["customer.email"]}}
    )
    await h.append("a")  # created: passes
    await h.append("a", changed_fields=["status"])
    await h.append("a", changed_fields=["customer"])
    await h.append("a", changed_fields=["customer.email.verified", "status"])
    await h.append(None, type="gap")  # stream-level: only when types names it
    await h.start(h.worker("emails"))
    try:
        await until(lambda: len(receiver.ids) == 3)
        await until_async(lambda: _at(h, 5))
    finally:
        await h.stop()
    assert receiver.ids == ["emails-1", "emails-3", "emails-4"]


async def _at(h: Harness, position: int) -> bool:
    return await h.position("emails") == position


async def test_a_free_lane_takes_one_webhook_so_lanes_never_idle_behind_a_batch(
    receiver: Receiver,
) -> None:
    # Three lanes of four are held by slow deliveries when eight more entities become
    # ready. Had the free lane taken all eight as one batch (posted one after the other),
    # the other lanes would find nothing left when they free up: one POST at a time.
    h = Harness()
    slow = {"x", "y", "z"}
    receiver.delay = lambda p: 0.4 if p["data"]["entity_key"] in slow else 0.1
    await h.subscribe("hooks", {"sink": webhook(receiver), "lanes": 4})
    await h.append("x", "y", "z")
    worker = h.worker("hooks")
    await h.start(worker)
    try:
        await until(lambda: len(receiver.attempts) == 3)
        fast = [f"e{i}" for i in range(8)]
        await h.append(*fast)
        await until(lambda: len(set(receiver.ids)) == 11)
    finally:
        await h.stop()
    slow_ids = {"hooks-1", "hooks-2", "hooks-3"}
    assert max(len(o) for o in receiver.overlaps) <= 4  # never more than `lanes`
    # Freed lanes took the fast entities: several of them were in flight at once.
    assert max(len(o - slow_ids) for o in receiver.overlaps) >= 2
