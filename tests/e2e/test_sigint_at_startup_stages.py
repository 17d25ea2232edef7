"""A stop signal at any moment of a service's start-up stops it: exit 0, no traceback.

Before, a SIGINT in the first second or so of `ingest`, `project`, `subscriptions run`,
`run`, `serve`, `demo` or `monitor` was a KeyboardInterrupt traceback (while the
command line was parsed), exit 130 (while the service was built), or nothing at all
when the process was started with SIGINT ignored (a background job of a script), the
stop signals being handled only once the service had started; SIGTERM killed it.

Each test holds the process at one stage of its start-up (a wrapper around the function
of that stage, installed before `eventstore` runs), sends the signal while it is held,
lets it go on, and waits (bounded) for its end. No timing decides what is tested.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore.notes import Signer
from tests.e2e.processes import ROOT, STOP_SECONDS, clean_env, free_port, kill

# `python -c BOOT ARGS` runs `eventstore ARGS` (as `python -m eventstore` does) with the
# function of one stage wrapped: when called, it prints `paused at STAGE` on stderr and
# waits for the file PAUSE_GO before it goes on.
BOOT = r"""
import importlib, os, runpy, sys, time

STAGE, GO = os.environ["PAUSE_STAGE"], os.environ["PAUSE_GO"]


def pause(name):
    if name == STAGE:
        print(f"paused at {name}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(GO) and time.monotonic() < deadline:
            time.sleep(0.01)


def wrap(module, owner, attr, name, kind="sync"):
    target = importlib.import_module(module)
    if owner:
        target = getattr(target, owner)
    original = getattr(target, attr)
    if kind == "async":
        async def wrapped(*args, **kwargs):
            pause(name)
            return await original(*args, **kwargs)
    elif kind == "classmethod":
        def wrapped(cls, *args, **kwargs):
            pause(name)
            return original(*args, **kwargs)
        wrapped = classmethod(wrapped)
    else:
        def wrapped(*args, **kwargs):
            pause(name)
            return original(*args, **kwargs)
    setattr(target, attr, wrapped)
    if owner is None:  # a module bound the name already (`from ... import build_parser`)
        for loaded in list(sys.modules.values()):
            if getattr(loaded, attr, None) is original:
                setattr(loaded, attr, wrapped)


# Before the commands' modules bind these names (`from ... import open_service`).
wrap("eventstore.cli.parser", None, "build_parser", "parse")
wrap("eventstore.cli.bootstrap", None, "open_service", "open")
wrap("eventstore.cli.bootstrap", None, "build_app", "app")
wrap("eventstore.supervisor", "Supervisor", "start", "start", "async")
wrap("api.server", None, "server", "serve")
wrap("uvicorn.supervisors.multiprocess", "Multiprocess", "__init__", "supervise")
wrap("eventstore.notes", "Verifier", "parse", "verifier", "classmethod")
sys.argv = ["eventstore", *sys.argv[1:]]
runpy.run_module("eventstore", run_name="__main__", alter_sys=True)
"""

VERIFIER_KEY = Signer.generate("startup.example").verifier_key()


def ingest() -> list[str]:
    return ["ingest", "--uri", "memory://", "--source", "simulator", "--orders", "3"]


def project() -> list[str]:
    return ["project", "--uri", "memory://"]


def subscriptions_run() -> list[str]:
    return ["subscriptions", "run", "--uri", "memory://"]


def run() -> list[str]:
    return ["run", "--uri", "memory://", "--source", "simulator", "--port", str(free_port())]


def serve() -> list[str]:
    return ["serve", "--uri", "memory://", "--port", str(free_port())]


def serve_workers() -> list[str]:
    # The parent never connects (each worker would, in its lifespan): no server needed.
    uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"
    return ["serve", "--uri", uri, "--workers", "2", "--port", str(free_port())]


def demo() -> list[str]:
    return ["demo", "--orders", "5", "--port", str(free_port())]


def demo_report() -> list[str]:
    return ["demo", "--report", "--orders", "5", "--changes", "100000"]


def monitor(state: Path) -> list[str]:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens: it warns and watches on
    return ["monitor", url, "--key", VERIFIER_KEY, "--state", str(state / "state")]


Argv = Callable[[Path], list[str]]
SERVICES: dict[str, tuple[Argv, tuple[str, ...]]] = {
    "ingest": (lambda _: ingest(), ("parse", "open", "start")),
    "project": (lambda _: project(), ("parse", "open", "start")),
    "subscriptions-run": (lambda _: subscriptions_run(), ("parse", "open", "start")),
    "run": (lambda _: run(), ("parse", "open", "serve")),
    "serve": (lambda _: serve(), ("parse", "app")),
    "serve-workers": (lambda _: serve_workers(), ("parse", "supervise")),
    "demo": (lambda _: demo(), ("parse", "open", "serve")),
    "demo-report": (lambda _: demo_report(), ("parse", "open")),
    "monitor": (monitor, ("parse", "verifier")),
}
STAGES = [(name, stage) for name, (_, stages) in SERVICES.items() for stage in stages]
# SIGTERM at the stage inside the command (after the command line is read) of each.
INNER_STAGES = [(name, stages[1]) for name, (_, stages) in SERVICES.items()]


def stopped_at(
    stage: str,
    argv: list[str],
    sig: signal.Signals,
    tmp_path: Path,
    *,
    sigint_ignored: bool = False,
) -> tuple[int, str]:
    """`eventstore ARGV` held at `stage`, sent `sig` there, then let go: exit code, stderr."""
    go = tmp_path / "go"
    err_path = tmp_path / "err"
    env = clean_env(PAUSE_STAGE=stage, PAUSE_GO=str(go))

    def ignore_sigint() -> None:  # as a shell starts `eventstore ... &` in a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, *argv],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            start_new_session=True,  # the signal is the test's alone
            preexec_fn=ignore_sigint if sigint_ignored else None,
        )
    try:
        deadline = time.monotonic() + 30
        while f"paused at {stage}" not in err_path.read_text():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, f"never at {stage}: {err_path.read_text()}"
            time.sleep(0.02)
        proc.send_signal(sig)
        go.touch()
        try:
            code = proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_SECONDS}s after {sig.name} at {stage}")
    finally:
        kill(proc)
    return code, err_path.read_text()


@pytest.mark.parametrize(("service", "stage"), STAGES, ids=[f"{n}-{s}" for n, s in STAGES])
def test_sigint_during_start_up_stops_a_service_with_exit_0(
    service: str, stage: str, tmp_path: Path
) -> None:
    argv = SERVICES[service][0](tmp_path)
    code, err = stopped_at(stage, argv, signal.SIGINT, tmp_path)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("service", "stage"), INNER_STAGES, ids=[f"{n}-{s}" for n, s in INNER_STAGES]
)
def test_sigterm_during_start_up_stops_a_service_with_exit_0(
    service: str, stage: str, tmp_path: Path
) -> None:
    argv = SERVICES[service][0](tmp_path)
    code, err = stopped_at(stage, argv, signal.SIGTERM, tmp_path)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("service", ["ingest", "project", "subscriptions-run"])
def test_sigint_during_start_up_stops_a_service_started_with_sigint_ignored(
    service: str, tmp_path: Path
) -> None:
    # A background job of a script starts with SIGINT ignored; the services handle it
    # once running (as `kill -INT` is how such a job is stopped), and now from the start.
    argv = SERVICES[service][0](tmp_path)
    code, err = stopped_at("open", argv, signal.SIGINT, tmp_path, sigint_ignored=True)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "stage"),
    [
        (["verify", "--uri", "memory://"], "parse"),
        (["status", "--uri", "memory://"], "open"),
    ],
    ids=["verify-parse", "status-open"],
)
def test_ctrl_c_during_start_up_of_a_command_with_an_answer_is_130(
    argv: list[str], stage: str, tmp_path: Path
) -> None:
    code, err = stopped_at(stage, argv, signal.SIGINT, tmp_path)
    assert code == 130, err
    assert "Traceback" not in err
