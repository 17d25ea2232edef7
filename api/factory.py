"""`app_from_env`: the app from `EVENTSTORE_*` settings, for uvicorn's `factory=True`.

`eventstore serve --workers N` (N > 1) points each worker process at
`api.factory:app_from_env`; the same works directly:
`uvicorn --factory api.factory:app_from_env --workers 4`. Nothing connects here:
the app opens its store in its lifespan.
"""

from __future__ import annotations

from api.app import EventStoreApp, create_app
from eventstore.settings import load


def app_from_env() -> EventStoreApp:
    """A new app over the store `EVENTSTORE_URI` names (a SettingsError for a bad setting)."""
    return create_app(load())


__all__ = ["app_from_env"]
