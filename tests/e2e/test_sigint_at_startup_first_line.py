"""A stop signal as soon as a service can take one, and right after its first line: exit 0.

The earliest moment is when the process handles SIGTERM (Python leaves it to the
system until `main` installs its stop signals, first thing): read from the kernel's
view of the process (`/proc/PID/status`, Linux). The first line is whatever it writes
first (a log line on stderr, a banner on stdout). test_sigint_at_startup_stages.py holds
the process at each stage of its start-up in between.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, kill
from tests.e2e.test_sigint_at_startup_stages import (
    demo,
    demo_report,
    ingest,
    monitor,
    project,
    run,
    serve,
    serve_workers,
    subscriptions_run,
)


def ingest_until_idle() -> list[str]:
    """20,000 orders written, then captured, then the end: stopped in the middle of it."""
    workload = ["--source", "simulator", "--orders", "20000", "--rate", "0"]
    return ["ingest", "--uri", "memory://", *workload, "--until-idle"]


SERVICES: dict[str, Callable[[Path], list[str]]] = {
    "ingest": lambda _: ingest(),
    "ingest-until-idle": lambda _: ingest_until_idle(),
    "project": lambda _: project(),
    "subscriptions-run": lambda _: subscriptions_run(),
    "run": lambda _: run(),
    "serve": lambda _: serve(),
    "serve-workers": lambda _: serve_workers(),
    "demo": lambda _: demo(),
    "demo-report": lambda _: demo_report(),
    "monitor": monitor,
}
PROC_STATUS = Path("/proc/self/status")


def handles(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler of its own for `sig` (its SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def first_line_written(log: Path) -> bool:
    return "\n" in log.read_text()


def signalled(
    argv: list[str], ready: Callable[[int, Path], bool], sig: signal.Signals, tmp_path: Path
) -> tuple[int, str]:
    """`eventstore ARGV`, sent `sig` once `ready(pid, log)`: its exit code and output."""
    log_path = tmp_path / "log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*EVENTSTORE, *argv],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the signal is the test's alone
        )
    try:
        deadline = time.monotonic() + 30
        while not ready(proc.pid, log_path):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"never ready: {log_path.read_text()}"
            time.sleep(0.005)
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_SECONDS}s after {sig.name}: {log_path.read_text()}")
    finally:
        kill(proc)
    return code, log_path.read_text()


@pytest.mark.skipif(not PROC_STATUS.exists(), reason="reads /proc/PID/status (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("service", list(SERVICES))
def test_a_signal_as_soon_as_the_process_handles_one_stops_it_with_exit_0(
    service: str, sig: signal.Signals, tmp_path: Path
) -> None:
    def handling(pid: int, log: Path) -> bool:
        return handles(pid, signal.SIGTERM)

    code, output = signalled(SERVICES[service](tmp_path), handling, sig, tmp_path)
    assert code == 0, output
    assert "Traceback" not in output


@pytest.mark.parametrize("service", list(SERVICES))
def test_sigint_right_after_the_first_line_stops_a_service_with_exit_0(
    service: str, tmp_path: Path
) -> None:
    def printed(pid: int, log: Path) -> bool:
        return first_line_written(log)

    code, output = signalled(SERVICES[service](tmp_path), printed, signal.SIGINT, tmp_path)
    assert code == 0, output
    assert "Traceback" not in output
