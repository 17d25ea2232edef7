"""Subscription filters and templates against hand-written events (pure)."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from eventstore.model import Event
from eventstore.subscriptions import templates
from eventstore.subscriptions.config import Filter
from eventstore.subscriptions.filters import admits, fields_match, related
from tests.helpers import make_event


def updated(*changed: str) -> Event:
    return make_event(seq=2, entity_id="o1", version=2, changed_fields=list(changed))


@pytest.mark.parametrize(
    ("changed", "path", "expected"),
    [
        ("customer.email", "customer.email", True),  # equal
        ("customer", "customer.email", True),  # the change lies above the path
        ("customer.email.verified", "customer.email", True),  # the change lies under it
        ("customer.emailVerified", "customer.email", False),  # a prefix, not a segment
        ("customer.name", "customer.email", False),
        ("items.0.qty", "items", True),
        ("status", "customer.email", False),
    ],
)
def test_field_paths_match_equal_above_and_under_on_whole_segments(
    changed: str, path: str, expected: bool
) -> None:
    assert related(changed, path) is expected


def test_fields_filter_on_hand_written_change_sets() -> None:
    f = Filter(fields=("customer.email",))
    assert admits(f, updated("customer"))
    assert admits(f, updated("status", "customer.email.verified"))
    assert not admits(f, updated("status", "total"))
    assert not admits(f, updated())  # an update that changed nothing named
    # created / replaced / deleted pass `fields` when their type is admitted.
    assert admits(f, make_event(seq=1, entity_id="o1", version=1))
    assert admits(f, make_event(seq=3, entity_id="o1", version=3, type="deleted"))
    assert not admits(
        Filter(fields=("customer.email",), types=("updated",)),
        make_event(seq=1, entity_id="o1", version=1),
    )
    assert fields_match(["a.b"], ["x", "a"])


def test_snapshot_and_stream_events_need_types_to_name_them() -> None:
    snapshot = make_event(seq=1, entity_id="o1", version=1, type="snapshot")
    gap = make_event(seq=2, entity_id=None, version=1, type="gap")
    assert not admits(Filter(), snapshot)
    assert not admits(Filter(), gap)
    assert not admits(Filter(streams=("orders",)), gap)
    assert admits(Filter(types=("gap",)), gap)
    assert admits(Filter(types=("snapshot", "created")), snapshot)
    assert admits(Filter(), make_event(seq=3, entity_id="o2", version=1))


def test_criteria_are_anded_and_values_ored() -> None:
    e = make_event(seq=1, entity_id="o1", version=1, actor="bob", stream="orders")
    assert admits(Filter(streams=("orders", "users"), actors=("alice", "bob")), e)
    assert not admits(Filter(streams=("orders",), actors=("alice",)), e)
    assert not admits(Filter(streams=("users",), actors=("bob",)), e)
    assert not admits(Filter(types=("updated",)), e)


def test_templates_substitute_escape_braces_and_refuse_unknown_placeholders() -> None:
    parts = templates.parse("{{literal}} {stream}/{entity_key}:{type}@{seq}v{version}}}")
    values = {
        "stream": "orders",
        "entity_key": "a/b c",
        "type": "updated",
        "seq": "7",
        "version": "2",
    }
    assert templates.render(parts, values) == "{literal} orders/a/b c:updated@7v2}"
    assert templates.render(parts, values, templates.url_escape) == (
        "{literal} orders/a%2Fb%20c:updated@7v2}"
    )
    # a doubled brace anywhere is one literal brace, the text after it read on
    inner = templates.parse("a{{b}}c{seq}")
    assert templates.render(inner, values) == "a{b}c7"
    for bad, message in (
        (
            "{customer}",
            "unknown placeholder {customer}: use one of"
            " {stream}, {entity_key}, {typed_key}, {type}, {seq}, {version}",
        ),
        ("x{stream", "unclosed '{' at position 1 (write '{{' for a brace)"),
        ("x}y", "stray '}' at position 1 (write '}}' for a brace)"),
    ):
        with pytest.raises(templates.TemplateError) as refused:
            templates.parse(bad)
        assert str(refused.value) == message


def test_glob_escaping_keeps_a_key_from_widening_a_pattern() -> None:
    parts = templates.parse("orders:status:*:{entity_key}")
    assert templates.is_pattern(parts)
    assert not templates.is_pattern(templates.parse("order:{entity_key}"))
    rendered = templates.render(parts, {"entity_key": "a*[b]?\\"}, templates.glob_escape)
    assert rendered == "orders:status:*:a\\*\\[b\\]\\?\\\\"


def test_an_actor_matches_by_its_value_or_its_documents_id_name_or_email() -> None:
    def by(actor: object) -> Event:
        return make_event(seq=1, entity_id="o1", version=1, actor=actor)

    for key in ("_id", "id", "name", "email"):
        assert admits(Filter(actors=("bob",)), by({key: "bob", "role": "clerk"})), key
        assert not admits(Filter(actors=("clerk",)), by({key: "bob", "role": "clerk"})), key
    assert admits(Filter(actors=("42",)), by({"_id": 42}))  # an id compares as its text
    assert admits(Filter(actors=("42",)), by(42))
    assert admits(Filter(actors=("bob",)), by("bob"))
    assert not admits(Filter(actors=("None",)), by(None))  # no actor is no name
    assert not admits(Filter(actors=("None",)), by({"role": None}))
    # As the audit query's `actor` reads texts (`actor_text`): a value by what it spells.
    assert admits(Filter(actors=("42",)), by(42.0)) and admits(
        Filter(actors=("42",)), by(Int64(42))
    )
    assert admits(Filter(actors=("true",)), by(True))
    assert not admits(Filter(actors=("True",)), by(True))  # JSON's spelling, not Python's
    assert not admits(Filter(actors=("1",)), by(True))  # a boolean is no number
    oid = ObjectId()
    assert admits(Filter(actors=(str(oid),)), by(oid))
    assert not admits(Filter(actors=("['bob']",)), by(["bob"]))  # an array names nothing
