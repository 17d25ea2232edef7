"""`run` and `serve` own their process: what start-up made is frozen out of the collector.

A full collection pass over the start-up heap (modules, the app) stalled every
delivery and request for 30-130 ms; freezing it before serving removed the whole
webhook p99 of `bench_subscription_e2e`. Library code never freezes (see
test_cli_projections), and the commands unfreeze when they end.
"""

from __future__ import annotations

import gc
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore
from tests.realsinks import free_port


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """`serve` configures logging (uvicorn's dictConfig) with handlers on this test's
    captured stderr: put every logger back, or a later test in the same process (mutmut
    runs them all in one) logs to a closed stream."""
    loggers = [logging.root] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    kept = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers}
    yield
    for lg in [logging.root, *logging.root.manager.loggerDict.values()]:
        if isinstance(lg, logging.Logger):
            handlers, level, propagate, disabled = kept.get(lg, ([], logging.NOTSET, True, False))
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


class ServedOnce:
    """A stand-in for uvicorn's server: records the freeze count while it "serves"."""

    started = True

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    async def serve(self, sockets: Any = None) -> None:
        self.seen.append(gc.get_freeze_count())


@pytest.mark.parametrize("command", ["run", "serve"])
def test_the_command_serves_with_start_up_frozen_and_unfreezes_after(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    monkeypatch.setattr("api.server.server", lambda *a, **k: ServedOnce(seen))
    monkeypatch.setattr("api.server.GracefulServer", lambda *a, **k: ServedOnce(seen))
    gc.unfreeze()
    argv = [command, "--uri", "memory://", "--port", str(free_port())]
    if command == "run":
        argv += ["--source", "simulator"]

    code = main(argv, out=io.StringIO(), store=MemoryStore())

    assert code == 0
    assert len(seen) == 1 and seen[0] > 1000  # the modules, classes and app made at start-up
    assert gc.get_freeze_count() == 0
