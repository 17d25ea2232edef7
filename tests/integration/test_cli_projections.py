"""project / projections status / projections rebuild, in-process on a pre-populated memory store."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from eventstore.cli import main
from tests.integration.test_cli_history import populated


def run(store: object, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, "--uri", "memory://"], out=out, store=store), out.getvalue()


def test_status_of_named_projections_shows_those_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = populated()
    code, out = run(store, "projections", "status", "revenue_by_day", "order_summary", "--json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["revenue_by_day", "order_summary"]
    code, out = run(store, "projections", "status", "nope")
    assert code == 1 and out == ""
    assert "unknown projection nope" in capsys.readouterr().err


def test_project_status_and_rebuild(capsys: pytest.CaptureFixture[str]) -> None:
    store = populated()
    code, out = run(store, "projections", "status", "--json")
    assert code == 0 and {r["name"]: r["lag"] for r in json.loads(out)} == {
        "order_summary": 4,
        "orders_by_status": 4,
        "revenue_by_day": 4,
        "customer_totals": 4,
    }
    code, out = run(store, "project", "--until-caught-up")
    assert code == 0 and "order_summary: position 4" in out
    code, out = run(store, "projections", "status", "--json")
    assert all(r["lag"] == 0 and r["state"] == "stopped" for r in json.loads(out))
    code, out = run(store, "projections", "rebuild", "orders_by_status")
    err = capsys.readouterr().err
    assert code == 0 and "orders_by_status: rebuilt from 4 events" in out
    assert "[##############################] 4/4 events" in err
    code, out = run(store, "projections", "status", "--json")
    rebuilt = {r["name"]: r["rebuilt_at"] for r in json.loads(out)}
    # rebuilt here and handed back: nobody follows it until a projector takes the lease
    assert {r["name"]: r["state"] for r in json.loads(out)}["orders_by_status"] == "stopped"
    assert rebuilt["orders_by_status"] is not None and rebuilt["orders_by_status"].endswith("Z")
    assert rebuilt["order_summary"] is None
    rows = store.read_models._tables["rm_orders_by_status"]
    assert {k: r["count"] for k, r in rows.items()} == {"pending": 1, "shipped": 1, "paid": 0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["projections", "rebuild"], "--all"),
        (["projections", "rebuild", "nope"], "unknown projection"),
        (["projections", "rebuild", "order_summary", "--all"], "or --all, not both"),
    ],
)
def test_bad_projection_requests_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(populated(), *argv)
    assert code == 1 and message in capsys.readouterr().err


# -- gc.freeze belongs to the rebuild command, never to the library ------------------------------


def test_the_library_rebuild_leaves_the_garbage_collector_alone() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    callers = []
    for package in ("eventstore", "api", "projections", "migrations"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef):
                    continue
                for node in ast.walk(function):
                    if (
                        isinstance(node, ast.Attribute)
                        and node.attr in ("freeze", "unfreeze")
                        and isinstance(node.value, ast.Name)
                        and node.value.id == "gc"
                    ):
                        callers.append(f"{path.relative_to(root).as_posix()}:{function.name}")
    # The commands' context manager, and the start of a forked rebuild worker process (a
    # process of its own: nothing else shares it).
    assert sorted(set(callers)) == [
        "eventstore/cli/common.py:frozen_gc",
        "projections/partitioned.py:_forked",
    ]


def test_a_runner_rebuild_freezes_nothing() -> None:
    import gc

    from eventstore.clock import SystemClock
    from projections.orders import ORDER_SUMMARY
    from projections.runner import ProjectionRunner, RebuildProgress

    store = populated()
    frozen_during: list[int] = []

    def record(_: RebuildProgress) -> None:
        frozen_during.append(gc.get_freeze_count())

    before = gc.get_freeze_count()
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=SystemClock(), batch_size=5)
    progress = asyncio.run(runner.rebuild_now(record))
    assert progress.processed > 0 and frozen_during
    assert set(frozen_during) == {before}


def test_a_partitioned_rebuild_freezes_only_its_worker_processes() -> None:
    import gc

    from eventstore.clock import SystemClock
    from projections.orders import ORDER_SUMMARY
    from projections.partitioned import can_fork
    from projections.runner import ProjectionRunner

    assert can_fork()  # Linux: the partitions run in forked processes
    store = populated()
    before = gc.get_freeze_count()

    async def rebuild() -> int:
        runner = ProjectionRunner(store, ORDER_SUMMARY, clock=SystemClock(), batch_size=5)
        assert await runner.lease.try_acquire()
        progress = await runner.rebuild(workers=2)
        await runner.hand_back()
        return progress.processed

    assert asyncio.run(rebuild()) > 0
    assert gc.get_freeze_count() == before


def test_a_forked_rebuild_worker_folds_with_the_heap_it_inherited_frozen() -> None:
    import gc

    from projections import Change, Projection, Write
    from projections.partitioned import LocalFolds, split

    # Each row says how many objects the collector left out where the partition was folded.
    def keys(change: Change) -> list[str]:
        return ["frozen"]

    def apply(rows: Any, change: Change) -> list[Write]:
        return [Write(key="frozen", row={"count": gc.get_freeze_count()})]

    probe = Projection(name="probe", collection="rm_probe", keys=keys, apply=apply)
    store = populated()
    events = asyncio.run(store.events.read(after_seq=0, limit=10_000))

    async def fold(processes: bool) -> Any:
        folds = LocalFolds(probe, split(events, 2), 2, processes=processes)
        try:
            return await folds.submit(0)
        finally:
            folds.close()

    assert asyncio.run(fold(True))["frozen"]["count"] > 0  # in the forked worker
    assert asyncio.run(fold(False))["frozen"]["count"] == gc.get_freeze_count() == 0


def test_the_rebuild_command_freezes_while_it_rebuilds_and_unfreezes_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from projections import runner as runner_module

    store = populated()
    seen: list[int] = []
    real = runner_module.ProjectionRunner.rebuild

    async def spying(self: Any, on_progress: Any = None) -> Any:
        seen.append(gc.get_freeze_count())
        return await real(self, on_progress)

    monkeypatch.setattr(runner_module.ProjectionRunner, "rebuild", spying)
    before = gc.get_freeze_count()
    code, out = run(store, "projections", "rebuild", "order_summary")
    assert code == 0 and "order_summary: rebuilt from 4 events" in out
    assert len(seen) == 1 and seen[0] > before
    assert gc.get_freeze_count() == before
