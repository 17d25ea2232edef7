"""The status of a subscription run by the manager: current from the start, the reason of a failed
worker, an error cleared once deliveries go through, and a failed worker started again by a
changed configuration."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from eventstore.subscriptions.manager import SubscriptionManager
from eventstore.supervisor import Supervisor
from eventstore.worker_state import FAILED, RUNNING
from tests.realsinks import SECRET, Receiver
from tests.subscribing import Harness, until, until_async

# The supervisor's own publication comes every lease / 2 = 30 s: not what the tests see.
LEASE_S = 60.0
ROLE = "subscription:hooks"


class Managed:
    """A harness whose subscriptions run under a manager, as `run` runs them."""

    def __init__(self) -> None:
        self.h = Harness(lease_seconds=LEASE_S)
        self.supervisor = Supervisor(
            clock=self.h.clock, instance="here", lease_seconds=LEASE_S, workers=self.h.store.workers
        )
        self.manager = SubscriptionManager(
            self.h.store, self.supervisor, clock=self.h.clock, owner="here", lease_seconds=LEASE_S
        )
        self.h.admin.nudge = self.manager.nudge
        self.supervisor.add(self.manager)

    async def status(self) -> dict[str, Any]:
        return await self.h.admin.status(await self.h.admin.get("hooks"))


@pytest.fixture
async def managed() -> AsyncIterator[Managed]:
    m = Managed()
    await m.supervisor.start()
    try:
        yield m
    finally:
        await m.supervisor.stop(grace=2)


def hook(receiver: Receiver, secret: Any = SECRET) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url, "secret": secret}


async def test_a_failed_worker_says_why_in_one_line_and_a_changed_configuration_starts_it_again(
    managed: Managed, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = managed.h
    await h.subscribe("hooks", {"sink": hook(receiver, {"env": "NOT_SET_ANYWHERE"})})
    await h.append("a")
    why = (
        "configuration error: the sink cannot start: "
        "environment variable NOT_SET_ANYWHERE is not set"
    )

    async def failed() -> bool:
        s = await managed.status()
        return bool(s["state"] == FAILED and s["last_error"] == why)

    await until_async(failed)  # in the status at once, with the reason
    supervised = managed.supervisor.get(ROLE)
    assert supervised is not None and supervised.last_error == why  # what /v1/workers shows
    # An expected configuration error: one line, no traceback.
    assert [r for r in caplog.records if r.exc_info] == []
    assert [r.levelname for r in caplog.records if why in r.getMessage()] == ["WARNING"]

    # A PUT with a configuration that works starts the failed worker again.
    created, _ = await h.admin.put(
        "hooks", {"sink": hook(receiver), "start": "earliest"}, actor="ops"
    )
    assert not created
    await until(lambda: receiver.ids == ["hooks-1"])

    async def running_without_error() -> bool:
        s = await managed.status()
        return bool(s["state"] == RUNNING and s["last_error"] is None and s["delivered"] == 1)

    await until_async(running_without_error)
    restarted = [r.getMessage() for r in caplog.records if "starts again" in r.getMessage()]
    assert restarted == [
        "subscription hooks: its configuration changed, its failed worker starts again"
    ]


async def test_a_failed_worker_is_not_started_again_while_its_configuration_is_unchanged(
    managed: Managed, receiver: Receiver
) -> None:
    h = managed.h
    await h.subscribe("hooks", {"sink": hook(receiver, {"env": "NOT_SET_ANYWHERE"})})
    await until(lambda: (s := managed.supervisor.get(ROLE)) is not None and s.state == FAILED)
    await h.admin.pause("hooks", actor="ops")  # not a change of configuration
    await managed.manager.sync()
    supervised = managed.supervisor.get(ROLE)
    assert supervised is not None and (supervised.state, supervised.restarts) == (FAILED, 0)


async def test_the_status_is_current_from_the_start_and_its_error_clears_on_recovery(
    managed: Managed, receiver: Receiver
) -> None:
    h = managed.h
    answers: Iterator[tuple[int, dict[str, str]]] = iter([(500, {})])  # then 200s
    receiver.rule = lambda p: next(answers, (200, {}))
    await h.subscribe("hooks", {"sink": hook(receiver), "retry": {"delays_s": [5, 5]}})
    await h.append("a")
    await until(lambda: receiver.ids == ["hooks-1"])

    async def current() -> bool:
        s = await managed.status()
        return bool(
            (s["state"], s["delivered"], s["failed_attempts"], s["last_error"])
            == (RUNNING, 1, 1, None)
        )

    # `running` (not `stopped`) long before the next publication, and the error of the
    # failed attempt gone once the event went through.
    await until_async(current)
