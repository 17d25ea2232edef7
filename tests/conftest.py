"""Shared test settings: hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev|mutation, default dev)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import mongomock.collection
import pytest
from hypothesis import settings

from eventstore import capture
from tests.helpers import fixed_salt

# Modest example counts: the mongo adapters run on mongomock, which scans on every write.
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=25, deadline=None)
# `make mutate` runs the selected tests once per mutant: few, reproducible examples, no
# example database shared between mutants (a mutant's failures must not replay in the next).
settings.register_profile(
    "mutation", max_examples=10, deadline=None, derandomize=True, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# The project root; under `make mutate`, mutmut's copy `mutants/` (with its stats and killers).
_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `make mutate` (the mutation profile): the memory adapters only, fastest tests first.

    The mutated modules are the same under both adapters; the mongo runs of a test
    (mongomock, several times slower) would only double each mutant's time, and a mutant
    only they could kill is reported as surviving, never hidden. mutmut stops a mutant's
    run at its first failure, and runs from its copy `mutants/`, where its stats run
    recorded each test's duration.
    """
    if os.environ.get("HYPOTHESIS_PROFILE") != "mutation":
        return
    mongo = [item for item in items if _adapter(item) == "mongo"]
    if mongo:
        config.hook.pytest_deselected(items=mongo)
        items[:] = [item for item in items if _adapter(item) != "mongo"]
    stats = _ROOT / "mutmut-stats.json"
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text("utf-8"))["duration_by_test"]
    function = _mutated_function()
    killers = _killers_of(function)
    items.sort(key=lambda item: (item.nodeid not in killers, durations.get(item.nodeid, 0.0)))
    if function is not None:
        for item in items:
            _limit_to(item, mutant_time_limit(durations.get(item.nodeid)))


# In a mutant's run, a test fails once it has taken this many times its duration in the
# stats run, and never before this many seconds (fixtures, a first import): a mutant that
# makes a test wait out its own deadline (`until(..., seconds=10)`) or loop is detected in
# seconds, not at the 20 s of `--timeout`. Of the 2,092 tests of the selection, 8 take
# more than 1 s; about a third of a full run's test time was such waits and loops.
MUTANT_TIME_FACTOR = 5.0
MUTANT_TIME_FLOOR = 3.0


def mutant_time_limit(stats_duration: float | None) -> float:
    """Seconds a test may take in a mutant's run, from its duration in the stats run."""
    if stats_duration is None:
        return MUTANT_TIME_FLOOR
    return max(MUTANT_TIME_FLOOR, MUTANT_TIME_FACTOR * stats_duration)


def _limit_to(item: pytest.Item, seconds: float) -> None:
    """pytest-timeout's limit for this test: `seconds`, or its own marker's if shorter."""
    own = item.get_closest_marker("timeout")
    if own is not None and own.args and float(own.args[0]) <= seconds:
        return
    item.add_marker(pytest.mark.timeout(seconds), append=False)


# mutmut's exit code for a mutant that timed out (mutmut.stats.status_by_exit_code).
MUTMUT_TIMEOUT_EXIT = 36


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """In a mutant's run, end the run as a timeout at twice the test's limit.

    pytest-timeout fails a test by raising in it at its limit; a mutated worker whose
    retry loop catches that (asyncio stores it in the task, the supervisor retries) runs
    on, and mutmut would only stop it at 3x the time of all its function's tests + 20 s.
    """
    function = _mutated_function()
    marker = item.get_closest_marker("timeout")
    if function is None or marker is None or not marker.args:
        return (yield)
    watchdog = threading.Timer(2 * float(marker.args[0]), _give_up, (function, item.nodeid))
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


def _give_up(function: str, nodeid: str) -> None:
    """Note the test as its function's killer, then end the mutant's run: timed out."""
    _note_killer(function, nodeid)
    os._exit(MUTMUT_TIMEOUT_EXIT)


def _mutated_function() -> str | None:
    """In a mutmut child, the mutated function (`eventstore.chain.x_seal`); else None."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    return mutant.rsplit("__mutmut_", 1)[0] if "__mutmut_" in mutant else None


def _killers_path(function: str) -> Path:
    return _ROOT / "mutmut-killers" / function


def _killers_of(function: str | None) -> set[str]:
    """The tests that killed earlier mutants of this function (run first: they often kill
    its other mutants too, where the fastest-first order alone may run hundreds before)."""
    if function is None or not _killers_path(function).exists():
        return set()
    return set(_killers_path(function).read_text("utf-8").split())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In a mutmut child, remember the test that killed the mutant (see `_killers_of`)."""
    function = _mutated_function()
    if function is None or not report.failed:
        return
    _note_killer(function, report.nodeid)


def _note_killer(function: str, nodeid: str) -> None:
    path = _killers_path(function)
    path.parent.mkdir(exist_ok=True)
    with path.open("a", encoding="utf-8") as killers:  # one short line: an atomic append
        killers.write(nodeid + "\n")


# In a mutmut child (one mutant's run, MUTANT_UNDER_TEST set): the test functions asked for,
# by module path; None for a module asked for whole. Filled in `pytest_configure`.
_ASKED: dict[str, set[str] | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """In a mutmut child, note which tests it was given (see `pytest_pycollect_makeitem`)."""
    _ASKED.clear()
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for arg in config.args:
        path, _, rest = arg.partition("::")
        name = rest.split("::")[0].split("[")[0]
        if not name or _ASKED.get(path, set()) is None:
            _ASKED[path] = None
        else:
            _ASKED.setdefault(path, set()).add(name)  # type: ignore[union-attr]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> list[pytest.Item] | None:
    """In a mutmut child, build no items for the tests of a module it was not given.

    mutmut names a mutant's tests one by one; pytest would still build every item of
    their modules (each parameter of each test) and then drop the others: about half a
    second of each mutant's run. The given tests are collected as usual.
    """
    if not _ASKED or not isinstance(collector, pytest.Module):
        return None
    asked = _ASKED.get(collector.path.relative_to(collector.config.rootpath).as_posix())
    if asked is None or name in asked:
        return None
    return []


def _adapter(item: pytest.Item) -> object:
    """The adapter a test runs on (its `store` fixture's or `kind` parameter), if any."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get("store", callspec.params.get("kind"))


def _accept_sort(method: Any) -> Any:
    """mongomock's bulk builder predates PyMongo 4.11's `sort` keyword (mongomock #912)."""

    def patched(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort:
            raise NotImplementedError("mongomock test patch: a non-empty sort is not supported")
        return method(self, *args, **kwargs)

    return patched


# Test-side compatibility patch (TEST_DOUBLES.md): the production bulk_write path runs unchanged.
_builder: Any = mongomock.collection.BulkOperationBuilder
if not getattr(_builder, "_accepts_sort", False):
    _builder.add_replace = _accept_sort(_builder.add_replace)
    _builder.add_update = _accept_sort(_builder.add_update)
    _builder._accepts_sort = True


@pytest.fixture(autouse=True)
def deterministic_salts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event's salt derived from its id, so two runs of one workload match byte for byte.

    Production salts come from the OS's CSPRNG (`capture.os_salt`, tested on its own
    in tests/unit/test_salts.py); only where they come from is swapped here.
    """
    monkeypatch.setattr(capture, "salt_source", fixed_salt)
