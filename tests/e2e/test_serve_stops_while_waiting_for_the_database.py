"""`serve` stops at once on SIGTERM/SIGINT while its start-up waits for a silent database.

The app's start-up waits up to SERVER_TIMEOUT_MS for the database (then serves 503s and
keeps trying); a stop asked meanwhile was honoured only once that wait was over (the
probe's F10: still alive 15 s after SIGTERM with a 60 s timeout). The database here is a
socket that accepts connections and never answers.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.processes import kill, launch

# Far beyond the test: only a stop that does not wait for the database passes.
SERVER_TIMEOUT_MS = "30000"


@pytest.fixture
def silent_database() -> Iterator[tuple[int, threading.Event]]:
    """A port that accepts connections and never answers; the event is set at the first one."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    reached = threading.Event()
    done = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            reached.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], reached
    finally:
        done.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_at_once_while_its_start_up_waits_for_the_database(
    silent_database: tuple[int, threading.Event], sig: signal.Signals
) -> None:
    port, reached = silent_database
    proc = launch(
        "serve",
        "--uri",
        f"mongodb://127.0.0.1:{port}/",
        "--port",
        "0",
        env={"EVENTSTORE_SERVER_TIMEOUT_MS": SERVER_TIMEOUT_MS},
    )
    try:
        assert reached.wait(20), "serve never tried to reach the database"
        time.sleep(0.3)  # the start-up is waiting for the server's answer now
        started = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=8)
        took = time.monotonic() - started
    finally:
        kill(proc)
    assert proc.returncode == 0, err
    assert took < 3, took
    assert "Traceback" not in err
    assert "Waiting for application startup." in err
