"""Running `eventstore` as a user does: a subprocess on a free port, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from eventstore.cli.logs import ACCESS_LOGGER

ROOT = Path(__file__).resolve().parents[2]
# The CLI as `python -m eventstore` (the same `main` as the console script).
EVENTSTORE = [sys.executable, "-m", "eventstore"]
STOP_SECONDS = 15.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without EVENTSTORE_* settings (the test gives its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Spooled(subprocess.Popen[str]):
    """A text subprocess whose error output is spooled to a file, read back by `communicate`.

    A served process writes an access-log line per request to stderr. A pipe nobody reads
    until the end holds 64 KiB (a few hundred requests: the explorer's module alone wrote
    40 KB); past that the process blocks on its next log line and the test hangs.
    Standard output stays a pipe (tests read banners from it; it carries little).
    """

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by communicate)
        kwargs.setdefault("stdout", subprocess.PIPE)
        super().__init__(args, stderr=self._spool, text=True, **kwargs)

    def communicate(
        self, input: str | None = None, timeout: float | None = None
    ) -> tuple[Any, str]:
        out, _ = super().communicate(input, timeout)
        self._spool.seek(0)
        err = self._spool.read()
        self._spool.close()
        return out, err


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`eventstore ARGS` in the project's directory, its output captured."""
    return Spooled([*EVENTSTORE, *args], cwd=ROOT, env=clean_env(**(env or {})))


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


class InProcessServer:
    """An app built and served by uvicorn on its own thread and event loop.

    Its access log is dropped: a module's server outlives each test, and a browser's poll
    landing while pytest has its capture suspended (to print progress) wrote the line into
    the run's output. Tests read what the server did from its answers, never its log.
    """

    def __init__(self, build: Callable[[], Awaitable[Any]]) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self._build = build
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._quiet = _NotFromThread(self._thread)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            app = await self._build()
            port = int(self.base.rsplit(":", 1)[1])
            config = uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws="none"
            )
            self._server = uvicorn.Server(config)
            await self._server.serve()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._failure = exc

    def start(self) -> None:
        logging.getLogger(ACCESS_LOGGER).addFilter(self._quiet)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not (self._server is not None and self._server.started):
            assert self._failure is None, repr(self._failure)
            assert self._thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.05)

    def call(self, work: Callable[[], Coroutine[Any, Any, T]], seconds: float = 20) -> T:
        """Run `work()` on the server's event loop (where its store lives); its result."""
        assert self._loop is not None, "not started"
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(seconds)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=15)
        logging.getLogger(ACCESS_LOGGER).removeFilter(self._quiet)


class _NotFromThread(logging.Filter):
    """Passes every record but those logged on one thread."""

    def __init__(self, thread: threading.Thread) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread.ident


@contextmanager
def serving(build: Callable[[], Awaitable[Any]]) -> Iterator[InProcessServer]:
    """An `InProcessServer` over the app `build()` makes, started, and stopped on leaving."""
    server = InProcessServer(build)
    server.start()
    try:
        yield server
    finally:
        server.stop()
