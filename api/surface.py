"""The layers every HTTP request passes on its way into Litestar: CORS, methods, compression.

Outermost first: CORS answers preflights from listed origins and marks answers
to them; `methods` answers OPTIONS and undeclared methods and turns HEAD into a
bodiless GET; compression encodes what Litestar answers. HEAD sits outside
compression, so a HEAD's headers are those of the (compressed) GET.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, partial

from litestar import Litestar
from litestar.types import ASGIApp

from api.compression import CompressionMiddleware
from api.cors import CorsMiddleware
from api.methods import MethodsMiddleware, allowed_methods

# Routing is a pure function of the path: the answers for recent paths are kept.
ROUTE_CACHE_SIZE = 4096


def http_surface(app: Litestar, cors_origins: Sequence[str]) -> ASGIApp:
    """Litestar's own `__call__` for `app`, wrapped in the layers above."""
    allowed = lru_cache(ROUTE_CACHE_SIZE)(partial(allowed_methods, app))
    inner: ASGIApp = partial(Litestar.__call__, app)
    methods = MethodsMiddleware(CompressionMiddleware(inner), allowed)
    return CorsMiddleware(methods, tuple(cors_origins), allowed)


__all__ = ["http_surface"]
