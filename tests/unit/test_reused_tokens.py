"""Two changes under one resume token are one change only when nothing tells them apart."""

from __future__ import annotations

from bson import Timestamp

from eventstore.model import ChangeEvent
from eventstore.reused_tokens import Identity, change_identity, describe, same_change

T1, T2 = Timestamp(1_770_000_000, 1), Timestamp(1_770_000_000, 2)


def test_a_changes_identity_is_its_stream_typed_key_event_type_and_time() -> None:
    change = ChangeEvent(
        token={"_data": "82"}, operationType="update", clusterTime=T1, documentKey={"_id": 7}
    )
    assert change_identity(change, "orders") == Identity("orders", "int:7", "updated", T1)


def test_every_part_tells_two_changes_apart_a_missing_cluster_time_too() -> None:
    base = Identity("orders", "int:7", "updated", T1)
    assert same_change(base, base)
    untimed = base._replace(cluster_time=None)
    assert same_change(untimed, untimed)
    assert not same_change(base, untimed) and not same_change(untimed, base)
    assert not same_change(base, base._replace(cluster_time=T2))
    assert not same_change(base, base._replace(key="str:7"))
    assert not same_change(base, base._replace(type="created"))
    assert not same_change(base, base._replace(stream="customers"))


def test_the_other_change_is_described_by_what_tells_it_apart() -> None:
    assert describe(Identity("orders", "int:7", "updated", T2), "7") == (
        "updated orders 7 at cluster time 1770000000.2"
    )
    assert describe(Identity("orders", "int:7", "deleted", None), "7") == "deleted orders 7"
