"""Secrets of sinks (webhook `secret`, `headers` values, a password in a URL), given literally
or as {"env"} / {"file"}, never reach a log line, an API answer or a worker's status; a
retrying subscription shows why it retries, scrubbed, in `/v1/workers`."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.supervisor import Supervisor
from eventstore.worker_state import RETRYING
from tests.api.conftest import ADMIN_KEY, settings
from tests.realsinks import Receiver, free_port
from tests.subscribing import Harness, until, until_async

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
BASE = "/v1/admin/subscriptions"


def whsec(fill: bytes) -> str:
    return "whsec_" + base64.b64encode(fill * 32).decode()


LITERAL_SECRET = whsec(b"L")
ENV_SECRET = whsec(b"E")
FILE_SECRET = whsec(b"F")
LITERAL_HEADER = "hdr-literal-5f3a9c"
ENV_HEADER = "hdr-env-91c2d7"
FILE_HEADER = "hdr-file-77d1e0"
WEBHOOK_URL_PASSWORD = "urlpw-literal-3b8e11"
REDIS_PASSWORD = "redispw-literal-a40c2f"
REDIS_ENV_PASSWORD = "redispw-env-6d93b5"
# A malformed secret in a refused PUT: the 422 must not echo it either.
MALFORMED_SECRET = "whsec_not-base64-but-secret-c0ffee"
SECRETS = (
    LITERAL_SECRET,
    ENV_SECRET,
    FILE_SECRET,
    LITERAL_HEADER,
    ENV_HEADER,
    FILE_HEADER,
    WEBHOOK_URL_PASSWORD,
    REDIS_PASSWORD,
    REDIS_ENV_PASSWORD,
    MALFORMED_SECRET,
    # the base64 bodies alone (a message quoting a decoded part)
    *(s.removeprefix("whsec_") for s in (LITERAL_SECRET, ENV_SECRET, FILE_SECRET)),
)


async def _errors_saved(h: Harness, names: list[str]) -> bool:
    records = [await h.store.subscriptions.get(n) for n in names]
    return all(r is not None and r.last_error for r in records)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appears in {where}"


def bodies(receiver: Receiver, tmp_path: Path, redis_port: int) -> dict[str, dict[str, Any]]:
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(FILE_SECRET + "\n")
    header_file = tmp_path / "header.value"
    header_file.write_text(FILE_HEADER + "\n")
    url = receiver.url.replace("http://", f"http://hooks:{WEBHOOK_URL_PASSWORD}@")
    fast = {"delays_s": [0.01], "jitter": 0}
    return {
        "literal": {
            "sink": {
                "kind": "webhook",
                "url": url,
                "secret": LITERAL_SECRET,
                "headers": {"x-token": LITERAL_HEADER},
                "timeout_s": 2,
            },
            "retry": fast,
        },
        "from-env": {
            "sink": {
                "kind": "webhook",
                "url": receiver.url,
                "secret": {"env": "HOOK_SECRET"},
                "headers": {"x-token": {"env": "HOOK_HEADER"}},
                "timeout_s": 2,
            },
            "retry": fast,
        },
        "from-file": {
            "sink": {
                "kind": "webhook",
                "url": receiver.url,
                "secret": {"file": str(secret_file)},
                "headers": {"x-token": {"file": str(header_file)}},
                "timeout_s": 2,
            },
            "retry": fast,
        },
        "redis-literal": {
            "sink": {
                "kind": "redis-pubsub",
                "url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0",
                "channel": "orders",
            }
        },
        "redis-env": {
            "sink": {"kind": "redis-pubsub", "url": {"env": "REDIS_URL"}, "channel": "orders"}
        },
    }


async def test_secrets_never_reach_logs_answers_or_status_and_retrying_says_why(
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    redis_port = free_port()  # nothing listens there: Redis is unreachable
    monkeypatch.setenv("HOOK_SECRET", ENV_SECRET)
    monkeypatch.setenv("HOOK_HEADER", ENV_HEADER)
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_ENV_PASSWORD}@127.0.0.1:{redis_port}/0")
    h = Harness()
    for _ in range(3):
        await h.append("a", "b")
    # The receiver knows none of these secrets: every delivery fails its signature (400),
    # then it stops listening (connection refused: the whole sink backs off).
    answers: list[str] = []
    supervisor = Supervisor(
        clock=h.clock, instance="here", lease_seconds=10, workers=h.store.workers
    )
    # The references are given over the API: the operator allows it (EVENTSTORE_API_SECRET_REFERENCES).
    app = create_app(
        settings(admin_key=ADMIN_KEY, api_secret_references=True),
        store=h.store,
        clock=h.clock,
        supervisor=supervisor,
    )
    async with AsyncTestClient(app=app) as c:
        for name, body in bodies(receiver, tmp_path, redis_port).items():
            put = await c.put(f"{BASE}/{name}", json={**body, "start": "earliest"}, headers=ADMIN)
            assert put.status_code == 201, put.text
            answers.append(put.text)
        refused = await c.put(
            f"{BASE}/refused",
            json={"sink": {"kind": "webhook", "url": receiver.url, "secret": MALFORMED_SECRET}},
            headers=ADMIN,
        )
        assert refused.status_code == 422
        assert [e["key"] for e in refused.json()["errors"]] == ["sink.secret"]
        answers.append(refused.text)

        workers = {}
        for name in ("literal", "from-env", "from-file", "redis-literal", "redis-env"):
            workers[name] = h.worker(name, owner="here")
            supervisor.add(workers[name])
        await supervisor.start()
        try:
            hooks = [workers[n] for n in ("literal", "from-env", "from-file")]
            await until(lambda: all(w.failed_attempts >= 1 for w in hooks))
            assert receiver.invalid >= 3  # deliveries were made, signed with the secrets
            await receiver.stop()
            await h.append("c")  # one more event for each: its POST is refused
            await until(lambda: all(w.state == RETRYING for w in workers.values()))
            await until_async(lambda: _errors_saved(h, list(workers)))  # saved every poll
            await supervisor.publish()  # what the publisher writes every lease / 2

            shown = await c.get("/v1/workers", headers=ADMIN)
            answers.append(shown.text)
            by_name = {w["name"]: w for w in shown.json()}
            for name in ("literal", "from-env", "from-file"):
                row = by_name[f"subscription:{name}"]
                assert row["state"] == RETRYING
                # Refused on a new connection; reset on one kept alive from before the stop
                # (which of the two a worker meets depends on the timing: both say why).
                assert row["last_error"] in (
                    f"cannot reach the receiver 127.0.0.1:{receiver.port}: connection refused",
                    f"cannot reach the receiver 127.0.0.1:{receiver.port}: connection reset by peer",
                    f"cannot reach the receiver 127.0.0.1:{receiver.port}: broken pipe",
                    f"cannot reach the receiver 127.0.0.1:{receiver.port}: the connection failed",
                    f"the receiver 127.0.0.1:{receiver.port} closed the connection without an answer",
                )
            for name in ("redis-literal", "redis-env"):
                row = by_name[f"subscription:{name}"]
                assert row["state"] == RETRYING
                assert row["last_error"] == (
                    f"Redis unreachable at 127.0.0.1:{redis_port}: connection refused"
                )

            for name in workers:
                one = await c.get(f"{BASE}/{name}", headers=ADMIN)
                answers.append(one.text)
                status = one.json()["status"]
                assert status["state"] == RETRYING and status["last_error"], (name, status)
                parked = await c.get(f"{BASE}/{name}/parked", headers=ADMIN)
                answers.append(parked.text)
            answers.append((await c.get(BASE, headers=ADMIN)).text)
            answers.append((await c.get("/metrics", headers=ADMIN)).text)
        finally:
            await supervisor.stop(grace=2)

    for i, text in enumerate(answers):
        assert_no_secret(text, f"API answer {i}")
    lines = [
        logging.Formatter("%(levelname)s %(name)s %(message)s").format(r) for r in caplog.records
    ]
    logged = "\n".join(lines)
    assert "backs off" in logged and "subscription:literal" in logged  # the failures were logged
    assert_no_secret(logged, "the logs")


class LeakySink:
    """A sink whose failures quote its secrets (a client library might)."""

    strict = False
    max_batch: int | None = None

    def __init__(self, config: Any) -> None:
        sink = config.sink
        self.quote = f"{sink['secret']} {sink['headers']['x-token']} {sink['url']}"

    async def check(self) -> Any:
        return None

    async def deliver(self, deliveries: Any) -> Any:
        raise RuntimeError(f"client blew up: {self.quote}")

    async def close(self) -> None:
        return None


async def test_an_error_quoting_the_sinks_secrets_is_scrubbed_everywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HOOK_HEADER", ENV_HEADER)
    h = Harness()
    await h.append("a")
    url = f"https://hooks:{WEBHOOK_URL_PASSWORD}@example.test/h"
    sink = {"kind": "webhook", "url": url, "secret": LITERAL_SECRET}
    await h.subscribe("leaky", {"sink": {**sink, "headers": {"x-token": {"env": "HOOK_HEADER"}}}})
    worker = h.worker("leaky", sink_factory=LeakySink)
    one = await h.start(worker)
    try:
        await until(lambda: one.state == RETRYING and worker.failed_attempts >= 2)
    finally:
        await h.stop()
    assert worker.last_error is not None and worker.last_error.startswith(
        "RuntimeError: client blew up: *** {'env': 'HOOK_HEADER'} https://***@example.test/h"
    )
    assert one.last_error == worker.last_error  # what /v1/workers shows
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "client blew up" in logged
    assert_no_secret(logged + worker.last_error, "the logs")


def test_a_header_value_read_from_the_environment_may_not_inject_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventstore.clock import SystemClock
    from eventstore.subscriptions.secrets import SecretError
    from eventstore.subscriptions.sinks.webhook import WebhookSink

    monkeypatch.setenv("HOOK_HEADER", "v\r\nx-injected: 1")
    sink = {
        "kind": "webhook",
        "url": "https://example.test/h",
        "secret": LITERAL_SECRET,
        "headers": {"x-token": {"env": "HOOK_HEADER"}},
    }
    with pytest.raises(SecretError, match="header x-token: the value holds control characters"):
        WebhookSink(sink, clock=SystemClock())
