"""`/api/templates`: the sandbox templates (one per language) and their details.

Any authenticated caller may read them (they describe the appliance, not anyone's
data); an anonymous one gets 401."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, get

from appliance.core.errors import Unauthorized
from appliance.core.identity import Identity
from appliance.services.sandboxes.templates import TemplateDetails, TemplateSummary


class TemplateList(msgspec.Struct, kw_only=True):
    templates: list[TemplateSummary]


def _require_key(identity: Identity) -> None:
    if identity.is_anonymous:
        raise Unauthorized("Authentication required: send an X-API-Key header or a Bearer token")


class TemplateController(Controller):
    path = "/api/templates"
    tags = ["templates"]

    @get("/", summary="List sandbox templates: one per language, with its runtime image's packages")
    async def list_templates(self, request: Request, identity: Identity) -> TemplateList:
        _require_key(identity)
        return TemplateList(templates=await request.app.state.appliance.templates.list_templates())

    @get("/{template_id:str}", summary="A template's details: image, environment, starter file")
    async def get_template(self, request: Request, identity: Identity, template_id: str) -> TemplateDetails:
        _require_key(identity)
        return await request.app.state.appliance.templates.get_template(template_id)
