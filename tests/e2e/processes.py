"""Running `eventstore` as a user does: a subprocess on a free port, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
# The CLI as `python -m eventstore` (the same `main` as the console script).
EVENTSTORE = [sys.executable, "-m", "eventstore"]
STOP_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without EVENTSTORE_* settings (the test gives its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`eventstore ARGS` in the project's directory, its output captured."""
    return subprocess.Popen(
        [*EVENTSTORE, *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`eventstore ARGS --port <free>`, and the base URL it serves."""
    port = free_port()
    return launch(*args, "--port", str(port), env=env), f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str], timeout: float = STOP_SECONDS) -> tuple[int, str, str, float]:
    """SIGTERM, then its exit code, output, error output and how long it took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - started


def kill(proc: subprocess.Popen[str]) -> None:
    """Make sure a process a test started is gone (after a failure)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


def wait_for(predicate: Any, seconds: float = 20.0) -> Any:
    """Poll (bounded) until `predicate()` is truthy; HTTP errors count as not yet."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("not reached in time")
