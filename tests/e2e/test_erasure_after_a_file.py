"""An erasure asked of `eventstore run` over a file, after the file has ended, is carried out.

Erasure is capture's work (the lease holder's, between batches). Over a file, capture
used to end with the file, and a request made after stayed `queued` for ever while the
data it named was still served. The service's capture now lingers once its source ends,
carrying out requests until the process is stopped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, free_port, wait_for
from tests.integration.test_ingester_bad_input import line

ADMIN = {"Authorization": "Bearer adm", "Eventstore-Actor": "dpo"}


def test_an_erasure_asked_after_the_file_ended_is_carried_out(tmp_path: Path) -> None:
    changes = tmp_path / "changes.ndjson"
    changes.write_text("\n".join(line(n) for n in range(1, 11)) + "\n", encoding="utf-8")
    port = free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        args = ["run", "--uri", "memory://", "--source", f"ndjson:{changes}"]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            [*EVENTSTORE, *args],
            cwd=ROOT,
            env=clean_env(EVENTSTORE_ADMIN_KEY="adm"),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

                def read_all() -> bool:
                    r = http.get("/v1/verify")
                    return r.status_code == 200 and r.json()["events_checked"] == 10

                wait_for(read_all, seconds=30)
                state = http.get("/v1/streams/orders/entities/3/state").json()
                assert state["document"] == {"_id": 3, "status": "paid", "updatedBy": "alice"}
                r = http.post(
                    "/v1/admin/erasures",
                    headers=ADMIN,
                    json={"stream": "orders", "entity_key": "3", "reason": "art. 17"},
                )
                assert r.status_code == 202, r.text
                request = r.json()["request"]

                def done() -> bool:
                    got = http.get(f"/v1/admin/requests/{request}", headers=ADMIN).json()
                    return bool(got["state"] == "done")

                wait_for(done, seconds=15)
                got = http.get(f"/v1/admin/requests/{request}", headers=ADMIN).json()
                assert (got["seq"], got["events_erased"]) == (11, 2)
                state = http.get("/v1/streams/orders/entities/3/state").json()
                assert state["erased"] is True and state["document"] is None
                verdict = http.get("/v1/verify").json()
                assert verdict["valid"] is True and verdict["events_erased"] == 2
        finally:
            if proc.poll() is None:
                proc.terminate()
            code = proc.wait(timeout=STOP_SECONDS)
    assert code == 0
    text = log_path.read_text()
    assert "the source ended: capture carries out erasure requests until stopped" in text
    assert "Traceback" not in text
