"""Split change events ($changeStreamSplitLargeEvent) put back together, and broken ones judged."""

from __future__ import annotations

from typing import Any

from bson import Int64, Timestamp
from hypothesis import given
from hypothesis import strategies as st

from eventstore.badinput import problem
from eventstore.split_events import Fragments, fragment_of


def token(n: int) -> dict[str, Any]:
    return {"_data": f"82{n:08X}"}


EVENT: dict[str, Any] = {
    "_id": token(99),
    "operationType": "update",
    "clusterTime": Timestamp(1_700_000_000, 1),
    "ns": {"db": "shop", "coll": "orders"},
    "documentKey": {"_id": 7},
    "updateDescription": {"updatedFields": {"note": "x" * 10}, "removedFields": []},
    "fullDocumentBeforeChange": {"_id": 7, "note": "y"},
    "fullDocument": {"_id": 7, "note": "x" * 10},
}


def split(event: dict[str, Any], groups: list[list[str]], first_token: int) -> list[dict[str, Any]]:
    """The fragments MongoDB would send: each field group with its own token and splitEvent."""
    return [
        {
            "_id": token(first_token + i),
            "splitEvent": {"fragment": i + 1, "of": len(groups)},
            **{name: event[name] for name in group},
        }
        for i, group in enumerate(groups)
    ]


CONTEXT = ["operationType", "clusterTime", "ns", "documentKey", "updateDescription"]
THREE = split(EVENT, [CONTEXT, ["fullDocumentBeforeChange"], ["fullDocument"]], 10)


def feed(fragments: Fragments[int], changes: list[Any]) -> list[tuple[Any, list[int]]]:
    out = []
    for i, change in enumerate(changes):
        out.extend(fragments.add(change, i))
    return out


def test_a_split_event_comes_out_whole_with_its_last_fragments_token() -> None:
    fragments: Fragments[int] = Fragments()
    assert fragments.add(THREE[0], 0) == []
    assert fragments.pending
    assert fragments.add(THREE[1], 1) == []
    [(whole, tags)] = fragments.add(THREE[2], 2)
    assert not fragments.pending
    # Every field of the event, none of the fragments' own; the token to resume after.
    assert whole == {**EVENT, "_id": token(12)}
    assert "splitEvent" not in whole
    assert next(iter(whole)) == "_id"
    assert tags == [0, 1, 2]


def test_changes_that_are_not_fragments_pass_as_they_are() -> None:
    plain = {"_id": token(1), "operationType": "insert", "ns": {"db": "shop", "coll": "orders"}}
    fragments: Fragments[int] = Fragments()
    assert feed(fragments, [plain, THREE[0], THREE[1], THREE[2], plain, {}]) == [
        (plain, [0]),
        ({**EVENT, "_id": token(12)}, [1, 2, 3]),
        (plain, [4]),
        ({}, [5]),
    ]


def test_an_event_cut_short_by_another_change_comes_out_as_its_fragments() -> None:
    plain = {"_id": token(1), "operationType": "delete"}
    fragments: Fragments[int] = Fragments()
    out = feed(fragments, [THREE[0], THREE[1], plain])
    assert out == [(THREE[0], [0]), (THREE[1], [1]), (plain, [2])]
    assert not fragments.pending


def test_a_fragment_without_the_ones_before_it_comes_out_alone() -> None:
    fragments: Fragments[int] = Fragments()
    assert feed(fragments, [THREE[1], THREE[2]]) == [(THREE[1], [0]), (THREE[2], [1])]
    assert not fragments.pending


def test_a_fragment_out_of_order_breaks_the_event_before_it() -> None:
    fragments: Fragments[int] = Fragments()
    out = feed(fragments, [THREE[0], THREE[2]])
    assert out == [(THREE[0], [0]), (THREE[2], [1])]


def test_a_new_first_fragment_starts_a_new_event() -> None:
    other = split(EVENT, [CONTEXT, ["fullDocument", "fullDocumentBeforeChange"]], 20)
    fragments: Fragments[int] = Fragments()
    out = feed(fragments, [THREE[0], *other])
    assert out == [(THREE[0], [0]), ({**EVENT, "_id": token(21)}, [1, 2])]


def test_fragments_that_disagree_on_their_count_are_not_one_event() -> None:
    second = {**THREE[1], "splitEvent": {"fragment": 2, "of": 4}}
    fragments: Fragments[int] = Fragments()
    assert feed(fragments, [THREE[0], second]) == [(THREE[0], [0]), (second, [1])]


def test_two_fragments_holding_one_field_are_not_one_event() -> None:
    parts = split(EVENT, [CONTEXT, ["fullDocument", "ns"]], 30)
    fragments: Fragments[int] = Fragments()
    assert feed(fragments, parts) == [(parts[0], [0]), (parts[1], [1])]


def test_the_end_of_the_input_flushes_an_unfinished_event() -> None:
    fragments: Fragments[int] = Fragments()
    assert feed(fragments, THREE[:2]) == []
    assert fragments.flush() == [(THREE[0], [0]), (THREE[1], [1])]
    assert fragments.flush() == []


def test_a_single_fragment_event_and_bson_integers() -> None:
    one = {**EVENT, "_id": token(5), "splitEvent": {"fragment": Int64(1), "of": Int64(1)}}
    fragments: Fragments[int] = Fragments()
    assert fragments.add(one, 0) == [({**EVENT, "_id": token(5)}, [0])]


def test_a_last_fragment_without_a_token_gives_a_whole_event_without_one() -> None:
    """Judged then as any change without a resume token (bad input), never given another's."""
    last = {k: v for k, v in THREE[2].items() if k != "_id"}
    [(whole, _)] = feed(Fragments(), [THREE[0], THREE[1], last])
    assert "_id" not in whole and whole == {k: v for k, v in EVENT.items() if k != "_id"}
    assert reason(whole) == ("orders", "no resume token (_id._data)")


def test_malformed_split_documents_are_not_fragments() -> None:
    for bad in (
        None,
        "1/2",
        {},
        {"fragment": 1},
        {"fragment": 0, "of": 2},
        {"fragment": 3, "of": 2},
        {"fragment": True, "of": 2},
        {"fragment": 1, "of": True},
        {"fragment": 1.0, "of": 2},
    ):
        change = {"_id": token(1), "splitEvent": bad}
        assert fragment_of(change) is None, bad
        fragments: Fragments[int] = Fragments()
        assert fragments.add(change, 0) == [(change, [0])]
    assert fragment_of({"splitEvent": {"fragment": 2, "of": 3}}) == (2, 3)
    assert fragment_of([1]) is None


def reason(raw: Any) -> tuple[str, str] | None:
    return problem(raw, collections=frozenset({"orders"}), operations=frozenset({"update"}))


def test_a_fragment_left_over_is_bad_input_in_its_collection_or_the_source() -> None:
    assert reason(THREE[0]) == (
        "orders",
        "fragment 1 of 3 of a split event that cannot be put together "
        "(fragments missing, out of order or overlapping)",
    )
    assert reason(THREE[1]) == (
        "$source",
        "fragment 2 of 3 of a split event that cannot be put together "
        "(fragments missing, out of order or overlapping)",
    )
    assert reason({"_id": token(1), "splitEvent": {"fragment": 0}}) == (
        "$source",
        "splitEvent is not {fragment, of} with 1 <= fragment <= of",
    )
    # Another collection's first fragment is filtered like any change of it.
    assert reason({**THREE[0], "ns": {"db": "shop", "coll": "carts"}}) is None
    # The whole event is good input.
    assert reason({**EVENT, "_id": token(12)}) is None


FIELDS = list(EVENT)[1:]


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=1, max_value=len(FIELDS))),
        max_size=12,
    )
)
def test_any_mix_of_split_and_whole_events_comes_out_as_the_events(
    plan: list[tuple[bool, int]],
) -> None:
    """Events each sent whole or split into 1..n fragments come out whole, in order, once."""
    sent: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    n = 0
    for i, (is_split, parts) in enumerate(plan):
        event = {**EVENT, "documentKey": {"_id": i}}
        if not is_split:
            n += 1
            event["_id"] = token(n)
            sent.append(event)
            expected.append(event)
            continue
        cuts = [FIELDS[j::parts] for j in range(parts)]
        fragments = split(event, [c for c in cuts if c], n + 1)
        n += len(fragments)
        sent.extend(fragments)
        expected.append({**event, "_id": token(n)})
    got = feed(Fragments(), sent)
    assert [whole for whole, _ in got] == expected
    assert sorted(tag for _, tags in got for tag in tags) == list(range(len(sent)))
