"""A bad ORDER_FIELDS or ORDER_STREAM names the offending value as JSON spells it (`null`,
`true`, `["a"]`, `"a..b"`), never as Python does (`None`, `True`, `['a']`): the value came
as JSON (or from the environment), and is shown in the language it was written in."""

from __future__ import annotations

import io

import pytest

from eventstore.cli import main
from eventstore.settings import Settings, SettingsError, load

LIKE = " (like total or customer.id)"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{"total": null}', "total: null is not a document path" + LIKE),
        ('{"total": true}', "total: true is not a document path" + LIKE),
        ('{"total": ["a"]}', 'total: ["a"] is not a document path' + LIKE),
        ('{"total": {"a": 1.5}}', 'total: {"a": 1.5} is not a document path' + LIKE),
        ('{"total": "a..b"}', 'total: "a..b" is not a document path' + LIKE),
        ('{"total": "café..x"}', 'total: "café..x" is not a document path' + LIKE),
        (
            '{"Total": "amount"}',
            'has an unknown key "Total" (keys: status, total, currency, customer_id, customer_name,'
            " number, created_at, items)",
        ),
        ("[1, 2]", "must be a JSON object of input name -> document path, got [1, 2]"),
        ("null", "must be a JSON object of input name -> document path, got null"),
        ('"total"', 'must be a JSON object of input name -> document path, got "total"'),
    ],
)
def test_a_bad_order_fields_value_is_shown_as_json(
    value: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_ORDER_FIELDS": value})
    assert str(raised.value) == f"EVENTSTORE_ORDER_FIELDS {problem}"
    argv = ["projections", "status", "--uri", "memory://", "--order-fields", value]
    assert main(argv, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err == f"eventstore: error: --order-fields {problem}\n"


def test_settings_built_in_python_show_values_as_json_too() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(order_fields=(("total", None),))  # type: ignore[arg-type]
    assert str(raised.value) == "ORDER_FIELDS total: null is not a document path" + LIKE
    with pytest.raises(SettingsError) as raised:
        Settings(order_fields=(("total", "a", "b"),))  # type: ignore[arg-type]
    assert str(raised.value) == (
        'ORDER_FIELDS must map input names to document paths, got ["total", "a", "b"]'
    )
    with pytest.raises(SettingsError) as raised:
        Settings(order_stream="a$b")
    assert str(raised.value) == "ORDER_STREAM cannot hold '$' in a collection name, got 'a$b'"
    with pytest.raises(SettingsError) as raised:
        Settings(order_stream=5)  # type: ignore[arg-type]
    assert str(raised.value) == "ORDER_STREAM must be a collection name, got 5"
