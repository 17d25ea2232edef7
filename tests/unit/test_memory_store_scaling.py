"""The memory store's listings: a page costs the same however long the list.

Before, each page of parked events sorted them all, each admin action re-sorted
the trail and each page of a read model sorted its keys: reading 20,000 parked
events a page at a time took 190× as long as 2,000, appending 20,000 actions 56×
(quadratic), and a page of rows at 500,000 rows 185× one at 5,000. Now a page is
a bisection and an append one insertion. The measures are `bench_listings`'s (per
page, best of five with the collector kept out; a loaded machine only ever adds time),
here at 10× the items: times only as ratios.
"""

from __future__ import annotations

from tests.benchmarks.bench_listings import parked_page, row_lookup, rows_page, trail_page

# A page at 10x the items costs about the same; a sort per page cost 8x (rows), 19x
# (parked) and 5.6x (the trail, appends included) there.
MAX_RATIO = 3


async def test_paging_through_parked_events_costs_the_same_per_page() -> None:
    small, large = await parked_page(2_000), await parked_page(20_000)
    assert large / small <= MAX_RATIO, (small, large)


async def test_the_admin_trail_appends_and_pages_at_the_same_cost_per_page() -> None:
    small, large = await trail_page(2_000), await trail_page(20_000)
    assert large / small <= MAX_RATIO, (small, large)


async def test_a_page_of_rows_costs_the_same_at_ten_times_the_rows() -> None:
    small, large = await rows_page(5_000), await rows_page(50_000)
    assert large / small <= MAX_RATIO, (small, large)


async def test_a_row_found_by_a_fields_value_costs_the_same_at_ten_times_the_rows() -> None:
    # `?number=N-99999` (the explorer's "open an entity" box): a walk of every row before,
    # 133 ms at 100,000 rows; now the field's index, built at its first filter.
    small, large = await row_lookup(5_000), await row_lookup(50_000)
    assert large / small <= MAX_RATIO, (small, large)


async def test_a_row_found_by_an_element_of_an_array_field_costs_the_same_at_ten_times() -> None:
    # An erasure finds the aggregate rows holding an order's data by an element of their
    # `held_from` array: through the field's index of elements, not a walk of every row.
    small, large = await row_lookup(5_000, in_array=True), await row_lookup(50_000, in_array=True)
    assert large / small <= MAX_RATIO, (small, large)
