"""Which model a request runs on, and which judges and embeds.

The model under evaluation: the request's `model`, else the suite's `model`, else the
setting `default_model`, else the entry `model_default` that `default_model_url` makes.
A request's or suite's reference is resolved among the registry entries the caller
sees; the settings' among every entry (the operator chose them). The judge of
`llm_judge`: the grader's `model`, else `judge_model`, else the model under evaluation.
"""

from __future__ import annotations

from appliance.core.errors import ValidationError
from appliance.core.identity import LOCAL_OPERATOR, Identity
from appliance.core.models import Model, ModelStatus
from appliance.services.models.registry import ModelService

NO_MODEL = (
    "no model to run on: name one with `model` (an entry of the model registry: GET /api/v1/models), "
    "or set default_model, or default_model_url to a model server (e.g. APPLIANCE_DEFAULT_MODEL_URL="
    "http://127.0.0.1:11434/v1)"
)


class ModelChoice:
    def __init__(
        self, models: ModelService, default_model: str, fallback_model: str, judge_model: str, embedding_model: str
    ) -> None:
        self._models = models
        self._default = default_model.strip() or fallback_model
        self._judge = judge_model.strip()
        self._embedding = embedding_model.strip()

    @property
    def has_embedding_model(self) -> bool:
        return bool(self._embedding)

    async def _usable(self, identity: Identity, reference: str, field: str, kind: str = "llm") -> Model:
        model = await self._models.resolve(identity, reference)
        if model.status != ModelStatus.ACTIVE.value:
            raise ValidationError(
                f"model {model.id} is {model.status}: make it active (PATCH /api/v1/models/{model.id}) to run it",
                details={"field": field, "reason": "inactive model"},
            )
        if model.type != kind:
            raise ValidationError(
                f"model {model.id} is of type {model.type}, not {kind}", details={"field": field, "reason": "type"}
            )
        return model

    async def model_for(self, identity: Identity, asked: str | None, suite_model: str | None = None) -> Model:
        if asked:
            return await self._usable(identity, asked, "model")
        if suite_model:
            return await self._usable(identity, suite_model, "model")
        if self._default:
            return await self._usable(LOCAL_OPERATOR, self._default, "model")
        raise ValidationError(NO_MODEL, details={"field": "model", "reason": "no model"})

    async def judge_for(self, identity: Identity, asked: str | None, under_test: Model) -> Model:
        if asked:
            return await self._usable(identity, asked, "model")
        if self._judge:
            return await self._usable(LOCAL_OPERATOR, self._judge, "judge_model")
        return under_test

    async def embedding_model(self, identity: Identity, asked: str | None) -> Model | None:
        if asked:
            return await self._usable(identity, asked, "model", "embedding")
        if self._embedding:
            return await self._usable(LOCAL_OPERATOR, self._embedding, "embedding_model", "embedding")
        return None
