"""Redis that stops answering (a hung server, not a refused connection) for longer than the
client's timeouts: the subscription retries without parking, and its status, `/metrics` and
`/v1/workers` say so; once Redis answers again every event goes out."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.subscriptions.sinks.redis_sinks import RedisPubSubSink, client
from eventstore.supervisor import Supervisor
from eventstore.worker_state import RETRYING, RUNNING
from tests.api.conftest import ADMIN_KEY, settings
from tests.realsinks import RedisServer
from tests.subscribing import Harness, until, until_async

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


async def _saved_failures(h: Harness, at_least: int) -> bool:
    record = await h.store.subscriptions.get("notify")
    return record is not None and record.failed_attempts >= at_least


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_a_hung_redis_is_retried_and_status_metrics_and_workers_tell_the_truth(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "r")
    server.directory.mkdir()
    server.start()
    assert server.process is not None
    h = Harness()
    sink = {"kind": "redis-pubsub", "url": server.url, "channel": "c"}
    await h.subscribe("notify", {"sink": sink})

    def short_timeouts(config: Any) -> RedisPubSubSink:
        return RedisPubSubSink(config.sink, redis=client(config.sink["url"], timeout=0.2))

    worker = h.worker("notify", owner="here", sink_factory=short_timeouts, backoff_cap=1)
    supervisor = Supervisor(
        clock=h.clock, instance="here", lease_seconds=10, workers=h.store.workers
    )
    supervised = supervisor.add(worker)
    app = create_app(
        settings(admin_key=ADMIN_KEY), store=h.store, clock=h.clock, supervisor=supervisor
    )
    stopped = False
    try:
        async with AsyncTestClient(app=app) as c:
            await supervisor.start()
            await h.append("a", "b")
            await until(lambda: worker.checkpoint == 2 and worker.state == RUNNING)

            server.process.send_signal(signal.SIGSTOP)  # it hangs: every call times out
            stopped = True
            await h.append("a", "c")
            await until(lambda: worker.state == RETRYING and worker.failed_attempts >= 2)
            await until(lambda: supervised.state == RETRYING)
            assert worker.checkpoint == 2
            await until_async(lambda: _saved_failures(h, 2))  # counters are saved every poll
            await supervisor.publish()  # what the publisher writes every lease / 2
            status = (await c.get("/v1/admin/subscriptions/notify", headers=ADMIN)).json()
            assert status["status"]["state"] == RETRYING
            assert status["status"]["lag"] == 2 and status["status"]["parked"] == 0
            timed_out = f"Redis unreachable at 127.0.0.1:{server.port}: timed out"
            assert status["status"]["last_error"] == timed_out
            workers = {w["name"]: w for w in (await c.get("/v1/workers")).json()}
            shown = workers["subscription:notify"]
            assert (shown["state"], shown["last_error"]) == (RETRYING, timed_out)
            text = (await c.get("/metrics")).text
            sub = '{subscription="notify"}'
            assert metric(text, f"eventstore_subscription_lag_events{sub}") == 2
            assert metric(text, f"eventstore_subscription_failures_total{sub}") >= 2
            assert metric(text, f"eventstore_subscription_parked{sub}") == 0
            state = 'eventstore_subscription_state{subscription="notify",state="retrying"}'
            assert metric(text, state) == 1

            server.process.send_signal(signal.SIGCONT)
            stopped = False
            await until(lambda: worker.checkpoint == 4, seconds=20)
            await until(lambda: worker.state == RUNNING)
            await supervisor.publish()
            status = (await c.get("/v1/admin/subscriptions/notify", headers=ADMIN)).json()
            assert status["status"]["state"] == RUNNING and status["status"]["lag"] == 0
            assert await h.store.deliveries.count_parked("notify") == 0
    finally:
        if stopped and server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        await supervisor.stop(grace=2)
        server.stop()
