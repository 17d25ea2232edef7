"""The composition root: the service built from settings, and what commands take from it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import EventStoreApp
from eventstore.cli.bootstrap import WorkloadOptions, app_from_env, open_service
from eventstore.cli.common import CliError
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings, SettingsError
from eventstore.sources.memory import MemoryChangeSource
from eventstore.sources.ndjson import NdjsonChangeSource

SIMULATED = Settings(uri="memory://", source="simulator", lease_seconds=1.0)


async def test_a_simulated_service_captures_projects_and_serves_through_its_app() -> None:
    workload = WorkloadOptions(orders=5, changes=20, rate=0, seed=3)
    async with open_service(SIMULATED, capture=True, workload=workload) as service:
        assert isinstance(service.store, MemoryStore)
        assert isinstance(service.source, MemoryChangeSource)
        assert [p.name for p in service.projections] == [
            "order_summary",
            "orders_by_status",
            "revenue_by_day",
            "customer_totals",
        ]
        workers = service.workers()
        app = service.app(workers=workers)
        assert service.running is workers
        async with AsyncTestClient(app) as http:  # the lifespan starts the workers
            for _ in range(200):
                ready = await http.get("/health/ready")
                streams = (await http.get("/v1/streams")).json()
                if ready.status_code == 200 and streams and streams[0]["events"] >= 25:
                    break
                await asyncio.sleep(0.02)
            assert ready.status_code == 200
            # 5 created orders and 20 changes, each one event
            assert streams[0]["stream"] == "orders" and streams[0]["events"] == 25
            assert workers.ingester.lease.held
        assert not workers.ingester.lease.held  # the lifespan stopped them: lease released
        assert (await service.store.events.head()).seq == 25


async def test_a_given_store_is_used_and_left_open(tmp_path: Any) -> None:
    store = MemoryStore()
    path = tmp_path / "changes.ndjson"
    path.write_text("")
    settings = Settings(uri="memory://", source=f"ndjson:{path}")
    async with open_service(settings, store=store, capture=True) as service:
        assert service.store is store
        assert isinstance(service.source, NdjsonChangeSource)
    assert (await store.events.head()).seq == 0  # still usable


async def test_the_mongo_source_on_memory_is_refused_before_anything_runs() -> None:
    with pytest.raises(CliError, match="the mongo source needs a mongodb:// URI"):
        async with open_service(Settings(uri="memory://"), capture=True):
            pass


async def test_a_service_opened_without_capture_has_no_source() -> None:
    async with open_service(Settings(uri="memory://")) as service:
        assert service.wiring is None and service.workload is None
        with pytest.raises(CliError, match="captures nothing"):
            _ = service.source


def test_app_from_env_builds_the_app_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.factory import app_from_env as shim

    monkeypatch.setenv("EVENTSTORE_URI", "memory://")
    monkeypatch.setenv("EVENTSTORE_READ_KEYS", "k1")
    for factory in (app_from_env, shim):
        app = factory()
        assert isinstance(app, EventStoreApp)
        assert app.services.settings.uri == "memory://"
        assert app.services.settings.read_keys == ("k1",)


def test_app_from_env_refuses_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_BATCH_SIZE", "0")
    with pytest.raises(SettingsError, match=r"^EVENTSTORE_BATCH_SIZE must be at least 1, got 0$"):
        app_from_env()


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "eventstore"],
        [sys.executable, "-m", "eventstore.cli"],
        [str(Path(sys.executable).parent / "eventstore")],
    ],
)
def test_every_entry_point_runs_the_cli(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [*command, "verify", "--uri", "memory://", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True
