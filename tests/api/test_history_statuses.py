"""The HTTP statuses of the history service's refusals live in the API, one per kind."""

from __future__ import annotations

from api.problems import HISTORY_STATUS, history_status
from eventstore import history
from eventstore.history import (
    AmbiguousKey,
    HistoryError,
    ImpossibleRange,
    NoState,
    UnknownEntity,
    UnknownStream,
    UnknownVersion,
)


def test_each_refusal_maps_to_the_status_design_md_gives_it() -> None:
    assert history_status(UnknownStream("x")) == 404
    assert history_status(UnknownEntity("x")) == 404
    assert history_status(NoState("x")) == 404
    assert history_status(UnknownVersion("x")) == 404
    assert history_status(AmbiguousKey("x", ["int:1", "str:1"])) == 409
    assert history_status(ImpossibleRange("x", field="from_version")) == 422
    assert history_status(HistoryError("x")) == 400


def test_every_kind_of_refusal_the_core_defines_has_a_status() -> None:
    kinds = {
        value
        for value in vars(history).values()
        if isinstance(value, type) and issubclass(value, HistoryError) and value is not HistoryError
    }
    assert kinds == set(HISTORY_STATUS)


def test_the_core_refusals_carry_no_http_status() -> None:
    assert not any(hasattr(kind, "status") for kind in (HistoryError, *HISTORY_STATUS))


def test_a_subclass_takes_its_nearest_base_status() -> None:
    class Narrower(UnknownVersion):
        pass

    assert history_status(Narrower("x")) == 404
