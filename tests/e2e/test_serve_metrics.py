"""`eventstore serve --workers 2` against a mockupdb server: one set of metrics across workers.

Each worker counts the requests it answers; a scrape answered by either must give the
true totals, and a counter must never go backwards, not even when a worker is killed
and uvicorn starts another. The figures read from the store (the head seq) are read by
the scraping worker only, never added up across workers.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from bson import Int64
from mockupdb import MockupDB, Request
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.wire import WAIT, first_batch, housekeeping, stop_quickly
from tests.e2e.processes import STOP_SECONDS, free_port, kill, launch, stop, wait_for

HEAD_SEQ: Final = 7  # the head the scripted server reports for the events collection
REQUESTS: Final = "eventstore_http_requests_total"
LIVE: Final = ("GET", "/health/live", "200")
SCRAPE: Final = ("GET", "/metrics", "200")
# The counter series (and the histogram's, which only grow too).
MONOTONIC: Final = (
    REQUESTS,
    "eventstore_http_request_duration_seconds_bucket",
    "eventstore_http_request_duration_seconds_count",
    "eventstore_http_request_duration_seconds_sum",
)
# A fresh connection per request: a kept-alive one would always reach the same worker.
NO_KEEPALIVE: Final = httpx.Limits(max_keepalive_connections=0)


def answer_store_reads(request: Request) -> bool:
    """Handshakes, and every `find`: the events head (seq 7), nothing elsewhere."""
    if housekeeping(request):
        return True
    if (request.command_name or "").lower() != "find":
        return False
    coll = request.doc["find"]
    docs = [{"_id": 1, "seq": Int64(HEAD_SEQ), "log_hash": "ab" * 32}] if coll == "events" else []
    ns = f"{request.namespace}.{coll}"
    return bool(request.replies(first_batch(docs, post_batch=None, ns=ns, cursor_id=Int64(0))))


@pytest.fixture
def mongo() -> Iterator[MockupDB]:
    server = MockupDB(request_timeout=WAIT)
    server.autoresponds(answer_store_reads)
    server.run()
    try:
        yield server
    finally:
        stop_quickly(server)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page (prometheus_client's parser: the text is valid)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def requests(found: Samples, method: str, route: str, status: str) -> float:
    key = (REQUESTS, (("method", method), ("route", route), ("status", status)))
    return found.get(key, 0.0)


def per_worker(metrics_dir: Path, route: tuple[str, str, str]) -> dict[int, float]:
    """What each worker process counted for `route` (read from its own counter file)."""
    out: dict[int, float] = {}
    for path in glob.glob(str(metrics_dir / "counter_*.db")):
        pid = int(Path(path).stem.split("_")[1])
        for metric in MultiProcessCollector.merge([path]):  # type: ignore[no-untyped-call]
            for s in metric.samples:
                labels = (s.labels.get("method"), s.labels.get("route"), s.labels.get("status"))
                if s.name == REQUESTS and labels == route:
                    out[pid] = s.value
    return out


def stale_count(metrics_dir: Path) -> None:
    """An earlier run's file counting 1000 requests: serve must clear it, not add it up."""
    key = mmap_key(
        "eventstore_http_requests",
        REQUESTS,
        ["method", "route", "status"],
        list(LIVE),
        "HTTP requests by route, method and status.",
    )
    stale = MmapedDict(str(metrics_dir / "counter_999999.db"))  # type: ignore[no-untyped-call]
    stale.write_value(key, 1000.0, 0.0)  # type: ignore[no-untyped-call]
    stale.close()  # type: ignore[no-untyped-call]


class Client:
    """The test's requests, counted, each on a new connection."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10, limits=NO_KEEPALIVE)
        self.live = 0  # /health/live answered 200
        self.scrapes = 0  # /metrics answered 200
        self.pages: list[Samples] = []

    def get_live(self) -> None:
        assert self.http.get("/health/live").status_code == 200
        self.live += 1

    def scrape(self) -> Samples:
        r = self.http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        self.scrapes += 1
        found = parse(r.text)
        self.pages.append(found)
        return found

    def scrape_and_check(self) -> Samples:
        """A scrape that must show exactly what was asked before it."""
        found = self.scrape()
        assert requests(found, *LIVE) == self.live, (requests(found, *LIVE), self.live)
        assert requests(found, *SCRAPE) == self.scrapes - 1  # counted once answered
        assert found[("eventstore_http_requests_in_flight", ())] == 1  # this scrape
        assert found[("eventstore_up", ())] == 1
        assert found[("eventstore_events_total", ())] == HEAD_SEQ  # not 2 × 7
        lag = ("eventstore_projection_lag_events", (("projection", "order_summary"),))
        assert found[lag] == HEAD_SEQ
        return found


def workers_of(proc: subprocess.Popen[str]) -> list[int]:
    """The pids of serve's uvicorn workers: its children started by multiprocessing's spawn."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            pid = int(Path(stat).parent.name)
            if (
                int(fields[1]) == proc.pid
                and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                out.append(pid)
    return sorted(out)


@contextlib.contextmanager
def only(worker: int, workers: list[int]) -> Iterator[None]:
    """Every new connection reaches `worker`: the others are paused (SIGSTOP) meanwhile.

    The workers share one listening socket; a paused one does not accept. Kept well
    under uvicorn's 5 s health check, which would take a paused worker for hung.
    """
    others = [w for w in workers if w != worker]
    for w in others:
        os.kill(w, signal.SIGSTOP)
    try:
        yield
    finally:
        for w in others:
            os.kill(w, signal.SIGCONT)


def rounds(client: Client, workers: list[int], n: int = 3, requests: int = 5) -> None:
    """`n` rounds, each worker in turn answering `requests` requests and then a scrape."""
    for _ in range(n):
        for worker in workers:
            with only(worker, workers):
                for _ in range(requests):
                    client.get_live()
                client.scrape_and_check()


def until_up(client: Client, worker: int, workers: list[int]) -> None:
    """A worker just started reaches the database on its own, a moment after it serves:
    scrape it alone until it says so (`eventstore_up` 1; every scrape counted)."""

    def up() -> bool:
        with only(worker, workers):
            return client.scrape()[("eventstore_up", ())] == 1

    wait_for(up)


def two_workers(proc: subprocess.Popen[str]) -> list[int]:
    """serve's two workers, once both are up and serving (waits, bounded)."""
    found: list[int] = wait_for(lambda: (w := workers_of(proc)) and len(w) == 2 and w)
    return found


def end(proc: subprocess.Popen[str]) -> None:
    """After a failure: SIGTERM (the parent stops its workers), then SIGKILL if need be."""
    if proc.poll() is None:
        workers = workers_of(proc)
        for w in workers:
            os.kill(w, signal.SIGCONT)
        proc.terminate()
        try:
            proc.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            for w in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w, signal.SIGKILL)
            kill(proc)


def never_decreasing(pages: list[Samples]) -> None:
    """No counter sample of a later scrape is below the same sample of an earlier one."""
    for before, after in itertools.pairwise(pages):
        for key, value in before.items():
            if key[0] in MONOTONIC:
                assert after.get(key, 0.0) >= value, (key, value, after.get(key))


def test_serve_with_two_workers_reports_the_true_totals_on_every_scrape(
    mongo: MockupDB, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale_count(metrics_dir)
    port = free_port()
    host, mongo_port = mongo.address
    proc = launch(
        "serve",
        "--uri",
        f"mongodb://{host}:{mongo_port}/?directConnection=true",
        "--server-timeout-ms",
        "200",
        "--workers",
        "2",
        "--port",
        str(port),
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: client.http.get("/health/live").status_code == 200, seconds=30)
        client.live += 1
        assert not (metrics_dir / "counter_999999.db").exists()  # cleared at start

        # Each worker in turn answers requests and a scrape: every scrape, whoever
        # answers it, shows the totals so far.
        workers = two_workers(proc)
        rounds(client, workers)
        split = per_worker(metrics_dir, LIVE)
        assert sorted(split) == workers and all(n >= 15 for n in split.values()), split
        assert sum(split.values()) == client.live

        # A worker killed outright: uvicorn starts another; its counts stay in the
        # totals, and its live gauge (requests in flight) is dropped by the parent.
        victim = workers[0]
        assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not (metrics_dir / f"gauge_livesum_{victim}.db").exists())
        survivors = set(workers) - {victim}
        workers = wait_for(lambda: (w := two_workers(proc)) and victim not in w and w)
        for fresh in set(workers) - survivors:
            until_up(client, fresh, workers)
        rounds(client, workers)
        never_decreasing(client.pages)
        after = per_worker(metrics_dir, LIVE)
        assert after[victim] == split[victim] and len(after) == 3, after
        assert sum(after.values()) == client.live

        code, _out, err, _took = stop(proc)
        assert code == 0, err[-2000:]
        assert "Traceback" not in err
        # Every worker has ended: no live gauge is left; the counts are kept.
        assert not glob.glob(str(metrics_dir / "gauge_live*.db"))
        assert sum(per_worker(metrics_dir, LIVE).values()) == client.live
        print(
            f"\n/health/live: {client.live} requests; per worker {split} before the kill, "
            f"{after} after; {client.scrapes} scrapes, each exact"
        )
    finally:
        client.http.close()
        end(proc)


def test_serve_with_workers_and_no_directory_given_uses_a_temporary_one_and_removes_it(
    mongo: MockupDB, tmp_path: Path
) -> None:
    """The default: a private directory for the run, made before the workers start."""
    port = free_port()
    host, mongo_port = mongo.address
    proc = launch(
        "serve",
        "--uri",
        f"mongodb://{host}:{mongo_port}/?directConnection=true",
        "--server-timeout-ms",
        "200",
        "--workers",
        "2",
        "--port",
        str(port),
        env={"TMPDIR": str(tmp_path)},  # where tempfile makes it
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: client.http.get("/health/live").status_code == 200, seconds=30)
        client.live += 1
        rounds(client, two_workers(proc), n=2)
        never_decreasing(client.pages)
        (private,) = tmp_path.glob("eventstore-metrics-*")
        assert sum(per_worker(private, LIVE).values()) == client.live
        code, _out, err, _took = stop(proc)
        assert code == 0, err[-2000:]
        assert "Traceback" not in err
        assert not private.exists()
    finally:
        client.http.close()
        end(proc)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unusable_metrics_directory_is_one_line_and_exit_1(workers: str, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    uri = "memory://" if workers == "1" else "mongodb://127.0.0.1:1/"
    proc = launch(
        "serve",
        "--uri",
        uri,
        "--workers",
        workers,
        "--port",
        str(free_port()),
        env={"PROMETHEUS_MULTIPROC_DIR": str(not_a_dir)},
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        f"eventstore: error: PROMETHEUS_MULTIPROC_DIR: cannot use {not_a_dir}: File exists"
    ]
    assert "Traceback" not in err
