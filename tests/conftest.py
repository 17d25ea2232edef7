"""Shared test settings: hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev, default dev)."""

from __future__ import annotations

import os
from typing import Any

import mongomock.collection
import pytest
from hypothesis import settings

from eventstore import capture
from tests.helpers import fixed_salt

# Modest example counts: the mongo adapters run on mongomock, which scans on every write.
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _accept_sort(method: Any) -> Any:
    """mongomock's bulk builder predates PyMongo 4.11's `sort` keyword (mongomock #912)."""

    def patched(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort:
            raise NotImplementedError("mongomock test patch: a non-empty sort is not supported")
        return method(self, *args, **kwargs)

    return patched


# Test-side compatibility patch (TEST_DOUBLES.md): the production bulk_write path runs unchanged.
_builder: Any = mongomock.collection.BulkOperationBuilder
if not getattr(_builder, "_accepts_sort", False):
    _builder.add_replace = _accept_sort(_builder.add_replace)
    _builder.add_update = _accept_sort(_builder.add_update)
    _builder._accepts_sort = True


@pytest.fixture(autouse=True)
def deterministic_salts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event's salt derived from its id, so two runs of one workload match byte for byte.

    Production salts come from the OS's CSPRNG (`capture.os_salt`, tested on its own
    in tests/unit/test_salts.py); only where they come from is swapped here.
    """
    monkeypatch.setattr(capture, "salt_source", fixed_salt)
