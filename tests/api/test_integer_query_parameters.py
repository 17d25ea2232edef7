"""Every integer query parameter is read by one rule, the path's: ASCII decimal digits.

No sign, exponent, fraction or leading zero: Litestar read `1e2` and `1.0` as 100
and 1, rounded `99.9999999999999999` to 100 (the proof of another event) and
`9007199254740993.0` to 9007199254740992, while `01` was refused. Each refusal is
a 400 naming the parameter as sent and quoting its value as sent, in words of
the API rather than of msgspec ("Expected `int | null`").
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, AppFactory
from tests.merkle_helpers import Signed, signed_log

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MAX = 2**62

# Spellings of a number that are not its ASCII decimal digits.
MALFORMED = [
    "1e2",
    "1.0",
    "99.9999999999999999",
    "9007199254740993.0",
    "1e16",
    "01",
    "+1",
    "-0",
    "-1",
    "1_0",
    " 1",
    "1 ",
    "\u0661",  # ARABIC-INDIC DIGIT ONE
    "0x10",
    "",
]


def _malformed(name: str, low: int, high: int, sent: str) -> str:
    return (
        f"must be {low}..{high} in decimal digits (no sign, exponent, fraction or leading zero),"
        f" got {sent!r}"
    )


def _integer_query_parameters(doc: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(path, name, minimum, maximum) of every integer query parameter a GET takes."""
    found = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        for p in (op or {}).get("parameters", []):
            schema = p["schema"]
            kinds = {schema.get("type")} | {s.get("type") for s in schema.get("oneOf", [])}
            if p["in"] == "query" and "integer" in kinds:
                found.append((path, p["name"], schema["minimum"], schema["maximum"]))
    return sorted(found)


def _fill(path: str) -> str:
    """A concrete URL of a path template: `1` for a seq, a name or key otherwise."""
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "seq" else "x", path)


@pytest.fixture
async def app_client(make_app: AppFactory) -> AsyncIterator[Client]:
    async with AsyncTestClient(make_app(MemoryStore(), admin_key=ADMIN_KEY)) as c:
        yield c


@pytest.fixture
async def signed(tmp_path: Path) -> Signed:
    return await signed_log(tmp_path)


@pytest.fixture
async def signed_client(signed: Signed, make_app: AppFactory) -> AsyncIterator[Client]:
    async with AsyncTestClient(make_app(signed.store)) as c:
        yield c


async def test_every_integer_query_parameter_refuses_every_other_spelling_naming_it(
    app_client: Client,
) -> None:
    doc = (await app_client.get("/schema/openapi.json")).json()
    params = _integer_query_parameters(doc)
    # The schema still says integer, with its bounds, for each of them.
    assert {(path, name) for path, name, _, _ in params} >= {
        ("/v1/events", "limit"),
        ("/v1/events/live", "after"),
        ("/v1/events/live", "limit"),
        ("/v1/checkpoint", "size"),
        ("/v1/proof/inclusion", "seq"),
        ("/v1/proof/inclusion", "size"),
        ("/v1/proof/consistency", "from"),
        ("/v1/proof/consistency", "to"),
        ("/v1/events/{seq}/proof", "size"),
        ("/v1/streams/{stream}/entities/{key}/proof", "size"),
        ("/v1/streams/{stream}/entities/{key}/proof", "limit"),
        ("/v1/streams/{stream}/entities", "limit"),
        ("/v1/streams/{stream}/entities/{key}/history", "from_version"),
        ("/v1/streams/{stream}/entities/{key}/history", "to_version"),
        ("/v1/streams/{stream}/entities/{key}/history", "limit"),
        ("/v1/streams/{stream}/entities/{key}/state", "version"),
        ("/v1/streams/{stream}/entities/{key}/diff", "from_version"),
        ("/v1/streams/{stream}/entities/{key}/diff", "to_version"),
        ("/v1/verify", "head_seq"),
        ("/v1/projections/{name}", "limit"),
        ("/v1/admin/subscriptions/{name}/parked", "after"),
        ("/v1/admin/subscriptions/{name}/parked", "limit"),
        ("/v1/admin/actions", "limit"),
    }
    for path, name, low, high in params:
        for sent in MALFORMED:
            r = await app_client.get(_fill(path), params={name: sent}, headers=ADMIN)
            assert r.status_code == 400, (path, name, sent, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            message = _malformed(name, low, high, sent)
            body = r.json()
            assert body["detail"] == f"{name}: {message}", (path, sent)
            assert body["errors"] == [{"key": name, "message": message, "source": "query"}]
            assert "Expected" not in r.text and "`int" not in r.text
        for outside in (low - 1, high + 1):
            if outside < 0:
                continue  # `-1` is malformed (a sign): above
            r = await app_client.get(_fill(path), params={name: str(outside)}, headers=ADMIN)
            assert r.status_code == 400, (path, name, outside, r.text)
            assert r.json()["detail"] == f"{name}: must be {low}..{high}, got '{outside}'"


async def test_a_fraction_is_not_rounded_into_the_proof_of_another_event(
    signed_client: Client,
) -> None:
    r = await signed_client.get(
        "/v1/proof/inclusion", params={"seq": "12.9999999999999999", "size": "13"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == f"seq: {_malformed('seq', 1, MAX, '12.9999999999999999')}"
    exact = await signed_client.get("/v1/proof/inclusion", params={"seq": "13", "size": "13"})
    assert exact.status_code == 200, exact.text
    assert (exact.json()["leaf_index"], exact.json()["tree_size"]) == (12, 13)


async def test_a_refused_number_is_quoted_as_sent_not_as_a_double(signed_client: Client) -> None:
    r = await signed_client.get("/v1/proof/inclusion", params={"seq": "9007199254740993.0"})
    assert r.status_code == 400, r.text
    assert "'9007199254740993.0'" in r.json()["detail"]
    assert "9007199254740992" not in r.text
    # In digits it is read exactly, and is beyond the tree: a 422 quoting that number.
    digits = await signed_client.get("/v1/proof/inclusion", params={"seq": "9007199254740993"})
    assert digits.status_code == 422, digits.text
    assert digits.json()["detail"] == "seq 9007199254740993 is beyond tree size 21"


async def test_the_query_and_the_path_read_a_seq_alike(signed_client: Client) -> None:
    path = await signed_client.get("/v1/events/1.0/proof")
    query = await signed_client.get("/v1/proof/inclusion", params={"seq": "1.0"})
    assert (path.status_code, query.status_code) == (400, 400)
    for fine in ("/v1/events/1/proof", "/v1/proof/inclusion?seq=1"):
        r = await signed_client.get(fine)
        assert r.status_code == 200, r.text
        assert r.json()["leaf_index"] == 0


async def test_a_long_refused_value_is_quoted_shortened(app_client: Client) -> None:
    sent = "1" * 300
    r = await app_client.get("/v1/events", params={"limit": sent})
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "limit: must be 1..1000 in decimal digits (no sign, exponent, fraction or leading zero),"
        f" got {'1' * 60!r}... (300 characters)"
    )


async def test_digits_within_the_bounds_are_read_as_before(signed_client: Client) -> None:
    r = await signed_client.get("/v1/proof/consistency", params={"from": "5", "to": "13"})
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == (5, 13)
    page = await signed_client.get("/v1/events", params={"limit": "2"})
    assert [e["seq"] for e in page.json()["events"]] == [1, 2]


@pytest.mark.parametrize("sent", ["1e2", "nan", "inf", "-1", "+1", ".5", "5.", "1_0", "", "abc"])
async def test_the_live_timeout_is_seconds_in_decimal_digits_named_as_sent(
    app_client: Client, sent: str
) -> None:
    # The one number query parameter that is not whole (seconds) follows the same rule,
    # with a fraction allowed: msgspec took `1e2` as 100 s and said "Expected `float | null`".
    r = await app_client.get("/v1/events/live", params={"limit": "1", "timeout": sent})
    assert r.status_code == 400, r.text
    message = (
        "must be more than 0 and at most 86400, in decimal digits with an optional fraction"
        f" (e.g. 2.5; no sign, exponent or leading zero), got {sent!r}"
    )
    assert r.json()["detail"] == f"timeout: {message}"
    assert r.json()["errors"] == [{"key": "timeout", "message": message, "source": "query"}]


@pytest.mark.parametrize("sent", ["0", "0.0", "86400.5", "100000"])
async def test_a_live_timeout_out_of_bounds_is_named_with_them(
    app_client: Client, sent: str
) -> None:
    r = await app_client.get("/v1/events/live", params={"limit": "1", "timeout": sent})
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == f"timeout: must be more than 0 and at most 86400, got {sent!r}"
