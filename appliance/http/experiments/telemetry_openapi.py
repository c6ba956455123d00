"""What the OpenAPI document says of the two telemetry operations that read their input
themselves or answer a stream: POST /telemetry/events decodes its body event by event (a bad event must
not spoil the batch, so Litestar does not decode it), and DELETE /telemetry/events takes
`filter[experiment_id]`, a name Python cannot spell as a parameter, and POST
/telemetry/export answers a file."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, RequestBody, Schema
from litestar.openapi.spec import Parameter as ParameterSpec

_NUMBER = Schema(one_of=[Schema(type=OpenAPIType.INTEGER), Schema(type=OpenAPIType.NUMBER)])
EVENT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["event_name"],
    properties={
        "event_name": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(type=OpenAPIType.STRING, pattern=r"^[A-Za-z0-9_\-:]{1,64}$"),
            min_items=1,
            max_items=8,
        ),
        "measurements": Schema(type=OpenAPIType.OBJECT, additional_properties=_NUMBER),
        "metadata": Schema(type=OpenAPIType.OBJECT, additional_properties=True),
        "timestamp": Schema(type=OpenAPIType.STRING, format=None, description="ISO 8601; absent: when it arrived"),
    },
    additional_properties=False,
)
INGEST_EXAMPLE: dict[str, Any] = {
    "events": [
        {
            "event_name": ["crucible", "model", "inference"],
            "measurements": {"duration_ms": 234, "tokens": 150},
            "metadata": {"experiment_id": "exp_abc123", "model": "gpt-4"},
        }
    ]
}


@dataclasses.dataclass
class IngestOperation(Operation):
    def __post_init__(self) -> None:
        body = Schema(
            type=OpenAPIType.OBJECT,
            required=["events"],
            properties={"events": Schema(type=OpenAPIType.ARRAY, items=EVENT_SCHEMA)},
            additional_properties=False,
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=body, example=INGEST_EXAMPLE)}, required=True
        )


@dataclasses.dataclass
class DeleteEventsOperation(Operation):
    def __post_init__(self) -> None:
        experiment = ParameterSpec(
            name="filter[experiment_id]",
            param_in="query",
            schema=Schema(type=OpenAPIType.STRING),
            description="the experiment whose events to delete",
            required=True,
        )
        self.parameters = [*(self.parameters or []), experiment]


EXPORT_FILE = Schema(type=OpenAPIType.STRING, description="the events, oldest first")


@dataclasses.dataclass
class ExportOperation(Operation):
    """The 200 is the file itself (CSV or JSON lines), streamed; a large export is a 202
    with its job (documented by the route's `responses`)."""

    def __post_init__(self) -> None:
        found = (self.responses or {}).get("200")
        if isinstance(found, OpenAPIResponse):
            found.content = {
                "text/csv": OpenAPIMediaType(schema=EXPORT_FILE),
                "application/x-ndjson": OpenAPIMediaType(schema=EXPORT_FILE),
            }
