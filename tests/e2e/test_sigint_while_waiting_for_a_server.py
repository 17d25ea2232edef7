"""Ctrl-C while a command waits for a server that never answers ends it at once.

A command with an answer (`verify`, `history`, `status`, `migrate`, `erase`, `projections
status`, `subscriptions list`, `monitor --once`) exits 130; the watching `monitor`, a
service, exits 0. Before, a command started with SIGINT ignored (a background job of a
script, `eventstore verify & ... kill -INT $!`) got that disposition back for its run and
ran on until MongoDB's server selection gave up (exit 1, "cannot reach MongoDB"); and
`monitor` waited for its checkpoint request in flight (10 s) before it looked at the
signal: `--once` said "timed out" (exit 1), the watching one logged it, then exited 0.

The server here accepts TCP connections and never says a word: once it has accepted one,
the command is waiting for it (PyMongo's handshake, or the monitor's HTTP answer), and
the signal is sent then. Server selection is given a minute, longer than any wait below:
a command still waiting for it is still running when the test gives up.
"""

from __future__ import annotations

import inspect
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore.cli.monitor import http_fetch
from eventstore.notes import Signer
from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, kill

VERIFIER_KEY = Signer.generate("silent.example").verifier_key()
# The monitor's request timeout: a monitor that waits for it has not acted on the signal.
FETCH_TIMEOUT: float = inspect.signature(http_fetch).parameters["timeout"].default


class SilentServer:
    """A loopback TCP listener that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self._held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def interrupted(
    argv: list[str], silent: SilentServer, tmp_path: Path, *, sigint_ignored: bool
) -> tuple[int, str, float]:
    """`eventstore ARGV`, sent SIGINT once it waits for `silent`: exit code, stderr and how
    long it took to exit after the signal."""
    err_path = tmp_path / "err"

    def ignore_sigint() -> None:  # as a shell starts `eventstore ... &` in a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [*EVENTSTORE, *argv],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            start_new_session=True,  # the signal is the test's alone
            preexec_fn=ignore_sigint if sigint_ignored else None,
        )
    try:
        deadline = time.monotonic() + 30
        while not silent.accepted.wait(0.05):
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, f"never connected: {err_path.read_text()}"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_SECONDS}s after SIGINT: {err_path.read_text()}")
        took = time.monotonic() - sent
    finally:
        kill(proc)
    return code, err_path.read_text(), took


def uri(silent: SilentServer) -> list[str]:
    return ["--uri", f"mongodb://127.0.0.1:{silent.port}/?serverSelectionTimeoutMS=60000"]


COMMANDS = {
    "verify": ["verify"],
    "history": ["history", "orders", "1"],
    "status": ["status"],
    "migrate": ["migrate"],
    "erase": ["erase", "orders", "1", "--reason", "r", "--actor", "a", "--yes"],
    "projections-status": ["projections", "status"],
    "subscriptions-list": ["subscriptions", "list"],
}
IGNORED = [False, True]
IGNORED_IDS = ["sigint-default", "sigint-ignored-at-start"]


@pytest.mark.parametrize("sigint_ignored", IGNORED, ids=IGNORED_IDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_while_a_command_waits_for_mongodb_is_exit_130(
    command: str, sigint_ignored: bool, silent: SilentServer, tmp_path: Path
) -> None:
    argv = [*COMMANDS[command], *uri(silent)]
    code, err, _ = interrupted(argv, silent, tmp_path, sigint_ignored=sigint_ignored)
    assert code == 130, err
    assert "cannot reach MongoDB" not in err
    assert "Traceback" not in err


def monitor(silent: SilentServer, tmp_path: Path, *extra: str) -> list[str]:
    state = str(tmp_path / "state")
    return [
        "monitor",
        f"http://127.0.0.1:{silent.port}",
        "--key",
        VERIFIER_KEY,
        "--state",
        state,
        *extra,
    ]


@pytest.mark.parametrize("sigint_ignored", IGNORED, ids=IGNORED_IDS)
def test_ctrl_c_while_monitor_once_waits_for_its_answer_is_exit_130_at_once(
    sigint_ignored: bool, silent: SilentServer, tmp_path: Path
) -> None:
    argv = monitor(silent, tmp_path, "--once")
    code, err, took = interrupted(argv, silent, tmp_path, sigint_ignored=sigint_ignored)
    assert code == 130, err
    assert "timed out" not in err and "Traceback" not in err
    # Not once the request gave up: well before its timeout, however loaded the machine.
    assert took < FETCH_TIMEOUT / 2, took
    assert not (tmp_path / "state").exists()  # nothing was saved


@pytest.mark.parametrize("sigint_ignored", IGNORED, ids=IGNORED_IDS)
def test_sigint_while_the_watching_monitor_waits_for_its_answer_stops_it_at_once(
    sigint_ignored: bool, silent: SilentServer, tmp_path: Path
) -> None:
    argv = monitor(silent, tmp_path, "--interval", "1")
    code, err, took = interrupted(argv, silent, tmp_path, sigint_ignored=sigint_ignored)
    assert code == 0, err
    assert "timed out" not in err and "Traceback" not in err
    assert took < FETCH_TIMEOUT / 2, took
