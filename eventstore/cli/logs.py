"""Logging, configured in this one place for every command and every uvicorn worker.

Diagnostics go to stderr as `time LEVEL logger: message`; the API's access log
(`eventstore.access`) is one bare JSON line per request, on stderr too. The driver's
failures in its background tasks are one line each too (`OneLineErrors`), not a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

from eventstore.driver_text import without_topology

PLAIN_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER: Final = "eventstore.access"
# PyMongo's logger of its background tasks' failures (the cursors it kills, the pools it
# maintains): during an outage it logged each with a 20-line traceback.
DRIVER_LOGGER: Final = "pymongo.client"
_MOST: Final = 500


class OneLineErrors(logging.Filter):
    """A record's exception as the end of its one line (`…: Type: message`), no traceback.

    Invariant: the record is kept (never dropped) and says the exception's type and message,
    cut before the driver's topology dump and to `_MOST` characters, on one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            said = without_topology(str(exc)).replace("\n", " ").replace("\r", " ")
            if len(said) > _MOST:
                said = said[:_MOST] + "…"
            head = record.getMessage().rstrip().rstrip(":")
            record.msg = f"{head}: {type(exc).__name__}: {said}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def logging_config(verbose: bool = False) -> dict[str, Any]:
    """The whole configuration as a `dictConfig` dict: uvicorn applies it in every worker.

    uvicorn's own access log is switched off (`access_log=False`): the app writes its own.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"one_line": {"()": f"{__name__}.OneLineErrors"}},
        "formatters": {
            "plain": {"format": PLAIN_FORMAT},
            "json": {"format": "%(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
            "uvicorn": {"level": "INFO"},
            DRIVER_LOGGER: {"filters": ["one_line"]},
        },
        "root": {"handlers": ["stderr"], "level": "DEBUG" if verbose else "INFO"},
    }


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on whatever `sys.stderr` is when a record is written (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(verbose: bool = False) -> None:
    """The same configuration in this process, without removing handlers already installed.

    (A host that installed its own root handlers, pytest's log capture for one, keeps them;
    calling this twice adds nothing.)
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(getattr(h, "_eventstore_access", False) for h in access.handlers):
        json_handler = StderrHandler()
        json_handler.setFormatter(logging.Formatter("%(message)s"))
        json_handler._eventstore_access = True  # type: ignore[attr-defined]
        access.addHandler(json_handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    driver = logging.getLogger(DRIVER_LOGGER)
    if not any(isinstance(f, OneLineErrors) for f in driver.filters):
        driver.addFilter(OneLineErrors())
