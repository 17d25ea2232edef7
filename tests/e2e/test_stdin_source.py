"""Changes piped to standard input are captured as they arrive, and a signal stops the reader.

`eventstore run --source ndjson:-` fed by a writer that keeps the pipe open (a change
stream piped from elsewhere): each line is recorded without waiting for more lines or
the pipe's end, and SIGTERM (or SIGINT) stops the process at once, with exit 0, though
its reader is blocked on the open pipe. Before, lines waited for a chunk of 512 (or the
end), and the process could not exit until the writer closed the pipe.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, free_port, wait_for
from tests.integration.test_ingester_bad_input import line


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGINT]],
    ids=["SIGTERM", "SIGINT", "SIGINT-twice"],
)
def test_piped_changes_are_captured_as_they_come_and_a_signal_ends_the_run(
    tmp_path: Path, signals: list[signal.Signals]
) -> None:
    # Ctrl-C twice (an impatient user) stops it as once does: the shutdown is bounded
    # already, and forcing it cancelled the app's lifespan with an ERROR traceback.
    port = free_port()
    log_path = tmp_path / "run.log"
    args = ["run", "--uri", "memory://", "--source", "ndjson:-"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*EVENTSTORE, *args],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the signal is the test's alone
        )
        assert proc.stdin is not None
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

                def recorded(count: int) -> bool:
                    try:
                        r = http.get("/v1/verify")
                    except httpx.TransportError:
                        return False
                    return r.status_code == 200 and r.json()["events_checked"] == count

                for n in (1, 2, 3):  # one line at a time, the pipe kept open
                    proc.stdin.write(line(n) + "\n")
                    proc.stdin.flush()
                    wait_for(lambda n=n: recorded(n), seconds=15)
            started = time.monotonic()
            for n, sig in enumerate(signals):
                if n:
                    time.sleep(0.05)
                proc.send_signal(sig)
            code = proc.wait(timeout=STOP_SECONDS)
            assert time.monotonic() - started < STOP_SECONDS
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            proc.stdin.close()
    assert code == 0
    assert "Traceback" not in log_path.read_text()
