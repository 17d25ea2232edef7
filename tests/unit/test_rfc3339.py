"""RFC 3339 times, as the CLI, the API and subscription starts read them: one parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, OutsideUtcYears, parse_rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T14:03:00Z", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        # RFC 3339 5.6: "T" and "Z" may be lower case; a space may separate date and time.
        ("2026-11-26t14:03:00z", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("2026-11-26 14:03:00Z", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("2026-11-26T14:03:00.5Z", datetime(2026, 11, 26, 14, 3, 0, 500000, tzinfo=UTC)),
        # any number of fraction digits (Go's RFC3339Nano writes nine); beyond microseconds cut
        ("2026-11-26T14:03:00.123456789Z", datetime(2026, 11, 26, 14, 3, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T15:03:00.123+01:00", datetime(2026, 11, 26, 14, 3, 0, 123000, tzinfo=UTC)),
        ("2026-11-26T09:33:00-04:30", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("2026-11-26T00:02:00+23:59", datetime(2026, 11, 25, 0, 3, tzinfo=UTC)),
        ("2026-11-26T14:03:00-2359", datetime(2026, 11, 27, 14, 2, tzinfo=UTC)),
        ("2026-11-26T15:03:00+0100", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),  # strftime %z
        ("2026-11-26T14:03:00-00:00", datetime(2026, 11, 26, 14, 3, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999Z", datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_an_rfc3339_time_is_the_instant_it_names_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26",  # a date alone
        "14:03:00Z",
        "2026-11-26T14:03Z",  # seconds are not optional
        "2026-11-26T14:03:00.Z",  # a fraction needs a digit
        "2026-11-26T14:03:00+01",  # an offset is hh:mm
        "2026-11-26T14:03:00+1:00",
        "20261126T140300Z",  # ISO 8601's basic format, which fromisoformat takes
        "2026-W48-4T14:03:00Z",  # a week date, which fromisoformat takes
        "2026-330T14:03:00Z",  # an ordinal date
        "2026-11-26T14:03:00 Z",
        "2026-11-26T14:03:00UTC",
        "２０２６-11-26T14:03:00Z",  # digits other than ASCII
        "2026-11-26T14:03:00Z trailing",
        "",
        # RFC 3339 has no whitespace around a time: none is stripped
        " 2026-11-26T14:03:00Z",
        "2026-11-26T14:03:00Z ",
        "2026-11-26T14:03:00Z\n",
        "\t2026-11-26T14:03:00Z",
        "2026-11-26T14:03:00Z\r\n",
        "2026-11-26T14:03:00+01:00\t",
    ],
)
def test_other_forms_are_refused_not_guessed(text: str) -> None:
    with pytest.raises(NotRfc3339, match="not an RFC 3339 time"):
        parse_rfc3339(text)


@pytest.mark.parametrize("text", ["2026-11-26T14:03:00", "2026-11-26t14:03:00.123"])
def test_a_time_without_a_zone_is_refused_as_such(text: str) -> None:
    with pytest.raises(NoZone, match="has no zone"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-02-30T00:00:00Z", "not a valid time"),
        ("2026-13-01T00:00:00Z", "not a valid time"),
        ("2026-11-26T24:00:00Z", "not a valid time"),
        # a leap second: RFC 3339 allows it, no datetime holds it, and the message says so
        ("2016-12-31T23:59:60Z", r"\(a leap second, :60, is no instant the log can hold"),
        ("2016-12-31T23:59:60.5+00:00", "give :59.999 for the end of the second before it"),
        ("2026-11-26T14:03:00+24:00", "not a valid time"),
        ("0001-01-01T00:00:00+01:00", "out of range once in UTC"),
        ("9999-12-31T23:59:59-01:00", "out of range once in UTC"),
    ],
)
def test_a_time_of_the_form_that_names_no_instant_is_refused(text: str, why: str) -> None:
    with pytest.raises(NoSuchTime, match=why):
        parse_rfc3339(text)


def test_every_refusal_is_a_value_error() -> None:
    assert issubclass(NotRfc3339, ValueError)
    assert issubclass(NoZone, ValueError)
    assert issubclass(NoSuchTime, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07T10:30:20+00:99",  # not +01:39
        "2026-12-07T10:30:20+00:60",
        "2026-12-07T10:30:20-05:75",
        "2026-12-07T10:30:20+0099",
        "2026-12-07T10:30:20+24:00",
        "2026-12-07T10:30:20-24:00",
        "2026-12-07T10:30:20+99:00",
        "2026-12-07T10:30:20+2400",
    ],
)
def test_an_offset_beyond_23_59_is_refused_with_the_ranges_named(text: str) -> None:
    with pytest.raises(NoSuchTime) as refused:
        parse_rfc3339(text)
    assert str(refused.value) == (
        f"not a valid time: {text!r} (an offset's hours are 00 to 23, its minutes 00 to 59)"
    )


@pytest.mark.parametrize(
    ("text", "cut", "raised"),
    [
        ("2026-02-02T02:40:00.0000001Z", 0, 1),
        ("2026-02-02T02:40:00.0010001Z", 1000, 1001),
        ("2026-02-02T02:40:00.0010000000Z", 1000, 1000),  # zeros beyond: the same instant
        ("2026-02-02T02:40:00.999999999Z", 999_999, 999_999 + 1),
        ("2026-02-02T03:40:00.1234567+01:00", 123_456, 123_457),
        ("2026-02-02T02:40:00.5Z", 500_000, 500_000),
    ],
)
def test_a_bound_is_raised_to_the_next_microsecond_by_digits_beyond(
    text: str, cut: int, raised: int
) -> None:
    base = datetime(2026, 2, 2, 2, 40, tzinfo=UTC)
    assert parse_rfc3339(text) == base + timedelta(microseconds=cut)
    assert parse_rfc3339(text, up=True) == base + timedelta(microseconds=raised)


def test_a_bound_raised_past_the_last_instant_is_after_every_time() -> None:
    with pytest.raises(OutsideUtcYears) as raised:
        parse_rfc3339("9999-12-31T23:59:59.9999991Z", up=True)
    assert raised.value.later
    assert parse_rfc3339("9999-12-31T23:59:59.9999991Z") == datetime.max.replace(tzinfo=UTC)
