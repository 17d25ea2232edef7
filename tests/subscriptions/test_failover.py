"""Two instances: one delivers, the other stands by and continues after the first dies."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore.clock import FakeClock
from eventstore.worker_state import RUNNING, STANDBY
from tests.realsinks import SECRET, Receiver, seqs_by_entity
from tests.subscribing import Harness, fake_clock, until, until_async


async def _position_is(h: Harness, seq: int) -> bool:
    return await h.position("hooks") == seq


async def test_the_standby_continues_after_the_delivering_instance_dies_mid_batch(
    receiver: Receiver,
) -> None:
    clock: FakeClock = fake_clock()
    clock._advance_on_sleep = False  # two instances share it: the test moves time
    h = Harness(clock, lease_seconds=10)
    for _ in range(10):
        await h.append("a", "b", "c", "d")  # seq 1..40: a is 1, 5, 9, ...; b is 2, 6, ...
    # Entity a's second event (seq 5) hangs at the receiver until the first instance is dead:
    # it is mid-delivery when the instance dies, and holds the checkpoint at 4 while b, c
    # and d settle above it (stored in Deliveries: not delivered again).
    holding = True

    def delay(payload: dict[str, Any]) -> float:
        if holding and payload["data"]["seq"] == 5:
            return 3600.0
        return 0.002

    receiver.delay = delay
    await h.subscribe(
        "hooks", {"sink": {"kind": "webhook", "url": receiver.url, "secret": SECRET}, "lanes": 4}
    )
    first = h.worker("hooks", owner="one")
    second = h.worker("hooks", owner="two")
    one = await h.start(first, "one")
    await until(lambda: one.state == RUNNING)
    two = await h.start(second, "two")
    await until(lambda: two.state == STANDBY)
    await until(lambda: "hooks-5" in receiver.attempts and len(first.persisted_above) >= 3)
    await until_async(lambda: _position_is(h, 4))

    # A crash: the process vanishes without giving its lease back.
    async def vanish() -> None:
        return None

    first.lease.release = vanish  # type: ignore[method-assign]
    assert one.task is not None
    one.task.cancel()
    await asyncio.gather(one.task, return_exceptions=True)
    checkpoint = await h.position("hooks")
    settled = set(await h.store.deliveries.settled("hooks", above=checkpoint))
    unsettled = {f"hooks-{s}" for s in range(checkpoint + 1, 41) if s not in settled}
    seen_before = set(receiver.attempts)
    assert checkpoint == 4
    assert len(settled) >= 3, "events of b, c and d settled above the checkpoint"
    assert "hooks-5" in unsettled and "hooks-5" in seen_before  # it was mid-delivery

    holding = False

    clock.advance(11)  # the dead instance's lease expires
    await until(lambda: two.state == RUNNING)
    try:
        await until(lambda: len(set(receiver.ids)) == 40)
        await until(lambda: second.checkpoint == 40)
    finally:
        await h.stop()

    assert set(receiver.ids) == {f"hooks-{s}" for s in range(1, 41)}
    assert receiver.invalid == 0
    duplicates = {i for i in receiver.ids if receiver.ids.count(i) > 1}
    # Only events that were not settled when the instance died are delivered twice.
    assert duplicates <= unsettled
    assert duplicates <= seen_before
    # Order per entity holds across the takeover (a duplicate repeats an earlier seq only).
    for key, seqs in seqs_by_entity(receiver.bodies).items():
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts), key
