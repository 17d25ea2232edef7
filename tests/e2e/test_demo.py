"""`eventstore demo` as a user runs it: a subprocess on a free port, walked over HTTP, stopped with SIGTERM."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, clean_env, kill, start, stop, wait_for

ADMIN = "e2e-admin-key"


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, base = start(
        "demo", "--orders", "15", "--rate", "0", "--seed", "3", env={"EVENTSTORE_ADMIN_KEY": ADMIN}
    )
    try:
        yield proc, base
    finally:
        kill(proc)


def test_the_demo_serves_the_whole_api_and_stops_cleanly_on_sigterm(
    demo: tuple[subprocess.Popen[str], str],
) -> None:
    proc, base = demo
    with httpx.Client(base_url=base, timeout=10) as http:
        wait_for(lambda: http.get("/health/ready").status_code == 200)
        # All 15 orders are captured and every projection has caught up (rate 0: no more traffic).
        streams = wait_for(
            lambda: (r := http.get("/v1/streams").json()) and r[0]["entities"] == 15 and r
        )
        assert streams[0]["stream"] == "orders"
        head = streams[0]["last_seq"]
        wait_for(lambda: all(p["lag"] == 0 for p in http.get("/v1/projections").json()))

        key = http.get("/v1/streams/orders/entities", params={"limit": 1}).json()["items"][0][
            "entity_key"
        ]
        history = http.get(f"/v1/streams/orders/entities/{key}/history").json()
        first = history["events"][0]
        assert first["type"] == "created" and first["entity_key"] == key
        state = http.get(
            f"/v1/streams/orders/entities/{key}/state", params={"at": first["occurred_at"]}
        ).json()
        assert state["version"] == 1 and state["document"]["number"] == first["document"]["number"]
        d = http.get(
            f"/v1/streams/orders/entities/{key}/diff", params={"from_version": 1, "to_version": 1}
        ).json()
        assert d == {"from_version": 1, "to_version": 1, "changes": [], "erased": False}
        assert http.get("/v1/verify").json()["valid"] is True
        export = http.get("/v1/events", headers={"accept": "application/x-ndjson"})
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [e["seq"] for e in lines] == list(range(1, head + 1))
        summary = http.get(f"/v1/projections/order_summary/{key}").json()
        assert summary["number"] == first["document"]["number"]

        denied = http.post("/v1/admin/projections/order_summary/rebuild")
        assert denied.status_code == 401 and "bearer" in denied.headers["www-authenticate"].lower()
        accepted = http.post(
            "/v1/admin/projections/order_summary/rebuild",
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert accepted.status_code == 202
        job = accepted.json()["job"]
        done = wait_for(
            lambda: (
                (
                    j := http.get(
                        f"/v1/admin/jobs/{job}", headers={"authorization": f"Bearer {ADMIN}"}
                    ).json()
                )["state"]
                == "succeeded"
                and j
            )
        )
        assert done["processed"] == done["total"] == head

    code, out, err, _ = stop(proc)
    assert code == 0, err[-2000:]
    assert f"{base}/schema" in out
    assert re.search(rf"{re.escape(base)}/v1/streams/orders/entities/\S+/history", out)
    assert ADMIN not in out + err  # a key given by the operator is never printed
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"method", "path", "status", "ms"} <= set(access[0])


def test_the_demo_prints_a_generated_admin_key_that_works() -> None:
    proc, base = start("demo", "--orders", "2", "--rate", "0")  # no EVENTSTORE_ADMIN_KEY
    try:
        assert proc.stdout is not None
        key = None
        for line in proc.stdout:  # the banner is printed before serving starts
            if match := re.search(r"admin key\s+(\S+)", line):
                key = match.group(1)
                break
        assert key is not None
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_for(lambda: http.get("/health/ready").status_code == 200)
            job = http.get("/v1/admin/jobs/nope", headers={"authorization": f"Bearer {key}"})
            assert job.status_code == 404  # authorised: the job is unknown
            wrong = http.get("/v1/admin/jobs/nope", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
        code, _, _, _ = stop(proc)
        assert code == 0
    finally:
        kill(proc)


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    import socket as sockets

    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*EVENTSTORE, "demo", "--port", str(port), "--rate", "0"],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"eventstore: error: cannot listen on 127.0.0.1:{port}: the port is in use"
    )
    assert "Traceback" not in done.stderr and "serving" not in done.stdout


def test_the_demo_stops_the_traffic_after_changes_and_keeps_serving() -> None:
    # Paced at 100/s, every step moves `updatedAt`: each of the 20 changes is one event.
    proc, base = start("demo", "--orders", "5", "--changes", "20", "--rate", "100", "--seed", "4")
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_for(lambda: http.get("/health/ready").status_code == 200)
            # An empty list until the first event is stored.
            wait_for(lambda: (r := http.get("/v1/streams").json()) and r[0]["last_seq"] == 25)
            time.sleep(1.0)  # another 100 changes, were the traffic still on
            assert http.get("/v1/streams").json()[0]["last_seq"] == 25
            assert http.get("/v1/verify").json()["valid"] is True
            assert http.get("/health/ready").status_code == 200
        code, _, _, _ = stop(proc)
        assert code == 0
    finally:
        kill(proc)
