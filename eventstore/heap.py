"""The collector's view of a long-running process: what exists at start is not garbage.

A full (generation 2) collection walks every tracked object. Right after start those
are mostly modules, classes, functions and the service's own wiring (100,000+ objects):
walking them took 30-130 ms, one stall of every delivery and capture in flight, and
the largest part of the subscriptions' tail latency. Once the service is built, they
are frozen out of later collections (`gc.freeze`); everything allocated afterwards is
collected as before.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> bool:
    """Once per process: collect, then exclude what is alive now from later collections."""
    global _frozen
    if _frozen:
        return False
    _frozen = True
    gc.collect()  # what is garbage already must not be frozen with the rest
    gc.freeze()
    return True
