"""`/api/v1/models`: the model registry (experiments-api.md, Model Endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter

from appliance.core.clock import iso_z
from appliance.core.identity import Identity
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.models import (
    MODEL_STATUSES,
    MODEL_TYPES,
    PROVIDERS,
    Model,
    ModelChanges,
    ModelFields,
    ModelStatistics,
)
from appliance.http.error_docs import errors
from appliance.http.experiments.envelope import Item, Page, Timestamp
from appliance.http.experiments.listing import ListRequest, list_parameters
from appliance.services.models.registry import ModelService

MODEL_LIST = ListSpec(
    name="models",
    sorts=("name", "provider", "type", "status", "created_at", "updated_at"),
    default_sort="name",
    filters=(
        FilterField(param="name", field="name", op=FilterOp.CONTAINS),
        FilterField(param="provider", field="provider", kind=ValueKind.CHOICE, choices=PROVIDERS),
        FilterField(param="type", field="type", kind=ValueKind.CHOICE, choices=MODEL_TYPES),
        FilterField(param="status", field="status", kind=ValueKind.CHOICE, choices=MODEL_STATUSES),
        FilterField(param="source", field="source", kind=ValueKind.CHOICE, choices=("api", "config")),
        FilterField(param="created_after", field="created_at", op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
        FilterField(param="created_before", field="created_at", op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
    ),
)


class ModelInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    provider: str
    type: str = "llm"
    # Free-form and never secret: a provider key is named by api_key_env, not given.
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = "active"


class ModelCreate(msgspec.Struct, forbid_unknown_fields=True):
    model: ModelInput


class ModelPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    provider: str | None = None
    type: str | None = None
    config: dict[str, Any] | None = None  # a JSON merge patch: null removes a key
    status: str | None = None


class ModelUpdate(msgspec.Struct, forbid_unknown_fields=True):
    model: ModelPatch


class ModelBody(msgspec.Struct, kw_only=True):
    id: str
    name: str
    provider: str
    type: str
    config: dict[str, Any]
    status: str
    read_only: bool  # from the config file: not changeable through the API
    created_at: Timestamp
    updated_at: Timestamp


def model_body(model: Model) -> ModelBody:
    return ModelBody(
        id=model.id,
        name=model.name,
        provider=model.provider,
        type=model.type,
        config=model.config,
        status=model.status,
        read_only=model.read_only,
        created_at=iso_z(model.created_at),
        updated_at=iso_z(model.updated_at),
    )


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ["models"]

    @get("/", dependencies={"listing": list_parameters(MODEL_LIST)}, summary="List models", opt=errors(403))
    async def list_models(self, models: ModelService, identity: Identity, listing: ListRequest) -> Page[ModelBody]:
        return listing.page(await models.list(identity, listing.query), model_body)

    @post("/", status_code=201, summary="Register a model", opt=errors(403, 409))
    async def create_model(self, models: ModelService, identity: Identity, data: ModelCreate) -> Item[ModelBody]:
        fields = msgspec.convert(msgspec.structs.asdict(data.model), ModelFields)
        return Item(model_body(await models.create(identity, fields)))

    @get("/{model_id:str}", summary="Get a model", opt=errors(403, 404))
    async def get_model(self, models: ModelService, identity: Identity, model_id: str) -> Item[ModelBody]:
        return Item(model_body(await models.get(identity, model_id)))

    @patch("/{model_id:str}", summary="Change a model (config is a JSON merge patch)", opt=errors(403, 404))
    async def update_model(
        self, models: ModelService, identity: Identity, model_id: str, data: ModelUpdate
    ) -> Item[ModelBody]:
        changes = msgspec.convert(msgspec.structs.asdict(data.model), ModelChanges)
        return Item(model_body(await models.update(identity, model_id, changes)))

    @delete("/{model_id:str}", status_code=204, summary="Delete a model", opt=errors(403, 404))
    async def delete_model(self, models: ModelService, identity: Identity, model_id: str) -> None:
        await models.delete(identity, model_id)

    @get("/{model_id:str}/statistics", summary="Calls to a model within a period", opt=errors(403, 404))
    async def model_statistics(
        self,
        models: ModelService,
        identity: Identity,
        model_id: str,
        period: Annotated[str, Parameter(description="1h, 24h, 7d or 30d")] = "24h",
    ) -> Item[ModelStatistics]:
        return Item(await models.statistics(identity, model_id, period))
