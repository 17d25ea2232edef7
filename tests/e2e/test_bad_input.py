"""Fault test 6: a bad ndjson line (line 51 of 100) through `eventstore run` as a process.

`BAD_INPUT=record`: the 99 good changes and one `rejected` event in line 51's place
are served by the API. `BAD_INPUT=stop` (the default): the 50 lines before it are
recorded and none after, the error naming line 51 is in the log, and the process
keeps serving.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, free_port, wait_for
from tests.integration.test_ingester_bad_input import NOT_JSON, line, sha, token

GOOD = [n for n in range(1, 101) if n != 51]


class Running:
    """`eventstore run` over an ndjson file, its log written to a file the test can read live."""

    def __init__(self, tmp: Path, policy: str | None) -> None:
        lines = [line(n) for n in range(1, 101)]
        lines[50] = NOT_JSON  # line 51 of 100
        self.changes = tmp / "changes.ndjson"
        self.changes.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.log_path = tmp / "run.log"
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        args = ["run", "--uri", "memory://", "--source", f"ndjson:{self.changes}"]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        if policy is not None:
            args += ["--bad-input", policy]
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*EVENTSTORE, *args],
            cwd=ROOT,
            env=clean_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=STOP_SECONDS)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def running(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    r = Running(tmp_path, request.param)
    try:
        yield r
    finally:
        r.kill()


def all_events(http: httpx.Client) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = http.get("/v1/events", params=params).json()
        events += page["events"]
        if not page["next"]:
            return events
        params["after"] = page["next"]


def recorded(http: httpx.Client, count: int) -> bool:
    r = http.get("/v1/verify")
    return r.status_code == 200 and r.json()["events_checked"] >= count


@pytest.mark.parametrize("running", ["record"], indirect=True)
def test_record_serves_the_99_good_changes_and_one_rejected_event_in_its_place(
    running: Running,
) -> None:
    with httpx.Client(base_url=running.base, timeout=10) as http:
        wait_for(lambda: recorded(http, 100), seconds=30)
        events = all_events(http)
        assert [e["seq"] for e in events] == list(range(1, 101))
        assert [e["id"] for e in events if e["type"] != "rejected"] == [
            token(n)["_data"] for n in GOOD
        ]
        rejected = events[50]
        assert rejected["seq"] == 51 and rejected["type"] == "rejected"
        assert rejected["id"] == f"rejected:{sha(NOT_JSON)}:line 51"
        assert (rejected["stream"], rejected["entity_key"]) == ("$source", "$stream")
        assert rejected["document"]["position"] == "line 51"
        assert rejected["document"]["sha256"] == sha(NOT_JSON)
        by_type = http.get("/v1/events", params={"type": "rejected"}).json()["events"]
        assert [e["seq"] for e in by_type] == [51]
        verdict = http.get("/v1/verify").json()
        assert verdict["valid"] is True and verdict["events_checked"] == 100
        assert verdict["head_matches"] is True
        assert http.get("/health/ready").status_code == 200
    assert "ndjson: line 51: not valid JSON" in running.log()  # warned, not fatal
    assert running.stop() == 0
    assert "Traceback" not in running.log()


@pytest.mark.parametrize("running", [None, "stop"], indirect=True)
def test_stop_records_the_50_before_the_bad_line_none_after_and_keeps_serving(
    running: Running,
) -> None:
    wait_for(lambda: "ndjson: line 51: not valid JSON" in running.log(), seconds=30)
    assert running.proc.poll() is None  # capture failed; the process did not
    with httpx.Client(base_url=running.base, timeout=10) as http:
        events = all_events(http)
        assert [e["id"] for e in events] == [token(n)["_data"] for n in range(1, 51)]
        time.sleep(0.3)  # nothing more comes: capture is stopped, not slow
        assert len(all_events(http)) == 50
        assert http.get("/health/live").status_code == 200
        verdict = http.get("/v1/verify").json()
        assert verdict["valid"] is True and verdict["events_checked"] == 50
        assert http.get("/v1/events", params={"type": "rejected"}).json()["events"] == []
        # It says the truth: not ready, and the capture worker failed with the error.
        ready = http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"].startswith("application/problem+json")
        capture = [w for w in http.get("/v1/workers").json() if w["kind"] == "capture"]
        assert len(capture) == 1 and capture[0]["state"] == "failed", capture
        assert "ndjson: line 51: not valid JSON" in capture[0]["last_error"]
    log = running.log()
    # One line: the capture worker's change of state to `failed`, with the error.
    errors = [row for row in log.splitlines() if "ndjson: line 51:" in row]
    assert len(errors) == 1 and '"state": "failed"' in errors[0], errors
    assert "Traceback" not in log
    # The failure is the exit status when the operator stops it.
    assert running.stop() == 1
    assert "capture failed: ndjson: line 51: not valid JSON" in running.log()
