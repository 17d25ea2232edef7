"""Every command in the README that can run without MongoDB is run here, as written.

The README's `sh` blocks are read from the file itself. A block whose first line
is `# needs a MongoDB …` is marked as needing a real server and is not run (the
test checks the marker is there). In the others:
- `curl` lines run as one bash script against `eventstore demo` on a free port
  (`localhost:8000` rewritten), with `curl -f`, so any HTTP error fails the test;
- `eventstore run|demo` lines start a server, wait for readiness, stop it with SIGTERM (exit 0);
- other `eventstore` lines run to completion (exit 0) in a directory holding the
  files they name;
- `make` lines name targets the Makefile has (`make test` is CI itself; `make
  demo` runs `eventstore demo`, walked in tests/e2e/test_demo.py).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import EVENTSTORE, ROOT, clean_env, kill, start, stop, wait_for
from tests.integration.test_cli_capture import write_ndjson

README = ROOT / "README.md"
NEEDS_MONGO = "# needs a MongoDB"


def blocks() -> list[list[str]]:
    text = README.read_text()
    return [b.strip("\n").splitlines() for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def runnable() -> list[list[str]]:
    return [b for b in blocks() if not (b and b[0].startswith(NEEDS_MONGO))]


def commands(prefix: str) -> list[str]:
    out = []
    for block in runnable():
        for line in block:
            if line.startswith(prefix):
                out.append(line.split("  #")[0].strip())
    return out


def test_blocks_that_need_a_real_server_are_marked() -> None:
    for block in blocks():
        if any(line.startswith("eventstore migrate") for line in block):
            assert block[0].startswith(NEEDS_MONGO), block
        if any("mongod " in line or "mongosh" in line for line in block):
            assert block[0].startswith(NEEDS_MONGO), block


def test_make_lines_name_makefile_targets() -> None:
    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M))
    lines = commands("make ")
    assert lines
    for line in lines:
        assert line.split()[1] in targets, line
    assert "$(BIN)/eventstore demo" in (ROOT / "Makefile").read_text()


def test_one_shot_commands_run_as_written(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "changes.ndjson")
    lines = [
        line
        for line in commands("eventstore ")
        if not line.startswith(("eventstore run", "eventstore demo", "eventstore serve"))
    ]
    assert lines
    for line in lines:
        argv = shlex.split(line)
        done = subprocess.run(
            [*EVENTSTORE, *argv[1:]],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (line, done.stderr[-2000:])


def test_server_commands_serve_and_stop_cleanly(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "changes.ndjson")
    lines = [line for line in commands("eventstore ") if line.startswith("eventstore run")]
    assert lines
    for line in lines:
        argv = [a for a in shlex.split(line)[1:]]
        if "--port" in argv:  # `start` adds a free port
            i = argv.index("--port")
            del argv[i : i + 2]
        argv = [a.replace("changes.ndjson", str(tmp_path / "changes.ndjson")) for a in argv]
        proc, base = start(*argv)
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                wait_for(lambda: http.get("/health/ready").status_code == 200)
                assert http.get("/v1/streams").json()[0]["events"] > 0
            code, _, err, _ = stop(proc)
            assert code == 0, err[-2000:]
        finally:
            kill(proc)


@pytest.mark.skipif(
    shutil.which("curl") is None and not os.environ.get("CI"),
    reason="curl is not installed (.ci/run installs it)",
)
def test_the_curl_examples_work_against_the_demo(tmp_path: Path) -> None:
    lines = [
        line
        for block in runnable()
        if any(line.startswith("curl ") for line in block)
        for line in block
        if not line.startswith("#")
    ]
    assert len([line for line in lines if line.startswith("curl ")]) >= 10
    admin = "readme-admin-key"
    proc, base = start("demo", "--orders", "20", "--rate", "0", env={"EVENTSTORE_ADMIN_KEY": admin})
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_for(lambda: http.get("/health/ready").status_code == 200)
            wait_for(lambda: http.get("/v1/streams").json()[0]["entities"] == 20)
        port = base.rsplit(":", 1)[1]
        script = "\n".join(
            ["set -euo pipefail", 'curl() { command curl --fail --max-time 20 "$@"; }']
            + [line.replace("localhost:8000", f"localhost:{port}") for line in lines]
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={**os.environ, "EVENTSTORE_ADMIN_KEY": admin},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
        assert (tmp_path / "events.csv").read_text().startswith("seq,occurred_at,stream")
        assert "eventstore_events_total" in done.stdout
    finally:
        code, _, err, _ = stop(proc)
        assert code == 0, err[-2000:]
