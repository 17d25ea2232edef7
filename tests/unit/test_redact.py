"""Redaction before storage."""

from __future__ import annotations

from eventstore.redact import redact_document, redact_updated_fields
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
