"""`eventstore serve` as an operator runs it: a subprocess on a free port, stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.factory import app_from_env
from tests.e2e.processes import STOP_SECONDS, free_port, kill, launch, stop


def serve(*args: str) -> subprocess.Popen[str]:
    return launch("serve", *args)


def wait_until_live(http: httpx.Client, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.communicate()}")
        try:
            if http.get("/health/live").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer /health/live in time")


def access_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = serve("--uri", "memory://", "--port", str(port))
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        kill(proc)


def test_serve_answers_logs_one_json_line_per_request_and_stops_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    proc, base = served
    with httpx.Client(base_url=base, timeout=10) as http:
        wait_until_live(http, proc)
        streams = http.get("/v1/streams")
        assert streams.status_code == 200
        assert streams.json() == []  # a fresh memory:// store
        assert http.get("/v1/streams", params={"nope": "1"}).status_code == 400

    code, out, err, took = stop(proc)
    assert code == 0, err[-2000:]
    assert took < 5, f"took {took:.1f}s to stop"
    assert "Traceback" not in err
    lines = access_lines(out + err)
    served_streams = [a for a in lines if a["path"] == "/v1/streams"]
    assert [a["status"] for a in served_streams] == [200, 400]
    assert {"method", "path", "route", "status", "ms", "client"} <= set(served_streams[0])
    assert served_streams[0]["method"] == "GET"
    # uvicorn's own access log is off: no plain-text request lines besides the JSON ones.
    assert '"GET /v1/streams HTTP/1.1"' not in err


def test_sigterm_ends_an_open_live_tail_at_once_and_cleanly(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    proc, base = served
    with httpx.Client(base_url=base, timeout=10) as http:
        wait_until_live(http, proc)
        with http.stream("GET", "/v1/events/live") as live:  # unbounded: no limit, no timeout
            assert live.status_code == 200
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            live.read()  # the server ends the stream properly (a cut one would raise)
            ended = time.monotonic() - started
    _out, err = proc.communicate(timeout=STOP_SECONDS)
    assert proc.returncode == 0, err[-2000:]
    assert ended < 2, f"the live tail ended {ended:.1f}s after SIGTERM (not at once)"
    assert " ERROR " not in err, err[-2000:]
    assert [a["status"] for a in access_lines(err) if a["path"] == "/v1/events/live"] == [200]


def test_serve_on_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = serve("--uri", "memory://", "--port", str(port))
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        f"eventstore: error: cannot listen on 127.0.0.1:{port}: the port is in use"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--uri", "postgres://x"], "--uri must start with"),
        (["--uri", "memory://", "--batch-size", "0"], "--batch-size must be at least 1"),
        ([], "serve needs a database"),
        (["--uri", "memory://", "--workers", "2"], "memory:// lives inside one process"),
        (["--uri", "memory://", "--host", "no-such-host.invalid"], "unknown address"),
    ],
)
def test_serve_with_a_bad_setting_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    proc = serve(*args, "--port", str(free_port()))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eventstore: error: "), err
    assert message in lines[0]


def test_serve_with_workers_builds_each_app_from_the_settings_flags() -> None:
    """Two worker processes; the flags reach them (a read key is required); no database: 503."""
    port = free_port()
    proc = serve(
        "--uri",
        "mongodb://127.0.0.1:1/",
        "--server-timeout-ms",
        "200",
        "--read-keys",
        "serve-read-key",
        "--workers",
        "2",
        "--port",
        str(port),
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until_live(http, proc)
            for _ in range(4):  # whichever worker answers
                assert http.get("/v1/streams").status_code == 401
                keyed = http.get("/v1/streams", headers={"authorization": "Bearer serve-read-key"})
                assert keyed.status_code == 503
                assert keyed.headers["content-type"].startswith("application/problem+json")
        code, out, err, _ = stop(proc)
        assert code == 0, err[-2000:]
        assert "serve-read-key" not in out + err
        assert len(access_lines(out + err)) >= 9
    finally:
        kill(proc)


def test_the_factory_builds_an_app_from_the_environment_without_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTSTORE_URI", "mongodb://127.0.0.1:1/")
    monkeypatch.setenv("EVENTSTORE_ADMIN_KEY", "factory-admin")
    app = app_from_env()
    assert app.services.settings.admin_key == "factory-admin"
    assert not app.services.connected
