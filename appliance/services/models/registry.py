"""ModelService: the model registry's use cases and who may do what.

Reading needs `read`, creating, changing and deleting need `execute`. A key sees and
changes the entries its owner created, and sees (never changes) the entries of the
config file's `models` setting; an admin sees and changes every API-made entry. Another
owner's entry is a 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import msgspec

from appliance.core.clock import utc_now, utc_now_ms
from appliance.core.errors import AppError, Forbidden, NotFound, invalid_fields
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.listing import ListPage, ListQuery
from appliance.core.models import (
    Model,
    ModelChanges,
    ModelFields,
    ModelSeed,
    ModelSource,
    ModelStatistics,
    StatisticsPeriod,
    changed,
    model_problems,
    new_model_id,
)
from appliance.services.access.auth import require_permission
from appliance.services.models.statistics import ModelTelemetry
from appliance.store.models import ModelStore, SeedClash


class SeedRefused(AppError):
    """The `models` setting cannot be applied (an id clash): the appliance does not start."""


class ModelService:
    def __init__(self, store: ModelStore, seeds: Sequence[ModelSeed], telemetry: ModelTelemetry) -> None:
        self._store = store
        self._seeds = list(seeds)
        self._telemetry = telemetry

    async def start(self) -> None:
        """Bring the config file's entries into the registry (the setting was checked
        when it was loaded)."""
        now = utc_now_ms()
        seeded = [
            Model(
                id=seed.model_id,
                name=seed.name.strip(),
                provider=seed.provider,
                type=seed.type,
                config=seed.config,
                status=seed.status,
                owner="",
                source=ModelSource.CONFIG,
                created_at=now,
                updated_at=now,
            )
            for seed in self._seeds
        ]
        try:
            await self._store.sync_seeds(seeded, now)
        except SeedClash as exc:
            raise SeedRefused(str(exc)) from exc

    async def list(self, identity: Identity, query: ListQuery) -> ListPage[Model]:
        require_permission(identity, READ)
        return await self._store.list_page(query, None if identity.is_admin else identity.owner)

    async def get(self, identity: Identity, model_id: str) -> Model:
        require_permission(identity, READ)
        return await self._visible(identity, model_id)

    async def create(self, identity: Identity, fields: ModelFields) -> Model:
        require_permission(identity, EXECUTE)
        fields = msgspec.structs.replace(fields, name=fields.name.strip())
        problems = model_problems(fields)
        if problems:
            raise invalid_fields(problems)
        now = utc_now_ms()
        model = Model(
            id=new_model_id(),
            name=fields.name,
            provider=fields.provider,
            type=fields.type,
            config=fields.config,
            status=fields.status,
            owner=identity.owner,
            source=ModelSource.API,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert(model)
        return model

    async def update(self, identity: Identity, model_id: str, changes: ModelChanges) -> Model:
        require_permission(identity, EXECUTE)
        model = self._changeable(await self._visible(identity, model_id))
        fields = changed(model, changes)
        fields = msgspec.structs.replace(fields, name=fields.name.strip())
        problems = model_problems(fields)
        if problems:
            raise invalid_fields(problems)
        updated = msgspec.structs.replace(
            model,
            name=fields.name,
            provider=fields.provider,
            type=fields.type,
            config=fields.config,
            status=fields.status,
            # Later than the last change even within one millisecond, so a client can
            # tell a changed model from the one it holds by `updated_at` alone.
            updated_at=max(utc_now_ms(), model.updated_at + timedelta(milliseconds=1)),
        )
        if not await self._store.update(updated):
            raise NotFound(f"no model {model_id}")  # deleted meanwhile
        return updated

    async def delete(self, identity: Identity, model_id: str) -> None:
        require_permission(identity, EXECUTE)
        self._changeable(await self._visible(identity, model_id))
        if not await self._store.delete(model_id):
            raise NotFound(f"no model {model_id}")

    async def statistics(self, identity: Identity, model_id: str, period: str) -> ModelStatistics:
        """`period`: 1h, 24h, 7d or 30d."""
        require_permission(identity, READ)
        model = await self._visible(identity, model_id)
        return await self._telemetry.model_statistics(model.id, StatisticsPeriod.parse(period), utc_now())

    async def _visible(self, identity: Identity, model_id: str) -> Model:
        model = await self._store.get(model_id)
        if model is None or not (model.read_only or identity.may_see(model.owner)):
            raise NotFound(f"no model {model_id}")
        return model

    @staticmethod
    def _changeable(model: Model) -> Model:
        if model.read_only:
            raise Forbidden(
                f"model {model.id} comes from the config file (setting `models`): it is read-only here; "
                "change or remove it in config.toml and restart",
                details={"source": ModelSource.CONFIG.value},
            )
        return model
