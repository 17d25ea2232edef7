"""The helpers that run `eventstore` in a subprocess must never be what makes a test hang."""

from __future__ import annotations

import sys
import time

from tests.e2e.processes import Spooled

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
