"""Objects alive when the service starts are frozen out of later full collections, once."""

from __future__ import annotations

import gc

import pytest

from eventstore import heap


def test_startup_objects_are_frozen_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_frozen", False)
    before = gc.get_freeze_count()
    try:
        assert heap.freeze_startup_objects() is True
        frozen = gc.get_freeze_count()
        assert frozen > before + 1000  # the modules and classes loaded so far, at least
        young = [object() for _ in range(10)]
        assert heap.freeze_startup_objects() is False  # a second start freezes nothing more
        assert gc.get_freeze_count() == frozen
        del young
    finally:
        gc.unfreeze()  # the rest of the test run collects as before
