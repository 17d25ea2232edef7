"""Read models over the event log: the public API for your own projections.

    from projections import Projection, Change, Write

See `projections.api` and the README's "Your own projections".
"""

from projections.api import Change, Projection, Write

__all__ = ["Change", "Projection", "Write"]
