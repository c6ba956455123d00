"""An API document as the app serves it: its router and the path spaces it owns.

A request that a route matched gets the errors of that route's router (its
`exception_handlers`). A request that no route matched (a 404 or 405 raised by the app's
router before any handler, or a bad Host header) gets the errors of the document whose
path space the path is in, so `GET /api/sandboxes/x/nope` is a sandbox-shaped 404.

Path spaces are compared by whole segments: `/api/execute` claims `/api/execute` and
`/api/execute/x`, not `/api/executefoo`. The longest claim wins (`/ws/monitor` is the
sandbox document's although the platform's `/ws` is a prefix of it). A path no document
claims gets the default document's errors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from litestar import Request, Response, Router
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from appliance.core.errors import AppError


class Surface(NamedTuple):
    document: str  # its reference, e.g. "sandbox-api.md"
    router: Router
    path_spaces: tuple[str, ...]


def claims(space: str, path: str) -> bool:
    """Whether `path` is in the path space `space`, by whole segments."""
    space = space.rstrip("/")
    return path == space or path.startswith(space + "/")


def surface_for(surfaces: list[Surface], default: Surface, path: str) -> Surface:
    best, length = default, -1
    for surface in surfaces:
        for space in surface.path_spaces:
            if len(space) > length and claims(space, path):
                best, length = surface, len(space)
    return best


def check_disjoint(surfaces: list[Surface]) -> None:
    """Two documents claiming the same path space is a wiring mistake: fail at start."""
    seen: dict[str, str] = {}
    for surface in surfaces:
        for space in surface.path_spaces:
            space = space.rstrip("/")
            if space in seen:
                raise ValueError(f"path space {space} is claimed by {seen[space]} and {surface.document}")
            seen[space] = surface.document


def unmatched_path_handlers(surfaces: list[Surface], default: Surface) -> ExceptionHandlersMap:
    """App-level handlers: what was raised before any router took the request is handed
    to the handler of the router whose path space the path is in. Routers register
    handlers for the same exception classes, so theirs win once a route matched."""
    check_disjoint(surfaces)

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        handlers = surface_for(surfaces, default, request.url.path).router.exception_handlers
        # The routers key their handlers by exception class (Exception among them).
        handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
        return handler(request, exc)

    return {AppError: handle, HTTPException: handle, Exception: handle}
