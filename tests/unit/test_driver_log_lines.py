"""The driver's background-task failures are logged on one line, not with a traceback."""

from __future__ import annotations

import copy
import io
import logging
import logging.config

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from eventstore.cli.logs import DRIVER_LOGGER, OneLineErrors, configure_logging, logging_config
from eventstore.failures import describe

# As PyMongo words it when the server went away (its topology dump after the timeout).
SELECTION = (
    "127.0.0.1:27019: connection closed (configured timeouts: socketTimeoutMS: 2000.0ms,"
    " connectTimeoutMS: 2000.0ms), Timeout: 2.0s, Topology Description:"
    " <TopologyDescription id: 650000000000000000000001, topology_type: Unknown,"
    " servers: [<ServerDescription ('127.0.0.1', 27019) server_type: Unknown>]>"
)


def log_a_background_failure() -> None:
    """What PyMongo's `_log_client_error` does in a failing killCursors task."""
    try:
        raise ServerSelectionTimeoutError(SELECTION)
    except ServerSelectionTimeoutError:
        logging.getLogger(DRIVER_LOGGER).exception(
            "MongoClient background task encountered an error:"
        )


def test_a_driver_failure_is_one_line_naming_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    root, driver = logging.getLogger(), logging.getLogger(DRIVER_LOGGER)
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(driver, "filters", [])
    configure_logging()
    configure_logging()  # twice: one filter
    assert sum(isinstance(f, OneLineErrors) for f in driver.filters) == 1

    log_a_background_failure()

    lines = err.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        " ERROR pymongo.client: MongoClient background task encountered an error:"
        " ServerSelectionTimeoutError: 127.0.0.1:27019: connection closed (configured"
        " timeouts: socketTimeoutMS: 2000.0ms, connectTimeoutMS: 2000.0ms), Timeout: 2.0s"
    )
    assert "Traceback" not in err.getvalue()


def test_a_long_message_is_cut_and_a_record_without_an_exception_kept_as_is() -> None:
    keep = OneLineErrors()
    plain = logging.LogRecord(DRIVER_LOGGER, logging.INFO, __file__, 1, "fine %s", ("x",), None)
    assert keep.filter(plain) and plain.getMessage() == "fine x"
    try:
        raise ValueError("a\nb" + "c" * 2000)
    except ValueError as exc:
        record = logging.LogRecord(
            DRIVER_LOGGER, logging.ERROR, __file__, 1, "failed", None, (ValueError, exc, None)
        )
    assert keep.filter(record)
    said = record.getMessage()
    assert said.startswith("failed: ValueError: a b" + "c" * 10)
    assert said.endswith("…") and len(said) == len("failed: ValueError: ") + 500 + 1
    assert record.exc_info is None and "\n" not in said


def test_the_uvicorn_workers_configuration_installs_the_same_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = copy.deepcopy(logging_config())
    assert config["loggers"][DRIVER_LOGGER] == {"filters": ["one_line"]}
    # Applied as uvicorn applies it (only the driver's logger, the rest left as it is).
    driver = logging.getLogger(DRIVER_LOGGER)
    monkeypatch.setattr(driver, "filters", [])
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": config["filters"],
            "loggers": {DRIVER_LOGGER: config["loggers"][DRIVER_LOGGER]},
        }
    )
    assert [type(f) for f in driver.filters] == [OneLineErrors]


def test_a_workers_error_leaves_out_the_drivers_topology_dump() -> None:
    # as /v1/workers, `eventstore status` and the worker log lines show it
    assert describe(ServerSelectionTimeoutError(SELECTION)) == (
        "ServerSelectionTimeoutError: 127.0.0.1:27019: connection closed (configured"
        " timeouts: socketTimeoutMS: 2000.0ms, connectTimeoutMS: 2000.0ms), Timeout: 2.0s"
    )
