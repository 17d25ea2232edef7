"""RFC 3339 times as the CLI, the API and subscription starts read them (pure).

`2026-11-26T14:03:00Z`, `2026-11-26t14:03:00.123456789z`, `2026-11-26 15:03:00+01:00`:
a full date, `T` (or `t`, or a space), a full time with any fraction of a second, and
a zone (`Z`, `z` or `±hh:mm`, hours 00-23 and minutes 00-59; also `±hhmm`, what
`strftime("%z")` writes). Digits are ASCII. Anything else is refused, whitespace around
the time included: never a guess at what another format meant. Beyond
microseconds a fraction is cut (MongoDB keeps milliseconds), or, for a bound (`up`),
raised to the next microsecond: a stored time (whole milliseconds) is at or after the
bound, or before it, exactly when it is so for the exact time given. A leap second
(`:60`) cannot be held by a datetime and is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

_TIME: Final = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?P<frac>\.[0-9]+)?(?P<zone>[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)


class NotRfc3339(ValueError):
    """Not of the form of an RFC 3339 date-time."""


class NoZone(ValueError):
    """A date-time without a zone: which instant it names would be a guess."""


class NoSuchTime(ValueError):
    """Of the form, but no instant a datetime holds (February 30, 25:00, before year 1 in UTC)."""


class OutsideUtcYears(NoSuchTime):
    """A valid RFC 3339 time whose instant lies before year 1 or after year 9999 in UTC
    (`0001-01-01T00:30:00+01:00`): `later` says which."""

    def __init__(self, message: str, *, later: bool) -> None:
        super().__init__(message)
        self.later = later


def parse_rfc3339(text: str, *, up: bool = False) -> datetime:
    """The instant `text` names, in UTC. Raises `NotRfc3339`, `NoZone` or `NoSuchTime`.

    Digits beyond microseconds are cut, or with `up` (a query's `since` or `until`, a
    subscription's start time) any that is not 0 raises the time to the next microsecond:
    `…00.0000001Z` is after an event at `…00.000Z`, never the same instant.
    """
    m = _TIME.fullmatch(text)
    if m is None:
        raise NotRfc3339(f"not an RFC 3339 time: {text!r}")
    if m["zone"] is None:
        raise NoZone(f"the time {text!r} has no zone: add Z (UTC) or an offset such as +01:00")
    frac = (m["frac"] or ".0")[1:7].ljust(6, "0")
    zone = m["zone"]
    zone = "+00:00" if zone in ("Z", "z") else f"{zone[:3]}:{zone[-2:]}"
    if int(zone[1:3]) > 23 or int(zone[4:]) > 59:  # RFC 3339 5.7; +00:99 is not +01:39
        raise NoSuchTime(
            f"not a valid time: {text!r} (an offset's hours are 00 to 23, its minutes 00 to 59)"
        )
    if m["time"].endswith(":60"):  # RFC 3339 allows it; no datetime (nor BSON date) holds it
        raise NoSuchTime(
            f"not a valid time: {text!r} (a leap second, :60, is no instant the log can hold: "
            "give :59.999 for the end of the second before it)"
        )
    try:
        parsed = datetime.fromisoformat(f"{m['date']}T{m['time']}.{frac}{zone}")
        if up and (m["frac"] or "")[7:].strip("0"):
            parsed += timedelta(microseconds=1)
        return parsed.astimezone(UTC)
    except ValueError as exc:  # 2026-02-30, 25:00
        raise NoSuchTime(f"not a valid time: {text!r} ({exc})") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 lies before the first instant in UTC
        raise OutsideUtcYears(
            f"{text!r} is out of range once in UTC", later=m["date"].startswith("9999")
        ) from None


def parse_exact(text: str) -> tuple[datetime, Decimal]:
    """The instant `text` names, exactly: its microsecond (cut) and the fraction of a
    microsecond beyond it (`…00.1230000002Z`: `.123000` and 0.0002), to order two times
    that fall in one microsecond. Raises as `parse_rfc3339` does."""
    cut = parse_rfc3339(text)
    m = _TIME.fullmatch(text)
    assert m is not None  # parsed above
    return cut, Decimal("0." + ((m["frac"] or "")[7:] or "0"))


def parse_instant(text: str) -> datetime:
    """As `parse_rfc3339`, but a valid time whose instant lies before year 1 or after year
    9999 in UTC (`0001-01-01T00:30:00+01:00`) is the first or the last instant a datetime
    holds: before or after every stored time, as a query's bounds take it."""
    try:
        return parse_rfc3339(text)
    except OutsideUtcYears as outside:
        return (datetime.max if outside.later else datetime.min).replace(tzinfo=UTC)


__all__ = ["NoSuchTime", "NoZone", "NotRfc3339", "parse_exact", "parse_instant", "parse_rfc3339"]
