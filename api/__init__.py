"""The Litestar API over the event log (`create_app`)."""

from api.app import create_app

__all__ = ["create_app"]
