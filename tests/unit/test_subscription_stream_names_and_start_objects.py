"""A filter's stream names are checked by the collection-name rule (an impossible one
matched nothing, silently); a start object of two fields (or none) says to give one."""

from __future__ import annotations

from typing import Any

import pytest

from eventstore.subscriptions import config as cfg
from tests.realsinks import SECRET

HOOK = {"kind": "webhook", "url": "https://example.test/hook", "secret": SECRET}
FORMS = cfg.START_FORMS


def refused(body: Any) -> tuple[bool, list[dict[str, str]]]:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse("orders", body)
    return caught.value.malformed, caught.value.errors


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ("", "'' is not a stream name: a stream is a collection name (or $source)"),
        ("  ", "'  ' is not a stream name: a stream is a collection name (or $source)"),
        (
            "or$ders",
            "a stream is a collection name (or $source): cannot hold '$' in a collection "
            "name, got 'or$ders'",
        ),
        (
            "system.views",
            "a stream is a collection name (or $source): cannot name a collection beginning "
            "with system. (MongoDB's own), got 'system.views'",
        ),
    ],
)
def test_an_impossible_stream_name_in_a_filter_is_422_naming_it(stream: str, message: str) -> None:
    malformed, errors = refused({"sink": HOOK, "filter": {"streams": ["orders", stream]}})
    assert not malformed
    assert errors == [{"key": "filter.streams[1]", "message": message}]


def test_collection_names_and_the_source_stream_are_accepted() -> None:
    config = cfg.parse("orders", {"sink": HOOK, "filter": {"streams": ["orders", "$source"]}})
    assert config.filter.streams == ("orders", "$source")


def test_a_stored_filter_loads_as_it_is() -> None:
    # Saved before the names were checked: it still loads (it matches nothing, as before).
    doc = {**cfg.to_doc(cfg.parse("orders", {"sink": HOOK})), "filter": {"streams": [""]}}
    assert cfg.from_doc(doc).filter.streams == ("",)


@pytest.mark.parametrize(
    ("start", "given"),
    [({"seq": 1, "time": "2026-01-01T00:00:00Z"}, '"seq", "time"'), ({}, "no field")],
)
def test_a_start_object_of_two_fields_or_none_says_to_give_one(
    start: dict[str, Any], given: str
) -> None:
    message = f'give exactly one of "seq" or "time" in a start object (given: {given}): {FORMS}'
    for problem in (refused({"sink": HOOK, "start": start}), _reset(start)):
        assert problem == (True, [{"key": "start", "message": message}])


def _reset(start: dict[str, Any]) -> tuple[bool, list[dict[str, str]]]:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse_start(start)
    return caught.value.malformed, caught.value.errors
