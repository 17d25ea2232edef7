"""Redaction before storage."""

from __future__ import annotations

from eventstore.fold import apply_update
from eventstore.redact import redact_document, redact_truncated, redact_updated_fields
from eventstore.settings import Redaction

DOC = {
    "_id": 1,
    "customer": {"id": "c1", "email": "a@b.c"},
    "items": [{"sku": "A", "unit_price": 3}, {"sku": "B", "unit_price": 4}],
}


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
    out = redact_updated_fields(
        updated, [Redaction("customer.email"), Redaction("items.unit_price", "#")]
    )
    assert out == {"customer": {"id": "c2"}, "items.1.unit_price": "#", "status": "paid"}
    assert list(out) == ["customer", "items.1.unit_price", "status"]


def test_only_ascii_digits_are_array_positions() -> None:
    # `x.².y` is the field `y` of the field `²` of `x`, not `x.y` in an array: kept;
    # `x.2.y` is `x.y` at array position 2: redacted.
    updated = {"x.².y": 1, "x.١.y": 2, "x.2.y": 3}
    out = redact_updated_fields(updated, [Redaction("x.y")])
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
    out = redact_updated_fields(updated, masks)
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
