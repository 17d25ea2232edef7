"""An update that changes a running subscription's start keeps its position, as it says.

What the answer of the update claims (the start is stored, the position stays, a reset
delivers from a start) is held here to a worker delivering to a real receiver.
"""

from __future__ import annotations

from typing import Any

from tests.realsinks import SECRET, Receiver
from tests.subscribing import Harness, until, until_async


def webhook(receiver: Receiver) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url, "secret": SECRET}


async def test_a_changed_start_moves_no_delivery_until_a_reset_is_given_it(
    receiver: Receiver,
) -> None:
    h = Harness()
    await h.append("a", "b", "c")  # seqs 1..3, before the subscription
    created = await h.admin.apply("hooks", {"sink": webhook(receiver)}, actor="ops")
    assert created.created and created.start_note("reset") is None
    await h.start(h.worker("hooks"))
    try:
        await h.append("d")  # seq 4: the first event after a start at "latest"
        await until(lambda: receiver.ids == ["hooks-4"])
        # The checkpoint is written after the receiver answers: wait for it, or the update
        # may read the position still at 3 (it did once under load).
        await until_async(lambda: _at(h, 4))
        body = {"sink": webhook(receiver), "start": "earliest"}
        updated = await h.admin.apply("hooks", body, actor="ops")
        assert (updated.created, updated.start, updated.previous_start) == (
            False,
            "earliest",
            "latest",
        )
        assert updated.kept_position == 4
        assert updated.start_note(updated.reset_command("hooks")) == (
            'start is stored as "earliest" (was "latest"), and the position stays at 4: an '
            "update does not move it (a start is used when a subscription is created; a reset "
            "takes the start it is given); to deliver from it, eventstore subscriptions reset "
            "hooks --start earliest"
        )
        await h.append("e")  # seq 5: delivered next; nothing before seq 4 comes again
        await until(lambda: len(receiver.ids) == 2)
        assert receiver.ids == ["hooks-4", "hooks-5"]
        await until_async(lambda: _at(h, 5))  # the checkpoint follows the answer
        record = await h.admin.get("hooks")
        assert record.config["start"] == "earliest"
        # A reset given that start delivers from it, with the same ids.
        await h.admin.reset("hooks", "earliest", actor="ops")
        await until(lambda: len(receiver.ids) == 7)
        await until_async(lambda: _at(h, 5))
    finally:
        await h.stop()
    assert receiver.ids[2:] == [f"hooks-{seq}" for seq in range(1, 6)]


async def _at(h: Harness, seq: int) -> bool:
    """Whether the subscription's checkpoint is `seq`."""
    return await h.position("hooks") == seq
