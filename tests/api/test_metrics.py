"""api.metrics: the figures a process counts, merged across processes; the store's, once.

Two worker processes are imitated in one: prometheus_client's multiprocess values
take the process identity from a function, so two `Metrics` built under identities
101 and 102 write two sets of files, as two uvicorn workers do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import (
    MULTIPROC_ENV,
    WORKER_STATES,
    LogFigures,
    Metrics,
    ProjectionFigures,
    clean_shared_dir,
    multiprocess_values,
    process_ended,
    shared_dir,
)
from eventstore.cli.bootstrap import open_service
from tests.api.conftest import settings as api_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REQUESTS = "eventstore_http_requests_total"
FIGURES = LogFigures(
    head_seq=7,
    ingest_lag_seconds=1.5,
    last_checkpoint=datetime(2026, 1, 2, tzinfo=UTC),
    projections=[ProjectionFigures("order_summary", 5, 2, "running")],
)


def scrape(metrics: Metrics, figures: LogFigures | None = None, *, up: bool = True) -> Samples:
    """The exposition, parsed by prometheus_client's own parser (so: valid text)."""
    return parse(metrics.exposition(figures, up=up).decode())


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page, each once."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def get(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def names(found: Samples) -> set[str]:
    return {name for name, _ in found}


# -- one process ---------------------------------------------------------------------------
def test_one_process_counts_requests_and_latency_in_its_own_registry() -> None:
    metrics, other = Metrics(), Metrics()
    assert metrics.multiprocess_dir is None
    for seconds in (0.001, 0.02, 3.0):
        metrics.started()
        metrics.observe("GET", "/v1/events", 200, seconds)
    metrics.started()
    metrics.observe("GET", "/v1/events", 400, 0.001)
    other.started()
    other.observe("GET", "/v1/events", 200, 0.001)  # another app: not counted here
    found = scrape(metrics)
    assert get(found, REQUESTS, method="GET", route="/v1/events", status="200") == 3
    assert get(found, REQUESTS, method="GET", route="/v1/events", status="400") == 1
    hist = "eventstore_http_request_duration_seconds"
    assert get(found, f"{hist}_count", method="GET", route="/v1/events") == 4
    assert get(found, f"{hist}_bucket", method="GET", route="/v1/events", le="0.025") == 3
    assert get(found, f"{hist}_bucket", method="GET", route="/v1/events", le="+Inf") == 4
    assert get(found, f"{hist}_sum", method="GET", route="/v1/events") == pytest.approx(3.022)
    assert get(found, "eventstore_http_requests_in_flight") == 0
    # the same series whatever the mode: no `_created` (multiprocess mode has none)
    assert not any(name.endswith("_created") for name in names(found))


def test_the_store_figures_and_up() -> None:
    found = scrape(Metrics(), FIGURES)
    assert get(found, "eventstore_events_total") == 7
    assert get(found, "eventstore_ingest_lag_seconds") == 1.5
    assert get(found, "eventstore_ingest_checkpoint_timestamp_seconds") == pytest.approx(
        datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    )
    assert get(found, "eventstore_projection_position", projection="order_summary") == 5
    assert get(found, "eventstore_projection_lag_events", projection="order_summary") == 2
    state = "eventstore_projection_state"
    assert get(found, state, projection="order_summary", state="running") == 1
    for other in ("rebuilding", "stopped", "failed"):
        assert get(found, state, projection="order_summary", state=other) == 0
    assert get(found, "eventstore_up") == 1
    # no database: only `up`, at 0
    bare = scrape(Metrics(), None, up=False)
    assert get(bare, "eventstore_up") == 0
    assert "eventstore_events_total" not in names(bare)
    never = LogFigures(head_seq=0, ingest_lag_seconds=None, last_checkpoint=None)
    assert "eventstore_ingest_lag_seconds" not in names(scrape(Metrics(), never))


def test_worker_state_restarts_and_capture_lag() -> None:
    metrics = Metrics()
    metrics.worker_state("ingester:shop", "retrying")
    metrics.worker_state("ingester:shop", "running")
    metrics.worker_restarted("ingester:shop")
    metrics.worker_restarted("ingester:shop")
    metrics.capture_lag("ingester:shop", 2.5)
    found = scrape(metrics)
    for state in WORKER_STATES:
        expected = 1 if state == "running" else 0
        assert (
            get(found, "eventstore_worker_state", worker="ingester:shop", state=state) == expected
        )
    assert get(found, "eventstore_worker_restarts_total", worker="ingester:shop") == 2
    assert get(found, "eventstore_capture_lag_seconds", worker="ingester:shop") == 2.5
    metrics.capture_lag("ingester:shop", -0.2)  # clocks apart: never a negative lag
    assert get(scrape(metrics), "eventstore_capture_lag_seconds", worker="ingester:shop") == 0
    with pytest.raises(ValueError, match="unknown worker state 'following'"):
        metrics.worker_state("ingester:shop", "following")


def test_a_directory_set_after_prometheus_client_decided_keeps_values_in_this_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert not multiprocess_values()
    metrics = Metrics()
    assert metrics.multiprocess_dir is None
    metrics.started()
    metrics.observe("GET", "/health/live", 200, 0.001)
    assert get(scrape(metrics), REQUESTS, method="GET", route="/health/live", status="200") == 1
    assert list(tmp_path.iterdir()) == []


# -- several processes ---------------------------------------------------------------------
@pytest.fixture
def as_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[int], Metrics]]:
    """`as_process(pid)`: from now on this is process `pid`; its Metrics (made on first use).

    prometheus_client asks the identity on every write and, when it changed (a fork),
    re-reads every value from the new identity's files: each identity then counts in
    its own files, as separate processes do.
    """
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    current = {"pid": 0}
    value_class = values.MultiProcessValue(process_identifier=lambda: current["pid"])  # type: ignore[no-untyped-call]
    monkeypatch.setattr(values, "ValueClass", value_class)
    made: dict[int, Metrics] = {}

    def become(pid: int) -> Metrics:
        current["pid"] = pid
        if pid not in made:
            made[pid] = Metrics()
        return made[pid]

    try:
        yield become
    finally:
        value_class.close_all_files()


def test_every_process_reports_the_totals_of_all(
    as_process: Callable[[int], Metrics], tmp_path: Path
) -> None:
    assert as_process(101).multiprocess_dir == as_process(102).multiprocess_dir == str(tmp_path)
    for _ in range(3):
        as_process(101).started()
        as_process(101).observe("GET", "/health/live", 200, 0.001)
    for _ in range(2):
        as_process(102).started()
        as_process(102).observe("GET", "/health/live", 200, 0.2)
    as_process(102).started()  # one request still being answered by 102
    as_process(101).observe("GET", "/v1/streams", 200, 0.001)  # 101 after 102 again
    for pid in (101, 102):
        found = scrape(as_process(pid), FIGURES)
        assert get(found, REQUESTS, method="GET", route="/health/live", status="200") == 5
        hist = "eventstore_http_request_duration_seconds"
        assert get(found, f"{hist}_count", method="GET", route="/health/live") == 5
        assert get(found, f"{hist}_bucket", method="GET", route="/health/live", le="0.005") == 3
        assert get(found, REQUESTS, method="GET", route="/v1/streams", status="200") == 1
        assert get(found, "eventstore_http_requests_in_flight") == 0  # 101: -1, 102: +1
        # read from the store by the scraping process only: once, never 2 × 7
        assert get(found, "eventstore_events_total") == 7
        assert get(found, "eventstore_up") == 1
        assert not any(name.endswith("_created") for name in names(found))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_101.db",
        "counter_102.db",
        "gauge_livesum_101.db",
        "gauge_livesum_102.db",
        "histogram_101.db",
        "histogram_102.db",
    ]


def test_an_ended_process_keeps_its_counts_and_loses_its_live_gauges(
    as_process: Callable[[int], Metrics], tmp_path: Path
) -> None:
    as_process(101).worker_state("ingester:shop", "running")
    as_process(101).capture_lag("ingester:shop", 4.0)
    as_process(101).worker_restarted("ingester:shop")
    as_process(101).started()  # killed while answering
    second = as_process(102)
    second.worker_state("projection:order_summary", "failed")
    second.capture_lag("ingester:shop", 1.0)
    found = scrape(second)
    state = "eventstore_worker_state"
    assert get(found, state, worker="ingester:shop", state="running") == 1
    assert get(found, state, worker="ingester:shop", state="standby") == 0
    assert get(found, state, worker="projection:order_summary", state="failed") == 1
    assert get(found, "eventstore_capture_lag_seconds", worker="ingester:shop") == 4.0  # max
    assert get(found, "eventstore_http_requests_in_flight") == 1

    process_ended(101)  # what the supervisor does for a worker it found dead
    found = scrape(second)
    # 101's share is gone (this imitation leaves 102 a 0 for each key 101 wrote; a real
    # process would have no sample at all)
    running = (
        "eventstore_worker_state",
        frozenset({("worker", "ingester:shop"), ("state", "running")}),
    )
    assert found.get(running, 0) == 0
    assert get(found, state, worker="projection:order_summary", state="failed") == 1
    assert get(found, "eventstore_capture_lag_seconds", worker="ingester:shop") == 1.0
    assert get(found, "eventstore_http_requests_in_flight") == 0
    assert get(found, "eventstore_worker_restarts_total", worker="ingester:shop") == 1  # kept
    second.process_ended()  # its own app's shutdown: this (test) process's pid, not 102
    assert (tmp_path / "gauge_livesum_102.db").exists()
    process_ended(102)
    assert not list(tmp_path.glob("gauge_live*"))


# -- the shared directory ------------------------------------------------------------------
def test_clean_shared_dir_removes_an_earlier_runs_files_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert clean_shared_dir() is None
    given = tmp_path / "made" / "here"
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert clean_shared_dir() == str(given) and given.is_dir()  # created
    (given / "counter_7.db").write_bytes(b"x")
    (given / "gauge_livesum_7.db").write_bytes(b"x")
    (given / "notes.txt").write_text("the operator's")
    clean_shared_dir()
    assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]


def test_shared_dir_makes_a_temporary_directory_for_the_workers_and_removes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    with shared_dir() as path:
        assert os.environ[MULTIPROC_ENV] == path
        assert Path(path).parent == tmp_path and Path(path).is_dir()
        Path(path, "counter_1.db").write_bytes(b"x")
    assert MULTIPROC_ENV not in os.environ
    assert not Path(path).exists()


def test_shared_dir_uses_and_cleans_the_directory_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    (tmp_path / "counter_7.db").write_bytes(b"x")
    with shared_dir() as path:
        assert path == str(tmp_path)
        assert list(tmp_path.iterdir()) == []
        (tmp_path / "counter_8.db").write_bytes(b"x")
    assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    assert (tmp_path / "counter_8.db").exists()  # this run's counts stay for a last look


# -- the composition root ------------------------------------------------------------------
async def test_what_the_supervisor_reports_to_the_service_shows_on_its_apps_metrics() -> None:
    async with open_service(api_settings(uri="memory://")) as service:
        app = service.app()
        assert app.services.metrics is service.metrics
        service.metrics.worker_state("ingester:shop", "retrying")
        service.metrics.worker_restarted("ingester:shop")
        service.metrics.capture_lag("ingester:shop", 12.0)
        async with AsyncTestClient(app) as client:
            r = await client.get("/metrics")
    assert r.status_code == 200
    found = parse(r.text)
    state = "eventstore_worker_state"
    assert get(found, state, worker="ingester:shop", state="retrying") == 1
    assert get(found, state, worker="ingester:shop", state="running") == 0
    assert get(found, "eventstore_worker_restarts_total", worker="ingester:shop") == 1
    assert get(found, "eventstore_capture_lag_seconds", worker="ingester:shop") == 12
    assert get(found, "eventstore_up") == 1


def test_a_workers_standing_problem_is_a_gauge() -> None:
    metrics = Metrics()
    metrics.worker_problem("ingester:shop", True)
    assert get(scrape(metrics), "eventstore_worker_problem", worker="ingester:shop") == 1
    metrics.worker_problem("ingester:shop", False)
    assert get(scrape(metrics), "eventstore_worker_problem", worker="ingester:shop") == 0


def test_a_removed_worker_leaves_no_series() -> None:
    metrics = Metrics()
    for worker in ("subscription:gone", "ingester:shop"):
        metrics.worker_state(worker, "failed")
        metrics.worker_restarted(worker)
        metrics.worker_problem(worker, True)
    metrics.capture_lag("subscription:gone", 1.0)
    metrics.worker_removed("subscription:gone")
    found = scrape(metrics)
    assert [key for key in found if ("worker", "subscription:gone") in key[1]] == []
    assert get(found, "eventstore_worker_state", worker="ingester:shop", state="failed") == 1
    assert get(found, "eventstore_worker_restarts_total", worker="ingester:shop") == 1
    assert get(found, "eventstore_worker_problem", worker="ingester:shop") == 1
    metrics.worker_removed("subscription:never")  # never seen: nothing to remove


def test_a_removed_worker_reads_0_where_processes_share_files(
    as_process: Callable[[int], Metrics],
) -> None:
    metrics = as_process(101)
    metrics.worker_state("subscription:gone", "failed")
    metrics.worker_problem("subscription:gone", True)
    metrics.worker_removed("subscription:gone")  # no warning: warnings are errors here
    found = scrape(metrics)
    for state in WORKER_STATES:
        assert get(found, "eventstore_worker_state", worker="subscription:gone", state=state) == 0
    assert get(found, "eventstore_worker_problem", worker="subscription:gone") == 0


def test_a_made_up_method_is_counted_as_other_and_adds_no_series() -> None:
    metrics = Metrics()
    for method in ("ZZ123", "get", "FOO", "GET", "TRACE"):
        metrics.started()
        metrics.observe(method, "/v1/streams", 405, 0.001)
    found = scrape(metrics)
    methods = {dict(labels)["method"] for name, labels in found if name == REQUESTS}
    assert methods == {"GET", "TRACE", "other"}
    assert get(found, REQUESTS, method="other", route="/v1/streams", status="405") == 3
    latency = "eventstore_http_request_duration_seconds_count"
    assert get(found, latency, method="other", route="/v1/streams") == 3


async def test_a_made_up_method_sent_to_the_app_shows_as_other_on_its_metrics() -> None:
    async with open_service(api_settings(uri="memory://")) as service:
        app = service.app()
        async with AsyncTestClient(app) as client:
            sent = await client.request("ZZ123", "/v1/streams")
            r = await client.get("/metrics")
    assert sent.status_code == 405
    found = parse(r.text)
    assert get(found, REQUESTS, method="other", route="/v1/streams", status="405") == 1
    assert not any("ZZ123" in dict(labels).values() for _, labels in found)
