"""Prometheus metrics, one consistent set of numbers however many uvicorn workers serve.

Two kinds of figures, kept apart so that none is counted twice:

- **Counted by a process**: requests and their latency (the middleware in app.py), and
  the background workers' states, restarts and capture lag (the supervisor calls
  `Metrics.worker_state`, `worker_restarted`, `capture_lag`). These are prometheus_client
  metrics. Under `PROMETHEUS_MULTIPROC_DIR` (what `eventstore serve --workers N` sets up
  for its workers) each process writes its own memory-mapped files there and every
  scrape merges the files of all of them (`MultiProcessCollector`): whichever worker
  answers, it reports the same totals, and a counter never goes backwards (the files of
  a worker that died stay until the next start). Without the variable (one process:
  `run`, `demo`, `serve --workers 1`) they live in this `Metrics`' own registry.
- **Read from the store at scrape time** (`LogFigures`: the head seq, the ingest
  checkpoint, the projections, and `eventstore_up`): computed by the scraping process
  only and never written to the shared files, so never summed across workers.
- **Read from this process's own verifiable-log workers at scrape time**
  (`ProcessFigures`: whether its capture refuses to sign, each checkpoint target's and
  witness's delivery): only a process that captures (`run`, `demo`, `ingest`) has them,
  and it is one process, so nothing is summed either.

The text is prometheus_client's (`generate_latest`, format 0.0.4); nothing here writes
the exposition format by hand.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from eventstore.worker_state import STATES

# The variable prometheus_client reads (at import) to keep its values in shared files.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# The text format generate_latest writes (the server adds `charset=utf-8`).
CONTENT_TYPE: Final = "text/plain; version=0.0.4"
# Latency histogram bounds, seconds (Prometheus' default buckets).
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The `method` label's values: the standard methods, and `other` for any other token a
# client sends (a made-up method must not add series: /metrics would grow without bound).
HTTP_METHODS: Final = (
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
)
OTHER_METHOD: Final = "other"
# A projection's states: the workers' vocabulary (eventstore.worker_state) plus `rebuilding`.
PROJECTION_STATES: Final = (
    "running",
    "rebuilding",
    "starting",
    "retrying",
    "standby",
    "stopped",
    "failed",
)
# The worker-state vocabulary (issue 11: the same everywhere a worker's state is shown).
WORKER_STATES: Final = STATES


def multiprocess_values() -> bool:
    """Whether prometheus_client keeps this process's values in shared files.

    It decides once, at its import, from `PROMETHEUS_MULTIPROC_DIR`; a variable set
    later leaves this process's values in memory (and its own registry reports them).
    """
    return values.ValueClass is not values.MutexValue


class Metrics:
    """The figures a process counts: requests and latency; background workers' states.

    One per app (`Services.metrics`); the app's middleware reports through `started`
    and `observe`, `/metrics` renders with `exposition`.

    For the supervisor of background workers: build one `Metrics()`, pass it to
    `create_app(..., metrics=metrics)` and to the supervisor, which calls
    `worker_state(name, state)` on every state change (name: the lease role,
    `ingester:shop`; state: one of `WORKER_STATES`), `worker_restarted(name)` on
    each restart, `capture_lag(name, seconds)` each time it measures the lag, and
    `worker_removed(name)` when it forgets a worker (a deleted subscription's).
    Thread-safe; cheap (a memory-mapped write in multiprocess mode). A process that
    ends drops its share of the worker gauges (`process_ended`): its app does it at
    shutdown, `serve`'s parent for a worker that was killed.
    """

    def __init__(self) -> None:
        # The `_created` series exist only in single-process mode; drop them so the
        # series are the same whatever the number of workers.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) if multiprocess_values() else None
        # In multiprocess mode values go to the shared files; a registry would only
        # read this process's own share, so the metrics are not registered anywhere.
        self._registry = None if self.multiprocess_dir else CollectorRegistry()
        registry = self._registry
        self.requests = Counter(
            "eventstore_http_requests",
            "HTTP requests by route, method and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "eventstore_http_request_duration_seconds",
            "HTTP request latency.",
            ("method", "route"),
            buckets=BUCKETS,
            registry=registry,
        )
        # Across processes: the sum over live processes (a killed worker's share is
        # dropped by the process that started it, see `process_ended`).
        self.in_flight = Gauge(
            "eventstore_http_requests_in_flight",
            "HTTP requests being answered (open live streams included).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        # Across processes: how many live processes have this worker in this state (a
        # worker name runs in one process at a time, so 1 for its current state).
        self.worker_states = Gauge(
            "eventstore_worker_state",
            "1 for a background worker's current state (summed over live processes).",
            ("worker", "state"),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.worker_restarts = Counter(
            "eventstore_worker_restarts",
            "Times a background worker was restarted (after a failure, or by an admin).",
            ("worker",),
            registry=registry,
        )
        # Across processes: the largest lag any live process reports for the worker.
        self.capture_lags = Gauge(
            "eventstore_capture_lag_seconds",
            "Now minus the cluster time of the capture's last stored resume point (0 while idle).",
            ("worker",),
            multiprocess_mode="livemax",
            registry=registry,
        )

        # Across processes: 1 while a live process runs the worker with a standing problem.
        self.worker_problems = Gauge(
            "eventstore_worker_problem",
            "1 while a background worker runs on with a standing problem, shown as its"
            " last_error in /v1/workers (e.g. capture whose checkpoints the key refuses to sign,"
            " or whose listings' index cannot be written).",
            ("worker",),
            multiprocess_mode="livemax",
            registry=registry,
        )

    # -- what the middleware and the supervisor call -------------------------------------
    def started(self) -> None:
        """One more request in flight (`observe` ends it)."""
        self.in_flight.inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request (route: the matched template, bounded cardinality)."""
        self.in_flight.dec()
        method = method_label(method)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def worker_state(self, worker: str, state: str) -> None:
        """Record `worker`'s current state: 1 for `state`, 0 for every other state."""
        if state not in WORKER_STATES:
            raise ValueError(f"unknown worker state {state!r} (known: {', '.join(WORKER_STATES)})")
        for s in WORKER_STATES:
            self.worker_states.labels(worker, s).set(int(s == state))

    def worker_added(self, worker: str) -> None:
        """A worker is supervised here: its restart counter exists (at 0) from now on."""
        self.worker_restarts.labels(worker)

    def worker_restarted(self, worker: str) -> None:
        """Count one restart of `worker`."""
        self.worker_restarts.labels(worker).inc()

    def capture_lag(self, worker: str, seconds: float) -> None:
        """Record the capture lag of `worker` (a capture worker's name, `ingester:<source>`)."""
        self.capture_lags.labels(worker).set(max(seconds, 0.0))

    def worker_problem(self, worker: str, standing: bool) -> None:
        """Record whether `worker` runs on with a standing problem."""
        self.worker_problems.labels(worker).set(int(standing))

    def worker_removed(self, worker: str) -> None:
        """`worker` is supervised here no more: its series go (its state, restarts, problem, lag)."""
        if self.multiprocess_dir is not None:
            # prometheus_client cannot remove a series from the shared files: its gauges read 0.
            for s in WORKER_STATES:
                self.worker_states.labels(worker, s).set(0)
            self.worker_problems.labels(worker).set(0)
            return
        for s in WORKER_STATES:
            self.worker_states.remove(worker, s)
        for metric in (self.worker_restarts, self.worker_problems, self.capture_lags):
            metric.remove(worker)

    # -- scraping ------------------------------------------------------------------------
    def collector(self) -> Collector:
        """What this process reports of the counted figures: every process's, when shared."""
        if self.multiprocess_dir is not None:
            return MultiProcessCollector(None, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        assert self._registry is not None
        return self._registry

    def exposition(
        self, figures: LogFigures | None, *, up: bool, process: ProcessFigures | None = None
    ) -> bytes:
        """The Prometheus text (format 0.0.4) of the counted figures, the store's and the
        process's own (`process`)."""
        parts: list[Collector] = [self.collector(), StoreCollector(figures, up=up)]
        if process is not None:
            parts.append(ProcessCollector(process))
        return generate_latest(_Scrape(parts))

    def process_ended(self, pid: int | None = None) -> None:
        """Drop the live gauges of a process that ended (this one by default), when shared."""
        if self.multiprocess_dir is not None:
            process_ended(pid if pid is not None else os.getpid(), self.multiprocess_dir)


def method_label(method: str) -> str:
    """The `method` label of a request: one of `HTTP_METHODS`, else `other` (bounded)."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def process_ended(pid: int, path: str | None = None) -> None:
    """Drop the `live*` gauges of process `pid` from the shared directory (if any)."""
    path = path or os.environ.get(MULTIPROC_ENV)
    if path:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class ProjectionFigures:
    """One projection's position, lag (events behind the head) and state."""

    name: str
    position: int
    lag: int
    state: str
    problems: int = 0
    rebuild_needed: bool = False
    state_reads: int = 0


@dataclass(frozen=True, slots=True)
class LogFigures:
    """What a scrape reads from the store."""

    head_seq: int
    ingest_lag_seconds: float | None
    last_checkpoint: datetime | None
    projections: Sequence[ProjectionFigures] = ()


class StoreCollector:
    """The figures read from the store for one scrape (or only `eventstore_up` without them)."""

    def __init__(self, figures: LogFigures | None, *, up: bool) -> None:
        self.figures = figures
        self.up = up

    def collect(self) -> Iterator[Metric]:
        """Gauges, each once: these are never in the shared files."""
        f = self.figures
        if f is not None:
            yield _gauge("eventstore_events_total", "Events in the log (the head seq).", f.head_seq)
            if f.ingest_lag_seconds is not None:
                yield _gauge(
                    "eventstore_ingest_lag_seconds",
                    "Time since the ingester last stored its checkpoint.",
                    f.ingest_lag_seconds,
                )
            if f.last_checkpoint is not None:
                yield _gauge(
                    "eventstore_ingest_checkpoint_timestamp_seconds",
                    "When the ingester last checkpointed.",
                    f.last_checkpoint.timestamp(),
                )
            yield from _projection_families(f.projections)
        yield _gauge("eventstore_up", "1 when the database has been reached.", int(self.up))


@dataclass(frozen=True, slots=True)
class TargetFigures:
    """One checkpoint target or witness: the size it has, whether and how often it failed."""

    target: str
    delivered: int
    failing: bool
    failures: int


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """This process's verifiable-log workers at a scrape.

    `signing_refused` is None when this process signs nothing (no capture, or no key).
    """

    signing_refused: bool | None = None
    targets: Sequence[TargetFigures] = ()


class ProcessCollector:
    """The figures of this process's capture signer and checkpoint publisher, for one scrape."""

    def __init__(self, figures: ProcessFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        """Gauges (and a counter) read from the workers now, each once."""
        f = self.figures
        if f.signing_refused is not None:
            yield _gauge(
                "eventstore_signing_refused",
                "1 while this process's capture refuses to sign checkpoints (the log does not"
                " extend what the key signed: rollback or fork; or the signer state cannot be"
                " read or written): no checkpoint is made until it is settled.",
                int(f.signing_refused),
            )
        if not f.targets:
            return
        delivered = GaugeMetricFamily(
            "eventstore_checkpoint_delivered_size",
            "The tree size of the newest checkpoint a publication target or witness took.",
            labels=("target",),
        )
        failing = GaugeMetricFamily(
            "eventstore_checkpoint_delivery_failing",
            "1 while a publication target or witness fails (retried on its own back-off).",
            labels=("target",),
        )
        failures = CounterMetricFamily(
            "eventstore_checkpoint_delivery_failures",
            "Failed deliveries of a checkpoint to a publication target or witness.",
            labels=("target",),
        )
        for row in f.targets:
            delivered.add_metric((row.target,), row.delivered)
            failing.add_metric((row.target,), int(row.failing))
            failures.add_metric((row.target,), row.failures)
        yield from (delivered, failing, failures)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _projection_families(rows: Sequence[ProjectionFigures]) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "eventstore_projection_lag_events",
        "Events between a projection's position and the head.",
        labels=("projection",),
    )
    position = GaugeMetricFamily(
        "eventstore_projection_position",
        "The last seq a projection applied.",
        labels=("projection",),
    )
    state = GaugeMetricFamily(
        "eventstore_projection_state",
        "1 for the projection's current state.",
        labels=("projection", "state"),
    )
    problems = GaugeMetricFamily(
        "eventstore_projection_problems",
        "Values a projection's rows could not use: not money, or a status or created_at that "
        "cannot be read (recorded in rows).",
        labels=("projection",),
    )
    rebuild = GaugeMetricFamily(
        "eventstore_projection_rebuild_needed",
        "1 when a projection's rows were built with another config (ORDER_* mapping).",
        labels=("projection",),
    )
    reads = GaugeMetricFamily(
        "eventstore_projection_state_reads",
        "Entity states a projection's runner read from history since it started, because the "
        "state cache (STATE_CACHE) did not hold them: raise STATE_CACHE while it climbs.",
        labels=("projection",),
    )
    for row in rows:
        lag.add_metric((row.name,), row.lag)
        reads.add_metric((row.name,), row.state_reads)
        position.add_metric((row.name,), row.position)
        for s in PROJECTION_STATES:
            state.add_metric((row.name, s), int(s == row.state))
        problems.add_metric((row.name,), row.problems)
        rebuild.add_metric((row.name,), int(row.rebuild_needed))
    yield from (lag, position, state, problems, rebuild, reads)


class _Scrape:
    """Several collectors as one, for `generate_latest`."""

    def __init__(self, parts: Iterable[Collector]) -> None:
        self.parts = tuple(parts)

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


# -- the shared directory, prepared by the process that starts the workers ----------------
def clean_shared_dir() -> str | None:
    """Empty `PROMETHEUS_MULTIPROC_DIR` (when set) of an earlier run's files, creating it.

    Call before any metric of this run exists: the files left by an earlier run would
    otherwise be added to this run's counters.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    return path


@contextlib.contextmanager
def shared_dir() -> Iterator[str]:
    """A clean `PROMETHEUS_MULTIPROC_DIR` for the worker processes started inside.

    The directory the variable names (emptied of an earlier run's files), or else a new
    temporary one, set in the environment for the workers and removed at the end.
    """
    given = clean_shared_dir()
    if given is not None:
        yield given
        return
    path = tempfile.mkdtemp(prefix="eventstore-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "BUCKETS",
    "CONTENT_TYPE",
    "HTTP_METHODS",
    "MULTIPROC_ENV",
    "OTHER_METHOD",
    "PROJECTION_STATES",
    "WORKER_STATES",
    "LogFigures",
    "Metrics",
    "ProcessCollector",
    "ProcessFigures",
    "ProjectionFigures",
    "StoreCollector",
    "TargetFigures",
    "clean_shared_dir",
    "method_label",
    "multiprocess_values",
    "process_ended",
    "shared_dir",
]
