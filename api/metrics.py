"""Prometheus text metrics: requests and their latency, the log, ingest and projection lag.

Request figures are counted in-process by the middleware in app.py; the rest is
read from the store at scrape time, so every instance reports the same log.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from eventstore.worker_state import CAPTURE, WorkerRecord
from eventstore.worker_state import STATES as WORKER_STATES

# Latency histogram bounds, seconds (Prometheus' default buckets).
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATES: Final = ("running", "rebuilding", "standby", "retrying", "stopped", "failed")


class Metrics:
    """Request counters and latency histograms by route template, method and status."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        key = (method, route)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] += seconds

    def request_lines(self) -> list[str]:
        lines = [
            "# HELP eventstore_http_requests_total HTTP requests by route, method and status.",
            "# TYPE eventstore_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(
                f'eventstore_http_requests_total{{method="{method}",route="{_esc(route)}",'
                f'status="{status}"}} {n}'
            )
        lines += [
            "# HELP eventstore_http_request_duration_seconds HTTP request latency.",
            "# TYPE eventstore_http_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.buckets.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    f'eventstore_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {running}'
                )
            lines.append(
                f"eventstore_http_request_duration_seconds_sum{{{labels}}} "
                f"{self.sums[(method, route)]:.6f}"
            )
            lines.append(f"eventstore_http_request_duration_seconds_count{{{labels}}} {running}")
        return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def log_lines(
    head_seq: int, ingest_lag_seconds: float | None, last_checkpoint: datetime | None
) -> list[str]:
    lines = [
        "# HELP eventstore_events_total Events in the log (the head seq).",
        "# TYPE eventstore_events_total gauge",
        f"eventstore_events_total {head_seq}",
    ]
    if ingest_lag_seconds is not None:
        lines += [
            "# HELP eventstore_ingest_lag_seconds Time since the ingester last stored its checkpoint.",
            "# TYPE eventstore_ingest_lag_seconds gauge",
            f"eventstore_ingest_lag_seconds {ingest_lag_seconds:.3f}",
        ]
    if last_checkpoint is not None:
        lines += [
            "# HELP eventstore_ingest_checkpoint_timestamp_seconds When the ingester last checkpointed.",
            "# TYPE eventstore_ingest_checkpoint_timestamp_seconds gauge",
            f"eventstore_ingest_checkpoint_timestamp_seconds {last_checkpoint.timestamp():.3f}",
        ]
    return lines


def projection_lines(rows: Iterable[tuple[str, int, int, str]]) -> list[str]:
    """Lag (events behind the head), position, and a 0/1 gauge per state, per projection."""
    rows = list(rows)
    lines = [
        "# HELP eventstore_projection_lag_events Events between a projection's position and the head.",
        "# TYPE eventstore_projection_lag_events gauge",
        *(f'eventstore_projection_lag_events{{projection="{n}"}} {lag}' for n, _, lag, _ in rows),
        "# HELP eventstore_projection_position The last seq a projection applied.",
        "# TYPE eventstore_projection_position gauge",
        *(f'eventstore_projection_position{{projection="{n}"}} {pos}' for n, pos, _, _ in rows),
        "# HELP eventstore_projection_state 1 for the projection's current state.",
        "# TYPE eventstore_projection_state gauge",
    ]
    for name, _, _, state in rows:
        for s in STATES:
            lines.append(
                f'eventstore_projection_state{{projection="{name}",state="{s}"}} {int(s == state)}'
            )
    return lines


def worker_lines(records: Iterable[WorkerRecord]) -> list[str]:
    """This process's workers: a 0/1 gauge per state, restarts, and capture's lag in seconds."""
    records = list(records)
    lines = [
        "# HELP eventstore_worker_state 1 for the worker's current state.",
        "# TYPE eventstore_worker_state gauge",
    ]
    for r in records:
        for s in WORKER_STATES:
            lines.append(
                f'eventstore_worker_state{{worker="{_esc(r.name)}",state="{s}"}} {int(s == r.state)}'
            )
    lines += [
        "# HELP eventstore_worker_restarts_total Times the supervisor started a worker again.",
        "# TYPE eventstore_worker_restarts_total counter",
        *(
            f'eventstore_worker_restarts_total{{worker="{_esc(r.name)}"}} {r.restarts}'
            for r in records
        ),
    ]
    lags = [r for r in records if r.kind == CAPTURE and r.lag_seconds is not None]
    if lags:
        lines += [
            "# HELP eventstore_capture_lag_seconds Now minus the cluster time of the last stored "
            "change (0 while idle).",
            "# TYPE eventstore_capture_lag_seconds gauge",
            *(
                f'eventstore_capture_lag_seconds{{worker="{_esc(r.name)}"}} {r.lag_seconds:.3f}'
                for r in lags
            ),
        ]
    return lines
