"""The CLI as a process among others: stopped by a signal, writing into a pipe closed early."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, kill

# -- demo --report: SIGINT/SIGTERM stop the simulation at once -----------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_demo_report_while_it_simulates(sig: signal.Signals, tmp_path: Path) -> None:
    # A million changes take minutes to simulate: it must stop long before.
    err_path = tmp_path / "err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [*EVENTSTORE, "demo", "--report", "--orders", "10", "--changes", "1000000"],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "simulating" not in err_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the simulation
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=STOP_SECONDS)
    finally:
        kill(proc)
    err_text = err_path.read_text()
    assert proc.returncode == 0, err_text  # as `run` and `demo` stop
    assert out == ""  # no summary of a part of the workload
    assert err_text.splitlines()[-1] == "demo: stopped before the report"
    assert "Traceback" not in err_text


# -- a closed pipe: `eventstore status | head -c 5` ------------------------------------------------

EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as `git log | head`


def into_a_closed_pipe(*argv: str, buffered: bool = False) -> subprocess.CompletedProcess[str]:
    """`eventstore ARGV` whose standard output's reader has gone before it writes."""
    env = clean_env()
    if buffered:
        env.pop("PYTHONUNBUFFERED")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [*EVENTSTORE, *argv, "--uri", "memory://"],
            cwd=ROOT,
            env=env,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)


INGEST = ["ingest", "--source", "simulator", "--orders", "2", "--rate", "0", "--until-idle"]


@pytest.mark.parametrize(
    ("argv", "buffered"),
    [
        (["status"], False),
        (["verify"], False),
        (["verify", "--json"], False),
        (["projections", "status"], False),
        (["subscriptions", "list"], False),
        (INGEST, False),
        # As a user's shell runs it (the tests' processes are unbuffered): the answer meets
        # the closed pipe when it is flushed, after the command.
        (["status"], True),
        (["verify", "--json"], True),
    ],
    ids=lambda value: " ".join(value[:2]) if isinstance(value, list) else str(value),
)
def test_output_into_a_closed_pipe_ends_quietly_with_141(argv: list[str], buffered: bool) -> None:
    done = into_a_closed_pipe(*argv, buffered=buffered)
    assert done.returncode == EXIT_OUTPUT_CLOSED, done.stderr
    assert "eventstore: error" not in done.stderr
    assert "Broken pipe" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
