"""A projection's shown state: the runner's record, or what its supervised workers say."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore.worker_state import WorkerRecord
from projections.status import supervised_state

T = datetime(2026, 1, 1, tzinfo=UTC)


def worker(instance: str, state: str, error: str | None = None) -> WorkerRecord:
    return WorkerRecord(
        name="projection:order_summary",
        kind="projection",
        instance=instance,
        state=state,
        since=T,
        last_error=error,
        updated_at=T,
    )


def test_the_runners_record_stands_while_an_instance_runs_it() -> None:
    workers = [worker("a", "running"), worker("b", "failed", "boom")]
    assert supervised_state("rebuilding", None, workers) == ("rebuilding", None)
    assert supervised_state("running", None, []) == ("running", None)


def test_a_projection_nobody_runs_shows_why() -> None:
    retrying = [worker("a", "retrying", "AutoReconnect: reset"), worker("b", "standby")]
    assert supervised_state("stopped", None, retrying) == ("retrying", "AutoReconnect: reset")
    failed = [worker("a", "failed", "OperationFailure: not authorized")]
    assert supervised_state("stopped", None, failed) == (
        "failed",
        "OperationFailure: not authorized",
    )
    assert supervised_state("stopped", None, [worker("b", "standby")]) == ("standby", None)
    assert supervised_state("stopped", None, [worker("b", "stale")]) == ("stopped", None)


def test_a_failing_apply_keeps_the_runners_own_error() -> None:
    failed = [worker("a", "failed", "ProjectionFailed: ...")]
    assert supervised_state("failed", "KeyError: 'x' at seq 7", failed) == (
        "failed",
        "KeyError: 'x' at seq 7",
    )
