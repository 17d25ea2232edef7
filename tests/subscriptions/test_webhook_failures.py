"""What a failing receiver does to a subscription: parking, back-off, disabling, Retry-After."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from eventstore.worker_state import DISABLED, PAUSED, RETRYING
from tests.realsinks import OLD_SECRET, SECRET, Receiver, seqs_by_entity
from tests.subscribing import Harness, until, until_async


def webhook(receiver: Receiver, **kw: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url, "secret": SECRET, **kw}


async def test_a_receiver_failing_one_entity_parks_its_events_while_the_others_arrive(
    receiver: Receiver,
) -> None:
    h = Harness()
    failing = {"bad"}
    receiver.rule = lambda p: (500, {}) if p["data"]["entity_key"] in failing else (200, {})
    await h.subscribe(
        "hooks",
        {"sink": webhook(receiver), "lanes": 2, "retry": {"delays_s": [5, 60], "jitter": 0.1}},
    )
    await h.append("bad", "ok1")  # 1, 2
    await h.append("bad", "ok2")  # 3, 4
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 2)
        await until_async(lambda: _parked_count(h, 2))
        await h.append("bad", "ok1")  # 5 (parked behind 1), 6
        await until(lambda: len(receiver.ids) == 3)
        await until_async(lambda: _parked_count(h, 3))
        await until_async(
            lambda: _at(h, 6)
        )  # parked events are settled: the checkpoint passes them
        parked, _ = await h.admin.parked("hooks")
        assert [(p.seq, p.attempts) for p in parked] == [(1, 3), (3, 0), (5, 0)]
        assert parked[0].last_error == f"the receiver 127.0.0.1:{receiver.port} answered 500"
        assert parked[1].last_error == "held behind parked seq 1"
        # Three attempts of seq 1 (now, +5 s, +60 s), none of the later ones: sequenced parking.
        assert receiver.attempts.count("hooks-1") == 3
        assert "hooks-3" not in receiver.attempts

        failing.clear()
        await h.admin.replay("hooks", 3, actor="ops")
        await until(lambda: len(receiver.ids) == 5)
        assert seqs_by_entity(receiver.bodies)["bad"] == [1, 3]
        await h.admin.skip("hooks", 5, actor="alice")
        await until_async(lambda: _parked_count(h, 0))
    finally:
        await h.stop()
    assert "hooks-5" not in receiver.ids
    actions, _ = await h.admin.actions(after=None, limit=10)
    assert [(a.action, a.actor) for a in actions] == [
        ("create", "tester"),
        ("replay", "ops"),
        ("skip", "alice"),
    ]
    assert actions[2].details == {"seq": 5, "stream": "orders", "entity_key": "bad"}


async def _at(h: Harness, position: int) -> bool:
    return await h.position("hooks") == position


async def _parked_count(h: Harness, n: int) -> bool:
    return await h.store.deliveries.count_parked("hooks") == n


async def test_a_receiver_refusing_connections_backs_off_the_subscription_without_parking(
    receiver: Receiver,
) -> None:
    h = Harness()
    await receiver.stop()  # connection refused
    await h.subscribe("hooks", {"sink": webhook(receiver), "lanes": 4, "retry": {"delays_s": [1]}})
    await h.append("a", "b", "c", "d")
    worker = h.worker("hooks", backoff_first=1.0, backoff_cap=8.0)
    supervised = await h.start(worker)
    try:
        await until(lambda: worker.failed_attempts >= 8)
        # backing off is reported once the worker's loop is next idle (nothing in flight)
        await until(lambda: supervised.state == RETRYING)
        assert await h.store.deliveries.count_parked("hooks") == 0
        assert await h.position("hooks") == 0
        await receiver.start()
        await until(lambda: len(receiver.ids) == 4)
        await until(lambda: supervised.state == "running")
    finally:
        await h.stop()
    assert await h.store.deliveries.count_parked("hooks") == 0
    assert sorted(receiver.ids) == ["hooks-1", "hooks-2", "hooks-3", "hooks-4"]


async def test_410_disables_the_subscription_with_its_reason_until_resumed(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    receiver.rule = lambda p: (410, {})
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.append("a", "b")
    supervised = await h.start(h.worker("hooks"))
    try:
        await until(lambda: supervised.state == DISABLED)
        # the worker's own state says why (what `status` and the worker list show)
        assert supervised.last_error == f"the receiver 127.0.0.1:{receiver.port} answered 410 Gone"
        record = await h.admin.get("hooks")
        assert record.disabled_reason == f"the receiver 127.0.0.1:{receiver.port} answered 410 Gone"
        status = await h.admin.status(record)
        assert status["state"] == DISABLED and status["position"] == 0
        assert receiver.attempts == ["hooks-1"]  # nothing more is sent while disabled
        disabled = [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()]
        assert disabled == [
            f"subscription hooks disabled: the receiver 127.0.0.1:{receiver.port} answered 410 Gone"
        ]
        receiver.rule = lambda p: (200, {})
        await h.admin.resume("hooks", actor="ops")
        await until(lambda: len(receiver.ids) == 2)
    finally:
        await h.stop()
    assert receiver.ids == ["hooks-1", "hooks-2"]


async def test_429_retry_after_backs_off_the_whole_subscription_for_that_long(
    receiver: Receiver,
) -> None:
    h = Harness()
    answers = iter([(429, {"retry-after": "120"})])
    receiver.rule = lambda p: next(answers, (200, {}))
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.append("a")
    start = h.clock.now()
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 1)
    finally:
        await h.stop()
    waited = (h.clock.now() - start).total_seconds()
    assert 120 <= waited < 130  # the fake clock moved by the Retry-After, not by a back-off guess


async def test_retry_after_is_honoured_up_to_one_hour(receiver: Receiver) -> None:
    h = Harness()
    answers = iter([(503, {"retry-after": "86400"})])
    receiver.rule = lambda p: next(answers, (200, {}))
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.append("a")
    start = h.clock.now()
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 1)
    finally:
        await h.stop()
    waited = (h.clock.now() - start).total_seconds()
    assert 3600 <= waited < 3700


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver, status: int) -> None:
    h = Harness()
    receiver.rule = lambda p: (status, {"location": receiver.url + "/elsewhere"})
    await h.subscribe("hooks", {"sink": webhook(receiver), "retry": {"delays_s": [1]}})
    await h.append("a")
    await h.start(h.worker("hooks"))
    try:
        await until_async(lambda: _parked_count(h, 1))
    finally:
        await h.stop()
    parked, _ = await h.admin.parked("hooks")
    assert parked[0].last_error == (
        f"the receiver 127.0.0.1:{receiver.port} answered {status} (redirects are not followed)"
    )
    assert receiver.attempts == ["hooks-1", "hooks-1"]  # two POSTs, never a GET of the Location


async def test_a_receiver_that_hangs_is_a_timeout_of_the_whole_sink(receiver: Receiver) -> None:
    h = Harness()
    hanging = [True]
    receiver.rule = lambda p: None if hanging[0] else (200, {})
    await h.subscribe("hooks", {"sink": webhook(receiver, timeout_s=0.2)})
    await h.append("a")
    worker = h.worker("hooks")
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING)
        assert worker.last_error == f"the receiver 127.0.0.1:{receiver.port} timed out"
        hanging[0] = False
        await until(lambda: len(receiver.ids) == 1)
    finally:
        await h.stop()
    assert await h.store.deliveries.count_parked("hooks") == 0


async def test_rotation_sends_both_signatures_and_headers_go_along(receiver: Receiver) -> None:
    h = Harness()
    old_only = Receiver(OLD_SECRET)
    old_only.port = receiver.port  # the same endpoint, verified with the old secret only
    await h.subscribe(
        "hooks",
        {"sink": webhook(receiver, secret=[SECRET, OLD_SECRET], headers={"x-tenant": "t1"})},
    )
    await h.append("a")
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == 1)
    finally:
        await h.stop()
    headers = receiver.headers[0]
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # Each secret alone verifies the same request.
    from standardwebhooks.webhooks import Webhook

    body = receiver.bodies[0]
    assert body["type"] == "orders.created"
    assert body["data"]["seq"] == 1
    assert headers["x-tenant"] == "t1"
    assert headers["content-type"] == "application/json"
    raw_headers = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    for secret in (SECRET, OLD_SECRET):
        assert Webhook(secret).verify(_raw(receiver), raw_headers)["data"]["seq"] == 1


def _raw(receiver: Receiver) -> bytes:
    import json

    # The receiver verified the bytes as sent; re-encode them as the sink did (compact JSON).
    return json.dumps(receiver.bodies[0], separators=(",", ":")).encode()


async def test_part_of_an_entitys_parked_events_replayed_or_skipped_keeps_the_rest_holding(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    failing = {"bad"}
    receiver.rule = lambda p: (500, {}) if p["data"]["entity_key"] in failing else (200, {})
    await h.subscribe("hooks", {"sink": webhook(receiver), "retry": {"delays_s": [5]}})
    await h.append("bad")  # 1
    await h.append("bad")  # 2
    await h.append("bad")  # 3
    await h.append("ok")  # 4
    # a window of two events: a replayed event not counted out again would stall delivery
    await h.start(h.worker("hooks", window=2))
    try:
        await until(lambda: receiver.ids == ["hooks-4"])
        await until_async(lambda: _parked_count(h, 3))
        parked_lines = [r.getMessage() for r in caplog.records if " parked " in r.getMessage()]
        # the window held 1 and 2 when 1 gave up; 3 was read after and parked behind them
        assert parked_lines == ["subscription hooks parked 2 event(s) of orders/bad from seq 1"]
        failing.clear()
        await h.admin.replay("hooks", 1, actor="ops")
        await until(lambda: "hooks-1" in receiver.ids)
        await until_async(lambda: _parked_count(h, 2))
        await h.append("bad")  # 5: held behind the still parked 2 and 3
        await until_async(lambda: _parked_count(h, 3))
        await h.admin.skip("hooks", 2, actor="ops")
        await until_async(lambda: _parked_count(h, 2))
        await h.append("bad")  # 6: held behind 3
        await until_async(lambda: _parked_count(h, 3))
        parked, _ = await h.admin.parked("hooks")
        assert [(p.seq, p.type, p.entity_key, p.last_error) for p in parked] == [
            (3, "updated", "bad", "held behind parked seq 1"),
            (5, "updated", "bad", "held behind parked seq 2"),
            (6, "updated", "bad", "held behind parked seq 3"),
        ]
        assert receiver.ids == ["hooks-4", "hooks-1"]
        await h.admin.replay("hooks", None, actor="ops")
        await until_async(lambda: _parked_count(h, 0))
        await until(lambda: len(receiver.ids) == 5)
        await h.append("bad", "ok")  # 7, 8: nothing parked any more, both go out
        await until(lambda: len(receiver.ids) == 7)
        await until_async(lambda: _at(h, 8))
    finally:
        await h.stop()
    assert seqs_by_entity(receiver.bodies)["bad"] == [1, 3, 5, 6, 7]
    assert "hooks-2" not in receiver.ids


async def test_a_replayed_event_that_fails_again_is_parked_again_and_replayable_again(
    receiver: Receiver,
) -> None:
    h = Harness()
    failing = {"bad"}
    receiver.rule = lambda p: (500, {}) if p["data"]["entity_key"] in failing else (200, {})
    await h.subscribe("hooks", {"sink": webhook(receiver), "retry": {"delays_s": [5]}})
    await h.append("bad", "ok")  # 1, 2
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: receiver.ids == ["hooks-2"])
        await until_async(lambda: _parked_count(h, 1))
        await h.admin.replay("hooks", None, actor="ops")  # still failing
        await until(lambda: receiver.attempts.count("hooks-1") == 4)
        await until_async(lambda: _parked_count(h, 1))
        [again], _ = await h.admin.parked("hooks")
        assert (again.seq, again.attempts, again.last_error) == (
            1,
            2,
            f"the receiver 127.0.0.1:{receiver.port} answered 500",
        )
        failing.clear()
        await h.admin.replay("hooks", None, actor="ops")
        await until(lambda: "hooks-1" in receiver.ids)
        await until_async(lambda: _parked_count(h, 0))
    finally:
        await h.stop()
    assert receiver.ids == ["hooks-2", "hooks-1"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("86400", 3600.0),  # capped at an hour
        ("99999999999999999999999", 3600.0),
        ("9" * 50, 3600.0),
        # not delay-seconds (ASCII digits only) nor an HTTP date: ignored, never a crash
        ("\u00b2", None),  # str.isdigit() admits it and float() refuses it: a ValueError
        ("\u0663", None),
        ("1_0", None),
        ("-3", None),
        ("1e3", None),
    ],
)
def test_a_retry_after_header_is_read_as_delay_seconds_or_an_http_date(
    header: str, seconds: float | None
) -> None:
    from eventstore.subscriptions.sinks.base import retry_after

    assert retry_after(header, 1e9) == seconds


@pytest.mark.parametrize("status", [503, 429])
async def test_a_failure_of_the_whole_receiver_names_it(receiver: Receiver, status: int) -> None:
    # README: errors name the server and the reason; an answer said `the receiver answered 503`.
    h = Harness()
    receiver.rule = lambda p: (status, {})
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.append("a")
    worker = h.worker("hooks")
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING)
    finally:
        await h.stop()
    why = f"the receiver 127.0.0.1:{receiver.port} answered {status}"
    assert (supervised.last_error, worker.last_error) == (why, why)


async def test_a_failure_of_one_event_is_the_workers_last_error_too(receiver: Receiver) -> None:
    # `/v1/workers` and `eventstore status` showed `running` with no last_error while every
    # delivery failed; README: there `last_error` is the last error the worker met.
    h = Harness()
    receiver.rule = lambda p: (500, {})
    await h.subscribe("hooks", {"sink": webhook(receiver), "retry": {"delays_s": [1]}})
    await h.append("a")
    supervised = await h.start(h.worker("hooks"))
    try:
        await until_async(lambda: _parked_count(h, 1))  # two attempts (the fake clock's)
        state = supervised.state
        record = supervised.record()
    finally:
        await h.stop()
    why = f"the receiver 127.0.0.1:{receiver.port} answered 500"
    assert (state, supervised.last_error, record.last_error) == ("running", why, why)


async def test_a_pause_waits_for_deliveries_in_flight_and_records_them(
    receiver: Receiver,
) -> None:
    # A pause cancelled them: the receiver took the event, and it was sent again after the
    # resume. Like a stop, a pause now waits (at most `drain_s`, 6x the answer's 0.5 s).
    h = Harness()
    receiver.delay = 0.5
    await h.subscribe("hooks", {"sink": webhook(receiver)})
    await h.append("a")
    worker = h.worker("hooks", drain_s=3.0)
    supervised = await h.start(worker)
    try:
        await until(lambda: receiver.open_ids == {"hooks-1"})  # in flight
        await h.admin.pause("hooks", actor="ops")
        worker.nudge()
        await until(lambda: supervised.state == PAUSED and not worker.inflight)
        paused_at = (worker.checkpoint, list(receiver.ids))
        receiver.delay = 0.0
        await h.admin.resume("hooks", actor="ops")
        worker.nudge()
        await h.append("b")
        await until(lambda: worker.checkpoint == 2)
    finally:
        await h.stop()
    assert paused_at == (1, ["hooks-1"])  # answered during the pause, and recorded
    assert receiver.attempts == ["hooks-1", "hooks-2"]  # never sent again
