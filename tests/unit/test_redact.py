"""Redaction before storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventstore.fold import apply_update
from eventstore.redact import redact_document, redact_truncated, redact_update
from eventstore.settings import Redaction

DOC = {
    "_id": 1,
    "customer": {"id": "c1", "email": "a@b.c"},
    "items": [{"sku": "A", "unit_price": 3}, {"sku": "B", "unit_price": 4}],
}


def updated_fields_of(updated: dict[str, Any], redactions: Sequence[Redaction]) -> dict[str, Any]:
    """The `updatedFields` of an update reported without `disambiguatedPaths`."""
    out: dict[str, Any] = redact_update(updated, [], [], None, redactions)["updatedFields"]
    return out


def test_removal_and_mask_in_documents_and_arrays() -> None:
    out = redact_document(DOC, [Redaction("customer.email"), Redaction("items.unit_price", "x")])
    assert out == {
        "_id": 1,
        "customer": {"id": "c1"},
        "items": [{"sku": "A", "unit_price": "x"}, {"sku": "B", "unit_price": "x"}],
    }
    assert DOC["customer"] == {"id": "c1", "email": "a@b.c"}  # input untouched


def test_updated_fields_exact_beneath_and_above_the_redacted_path() -> None:
    updated = {
        "customer.email": "new@x",
        "customer": {"email": "e", "id": "c2"},
        "items.1.unit_price": 9,
        "status": "paid",
    }
    out = updated_fields_of(
        updated, [Redaction("customer.email"), Redaction("items.unit_price", "#")]
    )
    assert out == {"customer": {"id": "c2"}, "items.1.unit_price": "#", "status": "paid"}
    assert list(out) == ["customer", "items.1.unit_price", "status"]


def test_only_ascii_digits_are_array_positions() -> None:
    # `x.².y` is the field `y` of the field `²` of `x`, not `x.y` in an array: kept;
    # `x.2.y` is `x.y` at array position 2: redacted.
    updated = {"x.².y": 1, "x.١.y": 2, "x.2.y": 3}
    out = updated_fields_of(updated, [Redaction("x.y")])
    assert out == {"x.².y": 1, "x.١.y": 2}


def test_a_field_set_beneath_a_masked_one_sets_the_mask_where_it_stands() -> None:
    """`card.num` set where `card` is masked: the mask stands for the whole card, so the log
    sets `card` to it (a set of `card.num` could not be applied to the scalar mask: every
    later state had a path_conflict); the array index before a masked field is kept."""
    masks = [Redaction("card", "XXX"), Redaction("items.price", "#")]
    updated = {
        "card.num": "5500",
        "card.exp": "01/31",
        "items.1.price.cents": 99,
        "items.1.price": 5,
        "status": "paid",
    }
    out = updated_fields_of(updated, masks)
    assert out == {"card": "XXX", "items.1.price": "#", "status": "paid"}
    assert list(out) == ["card", "items.1.price", "status"]
    state = redact_document({"card": {"num": "4111"}, "items": [{}, {"price": 4}]}, masks)
    assert state == {"card": "XXX", "items": [{}, {"price": "#"}]}
    changes = {"updatedFields": out, "removedFields": ["card.cvc"], "truncatedArrays": []}
    assert apply_update(state, changes) == {
        "card": "XXX",
        "items": [{}, {"price": "#"}],
        "status": "paid",
    }


def test_arrays_cut_at_or_beneath_a_redacted_field_are_left_out() -> None:
    """Removed, the field holds no array to cut; masked, it holds the mask (a fold of such a
    cut was a `no such array` / `not an array` conflict)."""
    truncated = [
        {"field": "card.tags", "newSize": 1},
        {"field": "card", "newSize": 0},
        {"field": "notes", "newSize": 2},
        {"field": "items.0.history", "newSize": 1},
        {"field": "items.0.sizes", "newSize": 1},
    ]
    kept = redact_truncated(truncated, [Redaction("card", "XXX"), Redaction("items.history")])
    assert kept == [{"field": "notes", "newSize": 2}, {"field": "items.0.sizes", "newSize": 1}]
    assert redact_truncated(truncated, []) == truncated


def test_a_field_named_with_a_dot_is_not_beneath_the_masked_field() -> None:
    """An outside tester: `card.num` with the entry `["card.num"]` (the top-level field named
    "card.num") was recorded as setting `card` to the mask, a field the document never had.
    Without an entry the same text is `num` inside `card`, beneath the mask."""
    masks = [Redaction("card", "XXX")]
    paths = {"card.num": ["card.num"]}
    out = redact_update({"card.num": "VALUE1"}, [], [], paths, masks)
    assert out == {
        "updatedFields": {"card.num": "VALUE1"},
        "removedFields": [],
        "truncatedArrays": [],
        "disambiguatedPaths": {"card.num": ["card.num"]},
    }
    state = redact_document({"_id": "S2", "status": "x"}, masks)
    conflicts: list[str] = []
    assert apply_update(state, out, conflicts=conflicts) == {
        "_id": "S2",
        "status": "x",
        "card.num": "VALUE1",
    }
    assert conflicts == []
    nested = redact_update({"card.num": "VALUE1"}, [], [], None, masks)
    assert nested == {"updatedFields": {"card": "XXX"}, "removedFields": [], "truncatedArrays": []}
    # both in one update: the field named "card.num" kept, `card.exp` cut to the mask
    both = redact_update({"card.num": "V", "card.exp": "01/31"}, [], [], paths, masks)
    assert both["updatedFields"] == {"card.num": "V", "card": "XXX"}
    assert both["disambiguatedPaths"] == {"card.num": ["card.num"]}
    state = redact_document({"card": {"exp": "12/30"}, "card.num": "4111"}, masks)
    assert state == {"card": "XXX", "card.num": "4111"}
    assert apply_update(state, both, conflicts=conflicts) == {"card": "XXX", "card.num": "V"}
    assert conflicts == []


def test_a_key_cut_to_the_masked_field_keeps_its_entry_prefix_only_where_needed() -> None:
    """The cut key's components are the prefix of its entry: an entry of its own when the
    prefix holds a field name with a dot or of digits, none otherwise; the old key's entry
    goes (its path is no longer in the change)."""
    masks = [Redaction("card", "XXX"), Redaction("vault.0", "M"), Redaction("a.b.c", "#")]
    updated = {"card.x.y": 1, "vault.0.code": 7, "a.b.c.d": 2, "a.b.1.c.d": 3}
    paths: dict[str, list[str | int]] = {
        "card.x.y": ["card", "x.y"],  # `x.y` inside card: cut to `card`, needs no entry
        "vault.0.code": ["vault", "0", "code"],  # field "0" of vault: cut to it, needs one
        "a.b.c.d": ["a.b", "c", "d"],  # field `a.b`, not `b` in `a`: not redacted
        "a.b.1.c.d": ["a", "b", 1, "c", "d"],  # position 1 of a.b: cut to `a.b.1.c`
    }
    out = redact_update(updated, [], [], paths, masks)
    assert out["updatedFields"] == {"card": "XXX", "vault.0": "M", "a.b.c.d": 2, "a.b.1.c": "#"}
    assert out["disambiguatedPaths"] == {"a.b.c.d": ["a.b", "c", "d"], "vault.0": ["vault", "0"]}
    state = redact_document(
        {
            "card": {"x.y": 0},
            "vault": {"0": {"code": 1}},
            "a.b": {"c": {"d": 0}},
            "a": {"b": [{}, {"c": {"d": 0}}]},
        },
        masks,
    )
    assert state == {
        "card": "XXX",
        "vault": {"0": "M"},
        "a.b": {"c": {"d": 0}},
        "a": {"b": [{}, {"c": "#"}]},
    }
    conflicts: list[str] = []
    assert apply_update(state, out, conflicts=conflicts) == {
        "card": "XXX",
        "vault": {"0": "M"},
        "a.b": {"c": {"d": 2}},
        "a": {"b": [{}, {"c": "#"}]},
    }
    assert conflicts == []


def test_a_digit_field_name_is_not_an_array_position() -> None:
    """`items.0.pin` is `pin` at array position 0 of `items` without an entry or with
    `["items", 0, "pin"]`; with `["items", "0", "pin"]` it is `pin` of the field "0" of
    the document `items`, which `items.pin` does not name (as in a whole document)."""
    masks = [Redaction("items.pin", "***")]
    index: list[str | int] = ["items", 0, "pin"]
    assert updated_fields_of({"items.0.pin": "1234"}, masks) == {"items.0.pin": "***"}
    out = redact_update({"items.0.pin": "1234"}, [], [], {"items.0.pin": index}, masks)
    assert out["updatedFields"] == {"items.0.pin": "***"}
    assert out["disambiguatedPaths"] == {"items.0.pin": ["items", 0, "pin"]}
    field: list[str | int] = ["items", "0", "pin"]
    out = redact_update({"items.0.pin": "1234"}, [], [], {"items.0.pin": field}, masks)
    assert out["updatedFields"] == {"items.0.pin": "1234"}
    assert out["disambiguatedPaths"] == {"items.0.pin": ["items", "0", "pin"]}
    assert redact_document({"items": {"0": {"pin": "1"}}}, masks) == {"items": {"0": {"pin": "1"}}}
    assert redact_document({"items": [{"pin": "1"}]}, masks) == {"items": [{"pin": "***"}]}
    # a value set at a field named "0" is searched beneath that field, not as an element
    out = redact_update({"items.0": {"pin": "9"}}, [], [], {"items.0": ["items", "0"]}, masks)
    assert out["updatedFields"] == {"items.0": {"pin": "9"}}
    assert updated_fields_of({"items.0": {"pin": "9"}}, masks) == {"items.0": {"pin": "***"}}


def test_truncated_arrays_read_their_field_through_its_entry() -> None:
    """A truncation of the top-level array named "card.tags" is not beneath the masked
    `card` and is kept; one of `card.tags` inside card is left out with its entry; one of
    a field "0" of a document is not an array position; `removedFields` stay as reported."""
    masks = [Redaction("card", "XXX"), Redaction("items.history")]
    truncated = [
        {"field": "card.tags", "newSize": 1},
        {"field": "card.list", "newSize": 0},
        {"field": "items.0.history", "newSize": 2},
        {"field": "items.1.history", "newSize": 3},
    ]
    paths: dict[str, list[str | int]] = {
        "card.tags": ["card.tags"],
        "card.list": ["card", "list"],
        "items.0.history": ["items", "0", "history"],
        "items.1.history": ["items", 1, "history"],
        "card.cvc": ["card.cvc"],
    }
    assert redact_truncated(truncated, masks, paths) == [
        {"field": "card.tags", "newSize": 1},
        {"field": "items.0.history", "newSize": 2},
    ]
    assert redact_truncated(truncated, masks) == []  # read as dotted text: all beneath
    out = redact_update({}, ["card.cvc"], truncated, paths, masks)
    assert out == {
        "updatedFields": {},
        "removedFields": ["card.cvc"],
        "truncatedArrays": [
            {"field": "card.tags", "newSize": 1},
            {"field": "items.0.history", "newSize": 2},
        ],
        "disambiguatedPaths": {
            "card.tags": ["card.tags"],
            "items.0.history": ["items", "0", "history"],
            "card.cvc": ["card.cvc"],
        },
    }
    state = {"card": "XXX", "card.tags": [1, 2], "items": {"0": {"history": [1, 2, 3]}}}
    state["card.cvc"] = "123"
    conflicts: list[str] = []
    assert apply_update(state, out, conflicts=conflicts) == {
        "card": "XXX",
        "card.tags": [1],
        "items": {"0": {"history": [1, 2]}},
    }
    assert conflicts == []


def test_without_redactions_the_description_is_stored_as_reported() -> None:
    paths: dict[str, list[str | int]] = {"card.num": ["card.num"]}
    out = redact_update({"card.num": 1}, ["x"], [{"field": "t", "newSize": 0}], paths, [])
    assert out == {
        "updatedFields": {"card.num": 1},
        "removedFields": ["x"],
        "truncatedArrays": [{"field": "t", "newSize": 0}],
        "disambiguatedPaths": {"card.num": ["card.num"]},
    }
    assert "disambiguatedPaths" not in redact_update({"a": 1}, [], [], {}, [])
