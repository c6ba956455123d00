"""What the OpenAPI document says of errors: every status an operation can answer, each
with its document's error body (the Struct its `ErrorShape` renders) as the schema.

A router documents its routes with `document_errors(router, its_shape)` once its routes
are in. The statuses of a route are those its signature implies plus those it declares:

- it takes the caller's `identity`: 401 (a bad key or token, also on routes open to
  anonymous callers) and 429 (its rate limit);
- it takes a query parameter, a path parameter of a type other than text, or a body:
  400 (Litestar's validation, rendered in the document's shape);
- it takes a body: the document's status for a body past max_body_bytes (413 or 400);
- `opt=errors(...)` on the route: what its service raises (403 for a permission it
  checks, 404 for an id it looks up, 409, 503, ...).

Litestar adds its own `{status_code, detail, extra}` 400 to every operation with a
parameter; each documented error status gets the shape's body instead, and the
operation drops any other error response (its `operation_class` filters them), so the
document lists exactly these. The schemathesis test
(tests/test_openapi_conformance.py) holds the code to it: any status answered that is
not documented fails it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, cast

from litestar import Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Operation
from litestar.params import BodyKwarg
from litestar.routes import HTTPRoute

from appliance.http.errors import ErrorShape

ERRORS_OPT = "errors"

# Parameters Litestar fills itself: never a query parameter.
_RESERVED = frozenset({"self", "data", "request", "socket", "state", "scope", "headers", "cookies", "query", "body"})

WHY = {
    400: "The request is invalid: a parameter or the body (the error names the field and why).",
    401: (
        "No valid credentials: an unknown, revoked or expired X-API-Key, a bad or expired bearer token, "
        "a malformed Authorization header, or none where the operation needs a key. When X-API-Key is "
        "sent, it alone decides (Authorization is then ignored)."
    ),
    403: "The key lacks the permission this operation needs.",
    404: "No such resource for this caller (another owner's is as missing as none), or no such path.",
    409: "The resource's state does not allow this now (the error says why).",
    413: "The body, or what it would store, is larger than this appliance accepts.",
    422: "The request is invalid (the experiments API's validation_error): details name each field and why.",
    429: "Past the caller's rate limit: Retry-After says when to try again.",
    502: "The model's server failed or refused (PROVIDER_ERROR): after retries for a connection error, 429 or 5xx.",
    503: "The appliance cannot do this now (engine, runtime image or queue full, or every worker busy with a "
    "long queue: then Retry-After says when to try again): retry with backoff.",
    504: "The model's server did not answer in time (TIMEOUT), retries included.",
}


def errors(*statuses: int) -> dict[str, tuple[int, ...]]:
    """A route's `opt` declaring the error statuses its service can answer."""
    unknown = [s for s in statuses if s not in WHY]
    if unknown:
        raise ValueError(f"no description of status {unknown}: add it to WHY")
    return {ERRORS_OPT: statuses}


def error_statuses(
    handler: HTTPRouteHandler, path_types: Mapping[str, type], shape: ErrorShape[Any], dependencies: Collection[str]
) -> set[int]:
    """Every error status `handler` can answer (see the module's docstring)."""
    parameters = handler.parsed_fn_signature.parameters
    statuses = set(handler.opt.get(ERRORS_OPT, ()))
    if "identity" in parameters:
        statuses |= {401, 429}
    invalid = shape.validation_status
    if "data" in parameters:
        statuses |= {invalid, shape.body_too_large_status}
    for name in parameters:
        if name in _RESERVED or name in dependencies:
            continue
        if name not in path_types or path_types[name] not in (str, Path):
            statuses.add(invalid)
    return statuses


def only_documented_errors(base: type[Operation], statuses: Collection[int]) -> type[Operation]:
    """`base` (the route's operation class), keeping of the error responses Litestar
    generated only those in `statuses`."""
    keep = frozenset(str(status) for status in statuses)
    base_post_init = getattr(base, "__post_init__", None)

    def __post_init__(self: Operation) -> None:
        if base_post_init is not None:
            base_post_init(self)
        if self.responses:
            self.responses = {
                code: response for code, response in self.responses.items() if code[0] not in "45" or code in keep
            }

    subclass = type(f"Documented{base.__name__}", (base,), {"__post_init__": __post_init__})
    return cast(type[Operation], dataclasses.dataclass(subclass))


def document_errors(router: Router, shape: ErrorShape[Any], dependencies: Collection[str]) -> Router:
    """Give every operation of `router` its error responses, in `shape`'s body."""
    for route in router.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path_types = {name: p.type for name, p in route.path_parameters.items()}
        for handler in route.route_handlers:
            statuses = error_statuses(handler, path_types, shape, dependencies)
            responses = dict(handler.responses or {})
            for status in sorted(statuses):
                responses[status] = ResponseSpec(
                    data_container=shape.body, description=WHY[status], generate_examples=False
                )
            handler.responses = responses
            handler.operation_class = only_documented_errors(handler.operation_class, statuses)
    return router


def example(summary: str, value: dict[str, Any]) -> BodyKwarg:
    """A request body's example in the document (`data: Annotated[T, example(...)]`):
    what a reader copies, and what schemathesis' examples phase sends first, so the
    operation is also tried with a body it accepts."""
    return BodyKwarg(examples=[Example(summary=summary, value=value)])
