"""The console script exits without freeing the heap object by object, and loses nothing.

An outside tester found `eventstore run` over a large memory:// log taking 6-30 s to exit
after SIGTERM, busy and silent after "Finished server process": the interpreter freed the
log's objects one by one. `console` ends the process once `main` has returned, after the
exit handlers and the standard streams' flush.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys
from pathlib import Path
marker = sys.argv[1]
atexit.register(lambda: Path(marker).write_text("exit handlers ran"))
sys.argv = ["eventstore", *sys.argv[2:]]
print("before", end=" ")  # buffered: flushed by console, not by the interpreter's exit
from eventstore.cli import console
console()
"""


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "marker"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_answer_the_exit_handlers_and_the_code_survive_the_quick_exit(
    tmp_path: Path,
) -> None:
    done = run(tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, "before eventstore 0.1.0\n")
    assert (tmp_path / "marker").read_text() == "exit handlers ran"


def test_an_error_keeps_its_exit_code_and_its_one_line(tmp_path: Path) -> None:
    done = run(tmp_path, "state", "orders", "x", "--version", "0", "--uri", "memory://")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("eventstore: error: ")
    assert (tmp_path / "marker").read_text() == "exit handlers ran"


def test_python_dash_m_runs_the_same_console(tmp_path: Path) -> None:
    for module in ("eventstore", "eventstore.cli"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout) == (0, "eventstore 0.1.0\n"), module
