"""Shared test settings: hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev, default dev)."""

from __future__ import annotations

import os

from hypothesis import settings

# Modest example counts: the mongo adapters run on mongomock, which scans on every write.
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
