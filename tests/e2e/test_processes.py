"""The helpers that run `eventstore` in a subprocess must never be what makes a test hang."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import httpx
import pytest

from api.app import create_app
from eventstore.cli.logs import ACCESS_LOGGER, configure_logging
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from tests.e2e.processes import Spooled, serving

# 256 KiB on stderr: four times what a pipe holds, about 1,500 access-log lines.
NOISY = "import sys; sys.stderr.write('x' * 262144); sys.stderr.flush(); print('through')"


def test_a_spooled_process_never_blocks_on_its_error_output_while_nobody_reads_it() -> None:
    proc = Spooled([sys.executable, "-c", NOISY])
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:  # nobody reads meanwhile
        time.sleep(0.05)
    assert proc.poll() == 0, "the process blocked writing its error output"
    out, err = proc.communicate(timeout=5)
    assert out == "through\n"
    assert err == "x" * 262144


def test_an_in_process_server_s_access_log_never_reaches_the_run_s_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()  # as `eventstore run` does: access lines to stderr

    async def build() -> Any:
        return create_app(Settings(uri="memory://"), store=MemoryStore())

    with serving(build) as server:
        assert httpx.get(f"{server.base}/health/live").status_code == 200
        logging.getLogger(ACCESS_LOGGER).info('{"from": "this thread"}')
    err = capsys.readouterr().err
    assert '"path": "/health/live"' not in err  # the server's own line is dropped
    assert '{"from": "this thread"}' in err  # every other thread's still goes out
