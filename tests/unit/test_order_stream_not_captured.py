"""An ORDER_STREAM naming none of the captured collections (`Orders` while COLLECTIONS is
`orders`) is said at start, in a WARNING naming the setting, its value and the captured
collections: the order read models would otherwise stay empty without a word. Not an error:
another instance may capture that stream, or this one later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventstore.cli.bootstrap import projections
from eventstore.settings import Settings
from projections import orders
from projections.orders import OrderSchema


@pytest.fixture(autouse=True)
def _said_afresh() -> Iterator[None]:
    said = getattr(orders, "_warn_uncaptured", None)  # said once per process and value
    if said is not None:
        said.cache_clear()
    yield
    if said is not None:
        said.cache_clear()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "projections.orders" and r.levelname == "WARNING"
    ]


def test_an_order_stream_not_captured_is_a_warning_naming_setting_value_and_collections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(order_stream="Orders", collections=("orders", "payments"))
    with caplog.at_level("WARNING", logger="projections.orders"):
        schema = OrderSchema.from_settings(settings)
        names = [p.name for p in projections(settings)]  # as a service builds its projections
    assert schema.stream == "Orders"
    assert names[:4] == ["order_summary", "orders_by_status", "revenue_by_day", "customer_totals"]
    assert _warnings(caplog) == [
        'EVENTSTORE_ORDER_STREAM "Orders" is none of the captured collections'
        " (EVENTSTORE_COLLECTIONS: orders,payments): the order read models count no order"
        ' until a stream "Orders" is captured (stream names are case-sensitive)'
    ]


@pytest.mark.parametrize(
    ("stream", "collections"),
    [("orders", ("orders",)), ("purchases", ("orders", "purchases"))],
)
def test_an_order_stream_that_is_captured_says_nothing(
    caplog: pytest.LogCaptureFixture, stream: str, collections: tuple[str, ...]
) -> None:
    with caplog.at_level("WARNING", logger="projections.orders"):
        OrderSchema.from_settings(Settings(order_stream=stream, collections=collections))
    assert _warnings(caplog) == []


def test_collections_holding_control_characters_are_escaped_in_the_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # COLLECTIONS may hold an ESC or a newline (a collection name refuses only `$` and NUL):
    # printed raw, the warning coloured the terminal and forged a log line of its own.
    forged = "x\n2026-12-08 00:00:00,000 ERROR forged: line"
    settings = Settings(collections=("orders\x1b[31m", forged, "pay\u202ements", "Orders"))
    with caplog.at_level("WARNING", logger="projections.orders"):
        OrderSchema.from_settings(settings)
    [line] = _warnings(caplog)
    assert line == (
        'EVENTSTORE_ORDER_STREAM "orders" is none of the captured collections'
        " (EVENTSTORE_COLLECTIONS: 'orders\\x1b[31m',"
        "'x\\n2026-12-08 00:00:00,000 ERROR forged: line','pay\\u202ements',Orders):"
        ' the order read models count no order until a stream "orders" is captured'
        " (stream names are case-sensitive)"
    )
