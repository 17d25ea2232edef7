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
