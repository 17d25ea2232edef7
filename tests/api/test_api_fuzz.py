"""Property-based fuzzing from the app's own OpenAPI document (schemathesis), the live tail excepted.

Two kinds of run, each without keys and with them:

- `run_phases`: schemathesis's own engine, every phase it has (examples, filled
  in where the document has none; coverage, which also sends the methods an
  operation does not declare and values outside the schema; fuzzing; stateful,
  over the links it infers between operations). Every check it has but
  `positive_data_acceptance` (a schema-valid `since` after `until` is rightly a
  422) must pass, and no answer may be a 5xx.
- `fuzz`: generated requests aimed at what exists (below).

Every operation gets generated requests, valid (positive) and, where it takes
query parameters, invalid (negative). Path parameters are generated too, and
half the time drawn from what exists (the stream, entity keys bare and typed,
projections, their rows, a job, versions and limits near the real ones), so
requests reach the handlers and not only the 404s. Every response must be: not a 5xx; a status code the document lists
for the operation; a content type it lists; a body valid against its schema.

Two apps over one populated memory store (10 orders, 40 changes, the special
keys of `conftest.build_log`, projections caught up): one without keys, and one
with ADMIN_KEY and READ_KEYS set where requests mostly carry the admin key
(sometimes a read key, a wrong key or none), so auth does not hide the rest.

The app runs in schemathesis's in-process ASGI client (its own event loop
thread): these tests are synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Ok
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi

from api import create_app
from api.app import EventStoreApp
from eventstore.keys import typed_key
from eventstore.model import Job
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from tests.api.conftest import ADMIN_KEY, READ_KEY, AuditLog, build_log
from tests.api.conftest import settings as app_settings

LIVE: Final = "/v1/events/live"
JOB: Final = "fuzz-known-job"
# Examples per operation and generation mode: ~13 operations take parameters.
POSITIVE: Final = settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
NEGATIVE: Final = settings(POSITIVE, max_examples=20)
KEYED_SHARE: Final = 0.35  # the run with keys: this share of the open run's examples
# A longer hunt: `API_FUZZ_SCALE=10 pytest tests/api/test_api_fuzz.py` (10x the examples).
SCALE: Final = float(os.environ.get("API_FUZZ_SCALE", "1"))
MIN_OPEN: Final = 600
MIN_KEYED: Final = 200
# The engine's run of every phase: examples per operation in its fuzzing phase.
PHASE_EXAMPLES: Final = 5
PHASES: Final = ("examples", "coverage", "fuzzing", "stateful")

# Not a 5xx; the status, the content type and the body as the document says.
CHECKS: Final = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@dataclass
class Known:
    """Path parameter values that exist in the store, by parameter name."""

    values: dict[str, list[str]]
    # `{key}` under /v1/projections/{name}: each projection's row keys.
    rows: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Tally:
    """What was sent and what came back; the failures with a way to reproduce them."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seen: set[tuple[str, int, str]] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def table(self) -> str:
        ops = sorted({op for op, _ in self.statuses})
        lines = []
        for op in ops:
            by_status = {s: n for (o, s), n in self.statuses.items() if o == op}
            shown = ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items()))
            lines.append(f"  {op:55} {sum(by_status.values()):5}  ({shown})")
        return "\n".join(lines)


async def _populated() -> tuple[AuditLog, Known]:
    log = await build_log("memory", orders=10, changes=40)
    store = log.store
    for projection in ORDER_PROJECTIONS:
        await ProjectionRunner(store, projection, clock=log.clock).catch_up()
    await store.jobs.create(Job(job=JOB, projection="order_summary", requested_at=log.clock.now()))
    entities = {
        (e.entity_key, typed_key(e.entity_id)) for e in log.events if e.entity_id is not None
    }
    keys = sorted({k for pair in entities for k in pair})
    rows = {}
    for projection in ORDER_PROJECTIONS:
        found = await store.read_models.query(projection.collection, filters={}, limit=10_000)
        rows[projection.name] = sorted(str(r["_id"]) for r in found)
    assert all(rows.values()), "every projection has rows"
    names = [p.name for p in ORDER_PROJECTIONS]
    return log, Known(
        values={"stream": ["orders"], "key": keys, "name": names, "job": [JOB]}, rows=rows
    )


@pytest.fixture(scope="module")
def populated() -> tuple[AuditLog, Known]:
    """The store, built once for this module (in its own event loop: the tests are sync)."""
    return asyncio.run(_populated())


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """The app's server-side error log (a 500 logs its traceback here)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    logger = logging.getLogger("eventstore.api")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _known_path(op: Any, known: Known) -> st.SearchStrategy[dict[str, str]] | None:
    """Existing values for every path parameter of `op`, or None when it has none."""
    names = [p.name for p in op.path_parameters]
    if not names:
        return None
    if op.path.startswith("/v1/projections/{name}/{key}"):
        return st.sampled_from(sorted(known.rows)).flatmap(
            lambda name: st.builds(
                lambda key: {"name": name, "key": key}, st.sampled_from(known.rows[name])
            )
        )
    return st.fixed_dictionaries({n: st.sampled_from(known.values.get(n, ["x"])) for n in names})


# Media types an operation answers by `Accept` (None: the default, JSON).
ACCEPT: Final[dict[str, list[str | None]]] = {
    "/v1/events": [None, None, "application/x-ndjson", "text/csv"],
}
# Query values near what exists (entities have a few versions), drawn for the parameters an
# operation takes; the other parameters are generated.
NEAR: Final[dict[str, st.SearchStrategy[int]]] = {
    "from_version": st.integers(1, 6),
    "to_version": st.integers(1, 6),
    "version": st.integers(1, 6),
    "limit": st.integers(1, 5),
}


def _cases(op: Any, mode: GenerationMode, known: Known) -> st.SearchStrategy[Any]:
    generated: st.SearchStrategy[Any] = op.as_strategy(generation_mode=mode)
    existing = _known_path(op, known)
    if existing is None:
        return generated
    near = {p.name: NEAR[p.name] for p in op.query if p.name in NEAR}
    if mode is GenerationMode.NEGATIVE or not near:
        query: st.SearchStrategy[dict[str, int] | None] = st.none()
    else:
        query = st.one_of(
            st.fixed_dictionaries(near), st.fixed_dictionaries({}, optional=near), st.none()
        )
    at_existing: st.SearchStrategy[Any] = st.tuples(existing, query).flatmap(
        lambda pq: op.as_strategy(generation_mode=mode, path_parameters=pq[0], query=pq[1])
    )
    return st.one_of(generated, at_existing)


def _send_all(
    op: Any,
    mode: GenerationMode,
    budget: settings,
    known: Known,
    tokens: st.SearchStrategy[str | None],
    tally: Tally,
) -> None:
    """Generate `budget.max_examples` requests for one operation and mode; tally the answers."""

    accepts = st.sampled_from(ACCEPT.get(op.path, [None]))

    @given(case=_cases(op, mode, known), token=tokens, accept=accepts)
    @budget
    def send(case: Any, token: str | None, accept: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if accept is not None:
            headers["Accept"] = accept
        response = case.call(headers=headers)
        tally.statuses[(op.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseExceptionGroup as found:
            key = (op.label, response.status_code, type(found.exceptions[0]).__name__)
            if key not in tally.seen:
                tally.seen.add(key)
                tally.failures.append(f"{op.label} [{mode.value}]\n{found}")

    send()


def fuzz(
    app: EventStoreApp,
    known: Known,
    *,
    share: float = 1.0,
    auth: st.SearchStrategy[str | None] | None = None,
) -> Tally:
    """Every operation but the live tail, positive and negative; a tally of what came back."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app).exclude(path=LIVE)
    tally = Tally()
    tokens: st.SearchStrategy[str | None] = auth if auth is not None else st.none()
    try:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the document is valid OpenAPI
            op = result.ok()
            modes = [(GenerationMode.POSITIVE, POSITIVE)]
            if len(op.query):  # a path-only operation has no invalid request to generate
                modes.append((GenerationMode.NEGATIVE, NEGATIVE))
            for mode, budget in modes:
                examples = max(1, round(budget.max_examples * share * SCALE))
                _send_all(op, mode, settings(budget, max_examples=examples), known, tokens, tally)
    finally:
        asgi.shutdown_lifespans()
    return tally


@dataclass
class PhaseTally:
    """What the engine sent and got, by phase; its check failures; errors it met."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)

    def sent(self, phase: str) -> int:
        return sum(n for (p, _), n in self.statuses.items() if p == phase)

    def report(self, title: str) -> str:
        rows = "\n".join(f"  {p:10} {s}: {n}" for (p, s), n in sorted(self.statuses.items()))
        return (
            f"{title}: phases {self.phases}\n{rows}\nmethods {dict(self.methods)}\n"
            + "\n\n".join([*self.errors, *self.failures][:10])
        )


def run_phases(app: EventStoreApp, *, headers: dict[str, str] | None = None) -> PhaseTally:
    """Schemathesis's engine over the app: every phase, every check but positive_data_acceptance."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app).exclude(path=LIVE)
    schema.config.generation.update(max_examples=max(1, round(PHASE_EXAMPLES * SCALE)))
    schema.config.phases.examples.fill_missing = True  # the document has no examples of its own
    schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])
    if headers:
        schema.config.update(headers=headers)
    tally = PhaseTally()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.PhaseFinished):
                tally.phases[event.phase.name.value] = event.status.value
            elif isinstance(event, events.ScenarioFinished):
                phase = event.phase.value
                recorder = event.recorder
                for interaction in recorder.interactions.values():
                    tally.methods[interaction.request.method] += 1
                    if interaction.response is not None:
                        tally.statuses[(phase, interaction.response.status_code)] += 1
                for case_id, found in recorder.checks.items():
                    for check in found:
                        if check.failure_info is not None:
                            case = recorder.cases[case_id].value
                            tally.failures.append(
                                f"[{phase}] {recorder.label} {check.name}: "
                                f"{check.failure_info.failure}\n"
                                f"{case.as_curl_command()}"
                            )
            elif isinstance(event, events.NonFatalError | events.FatalError):
                tally.errors.append(repr(event))
    finally:
        asgi.shutdown_lifespans()
    return tally


def _assert_phases_clean(tally: PhaseTally, title: str) -> None:
    report = tally.report(title)
    print(report)
    assert not tally.errors, report
    assert not tally.failures, report
    assert not [k for k in tally.statuses if k[1] >= 500], report
    assert set(PHASES) <= set(tally.phases), report
    for phase in PHASES:
        assert tally.phases[phase] != "skip" and tally.sent(phase) > 0, (phase, report)
    # coverage sent the methods no operation declares, and OPTIONS: 405 and 204 came back
    assert {"PUT", "PATCH", "DELETE", "TRACE", "OPTIONS"} <= set(tally.methods), report
    assert tally.statuses[("coverage", 405)] > 0 and tally.statuses[("coverage", 204)] > 0, report


def _report(tally: Tally, errors: list[logging.LogRecord], title: str) -> str:
    logged = "\n".join(logging.Formatter().format(r) for r in errors[:3])  # tracebacks of any 500
    return (
        f"{title}: {tally.total} requests\n{tally.table()}\n\n"
        + "\n\n".join(tally.failures[:10])
        + (f"\n\nserver log:\n{logged}" if logged else "")
    )


def _assert_clean(tally: Tally, errors: list[logging.LogRecord], title: str, least: int) -> None:
    report = _report(tally, errors, title)
    print(report)
    five_hundreds = {k: n for k, n in tally.statuses.items() if k[1] >= 500}
    assert not five_hundreds, report
    assert not tally.failures, report
    assert tally.total >= least, report
    assert len({op for op, _ in tally.statuses}) >= 17, report  # every operation but the tail


def test_generated_requests_get_documented_answers_and_no_5xx_without_keys(
    populated: tuple[AuditLog, Known], server_errors: list[logging.LogRecord]
) -> None:
    log, known = populated
    app = create_app(app_settings(), store=log.store)
    tally = fuzz(app, known)
    _assert_clean(tally, server_errors, "fuzz without keys", MIN_OPEN)
    # the 2xx paths were reached, not only the errors
    assert (
        sum(n for (_, s), n in tally.statuses.items() if s < 300) >= 60 * SCALE
    )  # ~100-130 seen at 40 examples per operation


def test_generated_requests_get_documented_answers_and_no_5xx_with_keys(
    populated: tuple[AuditLog, Known], server_errors: list[logging.LogRecord]
) -> None:
    log, known = populated
    app = create_app(app_settings(admin_key=ADMIN_KEY, read_keys=(READ_KEY,)), store=log.store)
    # Mostly the admin key (it reads too), sometimes a read key, a wrong key or none.
    auth = st.sampled_from([ADMIN_KEY] * 6 + [READ_KEY, "not-a-key", None])
    tally = fuzz(app, known, share=KEYED_SHARE, auth=auth)
    _assert_clean(tally, server_errors, "fuzz with keys", MIN_KEYED)
    admin = {s for (op, s) in tally.statuses if "/v1/admin/" in op}
    # Admin work was reached and refused; which refusal (401 or a read key's 403) depends on the
    # draw at this budget: tests/api/test_api_auth.py pins each one.
    assert {200, 202} & admin and {401, 403} & admin, tally.table()


def test_every_schemathesis_phase_finds_no_5xx_without_keys(
    populated: tuple[AuditLog, Known], server_errors: list[logging.LogRecord]
) -> None:
    log, _ = populated
    app = create_app(app_settings(), store=log.store)
    # Without ADMIN_KEY, admin is disabled: 403 with or without a key (documented), so the
    # check that a missing Authorization header gives 401 does not apply here.
    tally = run_phases(app)
    tally.failures = [f for f in tally.failures if "missing_required_header" not in f]
    _assert_phases_clean(tally, "every phase without keys")
    assert not server_errors


def test_every_schemathesis_phase_finds_no_5xx_with_keys(
    populated: tuple[AuditLog, Known], server_errors: list[logging.LogRecord]
) -> None:
    log, _ = populated
    app = create_app(app_settings(admin_key=ADMIN_KEY, read_keys=(READ_KEY,)), store=log.store)
    tally = run_phases(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    _assert_phases_clean(tally, "every phase with keys")
    assert not server_errors
    # the keys were used: admin answered, and the requests without a key were refused
    assert tally.statuses[("fuzzing", 202)] + tally.statuses[("stateful", 202)] > 0
    assert sum(n for (_, s), n in tally.statuses.items() if s == 401) > 0
