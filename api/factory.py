"""`api.factory:app_from_env`, kept for `uvicorn --factory api.factory:app_from_env`.

The app is built by the composition root (`eventstore.cli.bootstrap.app_from_env`);
this module only forwards to it (the one import from api/ into the root that the
import-linter contracts allow).
"""

from __future__ import annotations

from api.app import EventStoreApp


def app_from_env() -> EventStoreApp:
    """A new app over the store `EVENTSTORE_URI` names (a SettingsError for a bad setting)."""
    from eventstore.cli.bootstrap import app_from_env as build

    return build()


__all__ = ["app_from_env"]
