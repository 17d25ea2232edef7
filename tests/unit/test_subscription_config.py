"""Validation of subscription configurations: 400 (malformed) vs 422 (impossible), by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eventstore.subscriptions import config as cfg
from tests.realsinks import OLD_SECRET, SECRET

HOOK = {"kind": "webhook", "url": "https://example.test/hook", "secret": SECRET}


def errors(body: Any, name: str = "orders") -> tuple[bool, list[dict[str, str]]]:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse(name, body)
    return caught.value.malformed, caught.value.errors


def test_a_minimal_webhook_gets_the_documented_defaults() -> None:
    c = cfg.parse("orders", {"sink": HOOK})
    assert c.lanes == 1 and c.start == cfg.Start()
    assert c.retry.delays_s == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert c.retry.jitter == 0.1
    assert c.sink["timeout_s"] == 15 and c.sink["headers"] == {}
    assert cfg.from_doc(cfg.to_doc(c)) == c


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("not an object", ""),
        ({"sink": HOOK, "colour": 1}, "colour"),
        ({"sink": {**HOOK, "extra": 1}}, "sink.extra"),
        ({"sink": HOOK, "lanes": "2"}, "lanes"),
        ({"sink": HOOK, "filter": {"streams": "orders"}}, "filter.streams"),
        ({"sink": HOOK, "filter": {"paths": []}}, "filter.paths"),
        ({"sink": HOOK, "retry": {"delays_s": "5"}}, "retry.delays_s"),
        ({"sink": HOOK, "start": {"seq": "1"}}, "start.seq"),
        ({}, "sink"),
    ],
)
def test_malformed_bodies_and_unknown_fields_are_400(body: Any, key: str) -> None:
    malformed, found = errors(body)
    assert malformed
    assert key in [e["key"] for e in found]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"sink": {"kind": "kafka"}}, "sink.kind"),
        ({"sink": {**HOOK, "url": "ftp://example.test/x"}}, "sink.url"),
        ({"sink": {**HOOK, "secret": "plain"}}, "sink.secret"),
        ({"sink": {**HOOK, "secret": "whsec_c2hvcnQ="}}, "sink.secret"),
        ({"sink": {**HOOK, "secret": {"env": "not a name"}}}, "sink.secret.env"),
        ({"sink": {**HOOK, "secret": [SECRET, OLD_SECRET, SECRET]}}, "sink.secret"),
        ({"sink": {k: v for k, v in HOOK.items() if k != "secret"}}, "sink.secret"),
        ({"sink": {**HOOK, "headers": {"Webhook-Id": "x"}}}, "sink.headers.Webhook-Id"),
        ({"sink": {**HOOK, "headers": {"Host": "x"}}}, "sink.headers.Host"),
        ({"sink": {**HOOK, "headers": {"content-type": "x"}}}, "sink.headers.content-type"),
        ({"sink": {**HOOK, "url": "https://x.test/{customer}"}}, "sink.url"),
        ({"sink": {**HOOK, "timeout_s": 0}}, "sink.timeout_s"),
        ({"sink": HOOK, "filter": {"fields": ["a..b"]}}, "filter.fields[0]"),
        ({"sink": HOOK, "filter": {"fields": ["$set"]}}, "filter.fields[0]"),
        ({"sink": HOOK, "filter": {"types": ["exploded"]}}, "filter.types[0]"),
        ({"sink": HOOK, "lanes": 0}, "lanes"),
        ({"sink": HOOK, "retry": {"jitter": 2}}, "retry.jitter"),
        ({"sink": HOOK, "start": "yesterday"}, "start"),
        ({"sink": HOOK, "start": {"time": "2026-01-01T00:00:00"}}, "start.time"),
        ({"sink": HOOK, "start": {"time": "2026-W01-4T00:00:00Z"}}, "start.time"),
        ({"sink": HOOK, "start": {"time": "2026-02-30T00:00:00Z"}}, "start.time"),
        (
            {"sink": {"kind": "redis-stream", "url": "redis://r/0", "stream": "s"}, "lanes": 2},
            "lanes",
        ),
        ({"sink": {"kind": "redis-pubsub", "url": "http://r", "channel": "c"}}, "sink.url"),
        (
            {"sink": {"kind": "redis-invalidate", "url": "redis://r", "keys": ["{x}"]}},
            "sink.keys[0]",
        ),
    ],
)
def test_well_formed_but_impossible_values_are_422_naming_the_field(body: Any, key: str) -> None:
    malformed, found = errors(body)
    assert not malformed
    assert key in [e["key"] for e in found], found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [{"key": "sink", "message": "required"}]),
        (
            {"sink": {}},
            [{"key": "sink.kind", "message": "required: one of " + ", ".join(cfg.SINK_KINDS)}],
        ),
        (
            {"sink": {"kind": 3}},
            [
                {
                    "key": "sink.kind",
                    "message": "expected a string: one of " + ", ".join(cfg.SINK_KINDS),
                }
            ],
        ),
        (
            {"sink": {"kind": "webhook", "secret": SECRET}},
            [{"key": "sink.url", "message": "required"}],
        ),
        ({"sink": {**HOOK, "url": 5}}, [{"key": "sink.url", "message": "expected a string"}]),
        (
            {"sink": {"kind": "redis-pubsub", "url": "redis://h"}},
            [{"key": "sink.channel", "message": "required"}],
        ),
        (
            {"sink": {"kind": "redis-stream", "url": "redis://h", "stream": None}},
            [{"key": "sink.stream", "message": "required"}],
        ),
    ],
)
def test_a_missing_field_is_named_required_once(body: Any, expected: list[dict[str, str]]) -> None:
    assert errors(body) == (True, expected)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # each would be sent as a malformed request line on every delivery
        (
            "http://127.0.0.1:8201/x HTTP/1.1\r\nX-Injected: yes",
            "not a valid URL: ' ' may not appear in a URL (percent-encode it)",
        ),
        ("http://a b/", "not a valid URL: ' ' may not appear in a URL (percent-encode it)"),
        ("http://a/b\r\n", "not a valid URL: '\\r' may not appear in a URL (percent-encode it)"),
        ("http://a/b\n", "not a valid URL: '\\n' may not appear in a URL (percent-encode it)"),
        ("http://a/\tb", "not a valid URL: '\\t' may not appear in a URL (percent-encode it)"),
        ("http://a/\x00", "not a valid URL: '\\x00' may not appear in a URL (percent-encode it)"),
        ("http://a/\x7f", "not a valid URL: '\\x7f' may not appear in a URL (percent-encode it)"),
        ("http://a/<b>", "not a valid URL: '<' may not appear in a URL (percent-encode it)"),
        ("http://a/{{b}}", "not a valid URL: '{' may not appear in a URL (percent-encode it)"),
        (
            "http://a/caf\u00e9",
            "not a valid URL: '\u00e9' may not appear in a URL (percent-encode it)",
        ),
        (
            "http://a/b%zz",
            "not a valid URL: a '%' that does not start a percent-encoding such as %20",
        ),
    ],
)
def test_a_url_with_a_character_no_uri_holds_is_refused_like_one_that_does_not_parse(
    url: str, message: str
) -> None:
    assert errors({"sink": {**HOOK, "url": url}}) == (
        False,
        [{"key": "sink.url", "message": message}],
    )
    redis = {"kind": "redis-pubsub", "url": url.replace("http", "redis", 1), "channel": "c"}
    assert errors({"sink": redis}) == (False, [{"key": "sink.url", "message": message}])


def test_a_url_of_uri_characters_is_taken_as_written() -> None:
    url = "https://u:p%40w@x.test:8443/a-b_c.d~/{entity_key}?q=1&r=[2]*+,;=!$'()#f"
    assert cfg.parse("orders", {"sink": {**HOOK, "url": url}}).sink["url"] == url


def test_a_body_that_is_not_an_object_says_so_in_words() -> None:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse("orders", [])
    assert str(caught.value) == "the body: expected a JSON object"
    assert caught.value.errors == [{"key": "", "message": "expected a JSON object"}]


def test_a_bad_name_is_refused() -> None:
    assert errors({"sink": HOOK}, name="Orders!")[1][0]["key"] == "name"


def test_secrets_are_never_shown_and_an_update_without_one_keeps_the_stored_one() -> None:
    c = cfg.parse(
        "o",
        {
            "sink": {
                **HOOK,
                "secret": [SECRET, {"env": "OLD_HOOK_SECRET"}],
                "headers": {"authorization": "Bearer t0ken"},
            }
        },
    )
    shown = cfg.public(c)
    assert shown["sink"]["secret"] == ["***", {"env": "OLD_HOOK_SECRET"}]
    assert shown["sink"]["headers"] == {"authorization": "***"}
    assert SECRET not in repr(shown) and "t0ken" not in repr(shown)
    redis = cfg.parse(
        "r", {"sink": {"kind": "redis-pubsub", "url": "redis://u:pw@h:1/0", "channel": "c"}}
    )
    assert cfg.public(redis)["sink"]["url"] == "redis://u:***@h:1/0"
    kept = cfg.keep_secrets({**HOOK, "secret": "***", "headers": {"authorization": "***"}}, c.sink)
    assert kept["secret"] == c.sink["secret"] and kept["headers"] == {
        "authorization": "Bearer t0ken"
    }
    no_secret = {k: v for k, v in HOOK.items() if k != "secret"}
    assert cfg.keep_secrets(no_secret, c.sink)["secret"] == c.sink["secret"]
    url = cfg.keep_secrets({"kind": "redis-pubsub", "url": "redis://u:***@h:1/0"}, redis.sink)
    assert url["url"] == "redis://u:pw@h:1/0"


@pytest.mark.parametrize(
    "text", ["2026-01-01T01:00:00Z", "2026-01-01t01:00:00z", "2026-01-01 02:00:00.000+01:00"]
)
def test_a_start_time_is_any_rfc3339_spelling_of_the_instant(text: str) -> None:
    start = cfg.parse_start({"time": text})
    assert start.kind == "time"
    assert start.time == datetime(2026, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time", "said"),
    [
        ("2026-02-30T00:00:00Z", "not a valid time: '2026-02-30T00:00:00Z' (day is out of range"),
        (
            "2016-12-31T23:59:60Z",
            "(a leap second, :60, is no instant the log can hold: give :59.999",
        ),
    ],
)
def test_a_start_time_of_the_form_that_names_no_instant_says_why(time: str, said: str) -> None:
    """RFC 3339 in form, so 'not an RFC 3339 time' would be wrong: the reason is given."""
    _, found = errors({"sink": HOOK, "start": {"time": time}})
    [error] = [e for e in found if e["key"] == "start.time"]
    assert said in error["message"], error
    assert "is not an RFC 3339 time" not in error["message"]
